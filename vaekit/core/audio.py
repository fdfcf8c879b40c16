"""Audio in torch: WAV files, resampling, 80-bin log-mel spectrograms and the way back to a waveform.

The features of Tacotron-style synthesis (Shen et al. 2018; the reference encoder of Zhang, Pan, He & Ling,
ICASSP 2019, reads them too):

    |STFT|          torch.stft, periodic Hann window, frames centred (zero padding, librosa's default)
    mel             a Slaney filterbank, written as librosa.filters.mel defines it (htk=False, norm="slaney"):
                    the Auditory Toolbox mel scale (linear below 1 kHz, logarithmic above) and triangles of unit
                    area, so a bin's value does not depend on its width
    log-mel         log(max(mel, 1e-5)) of the magnitude (power 1), as Tacotron 2

and back: mel -> linear magnitude by the filterbank's pseudo-inverse (the least-squares solution, clamped at zero,
as it has no non-negativity of its own), then Griffin-Lim (Griffin & Lim 1984) with the momentum of Perraudin,
Balazs & Sondergaard (2013), in torch.

The defaults suit 8 kHz speech (the Free Spoken Digit Dataset): a 512-point FFT (15.6 Hz bins, so none of the 80
Slaney triangles, 28.6 Hz apart below 1 kHz, is empty), a 50 ms window and a 10 ms hop.

torchaudio's newest wheel does not match the torch used here and librosa costs ~500 MB; where librosa is
installed, tests/test_speech.py compares this filterbank and spectrogram with its own (librosa 0.11: largest
differences 4e-9 in the filterbank and 2e-7 in the mel magnitudes, float32).
"""

from __future__ import annotations

import math
import os
import wave
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated

import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt
from torch import Tensor

from vaekit.core.errors import DataError

SAMPLE_RATE = 8000  # FSDD's rate; the synthetic corpus is resampled to it


@dataclass(frozen=True)
class MelSettings:
    """How a waveform becomes a log-mel spectrogram [T, n_mels]. Data sets and models carry one, so a model
    reads a reference WAV, and turns its own mels back into audio, exactly as its training data were made."""

    sample_rate: Annotated[int, Gt(0)] = SAMPLE_RATE
    n_fft: Annotated[int, Ge(16)] = 512
    win_length: Annotated[int, Ge(16)] = 400  # 50 ms at 8 kHz
    hop_length: Annotated[int, Ge(1)] = 80  # 10 ms at 8 kHz
    n_mels: Annotated[int, Ge(1)] = 80
    f_min: Annotated[float, Ge(0)] = 0.0
    f_max: float | None = None  # None: Nyquist
    floor: Annotated[float, Gt(0)] = 1e-5  # log(max(mel, floor)): -11.5 is silence

    def __post_init__(self) -> None:
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length={self.win_length} must be <= n_fft={self.n_fft}")
        if self.top > self.sample_rate / 2 or self.f_min >= self.top:
            raise ValueError(f"mel band [{self.f_min}, {self.top}] Hz must lie in [0, {self.sample_rate / 2}]")

    @property
    def top(self) -> float:
        return self.sample_rate / 2 if self.f_max is None else float(self.f_max)

    def frames(self, samples: int) -> int:
        """Frames of a centred STFT of ``samples`` samples."""
        return 1 + samples // self.hop_length


DEFAULT_MEL = MelSettings()


# -- the Slaney mel scale and filterbank (librosa.filters.mel, htk=False, norm="slaney") -------------------------
_F_SP = 200.0 / 3  # Hz per mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15
_LOGSTEP = math.log(6.4) / 27.0  # 27 mels per factor 6.4 above 1 kHz


def hz_to_mel(hz: Tensor) -> Tensor:
    """Slaney's mel scale (Auditory Toolbox): linear below 1 kHz, logarithmic above."""
    hz = torch.as_tensor(hz, dtype=torch.float64)
    linear = hz / _F_SP
    log = _MIN_LOG_MEL + torch.log(hz.clamp(min=_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return torch.where(hz >= _MIN_LOG_HZ, log, linear)


def mel_to_hz(mel: Tensor) -> Tensor:
    mel = torch.as_tensor(mel, dtype=torch.float64)
    return torch.where(mel >= _MIN_LOG_MEL, _MIN_LOG_HZ * torch.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), _F_SP * mel)


@lru_cache(maxsize=16)
def _filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> Tensor:
    fft_hz = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = mel_to_hz(torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2,
                                     dtype=torch.float64))  # n_mels + 2 edges: band i spans edges i..i+2
    widths = edges.diff()
    ramps = edges[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = torch.minimum(rising, falling).clamp(min=0)
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # Slaney: each triangle of unit area
    return weights.float()


def mel_filterbank(settings: MelSettings) -> Tensor:
    """The Slaney mel filterbank [n_mels, n_fft // 2 + 1] (librosa.filters.mel with its defaults)."""
    return _filterbank(settings.sample_rate, settings.n_fft, settings.n_mels, float(settings.f_min), settings.top)


# -- spectrograms ---------------------------------------------------------------------------------------------
def _window(settings: MelSettings, device: torch.device) -> Tensor:
    return torch.hann_window(settings.win_length, periodic=True, device=device)


def stft(wave_: Tensor, settings: MelSettings) -> Tensor:
    """Complex STFT [..., n_fft // 2 + 1, frames] of waveforms [..., samples], frames centred on hop multiples."""
    lead = wave_.shape[:-1]
    spec = torch.stft(wave_.reshape(-1, wave_.shape[-1]).float(), settings.n_fft, settings.hop_length,
                      settings.win_length, _window(settings, wave_.device), center=True, pad_mode="constant",
                      return_complex=True)
    return spec.reshape(*lead, *spec.shape[-2:])


def istft(spec: Tensor, settings: MelSettings, length: int | None = None) -> Tensor:
    lead = spec.shape[:-2]
    out = torch.istft(spec.reshape(-1, *spec.shape[-2:]), settings.n_fft, settings.hop_length, settings.win_length,
                      _window(settings, spec.device), center=True, length=length)
    return out.reshape(*lead, out.shape[-1])


def mel_magnitude(wave_: Tensor, settings: MelSettings) -> Tensor:
    """Mel-band magnitudes [..., frames, n_mels] (power 1: the mel of |STFT|)."""
    fb = mel_filterbank(settings).to(wave_.device)
    return torch.einsum("mf,...ft->...tm", fb, stft(wave_, settings).abs())


def log_mel(wave_: Tensor, settings: MelSettings = DEFAULT_MEL) -> Tensor:
    """log(max(mel, floor)) [..., frames, n_mels] of waveforms [..., samples] in [-1, 1]."""
    return mel_magnitude(wave_, settings).clamp(min=settings.floor).log()


def mel_to_linear(log_mel_: Tensor, settings: MelSettings = DEFAULT_MEL) -> Tensor:
    """Linear magnitudes [..., n_fft // 2 + 1, frames] from log-mels [..., frames, n_mels]: the least-squares
    (minimum-norm) solution through the filterbank's pseudo-inverse, clamped at zero."""
    pinv = torch.linalg.pinv(mel_filterbank(settings).double()).float().to(log_mel_.device)  # [F, M]
    return torch.einsum("fm,...tm->...ft", pinv, log_mel_.float().exp()).clamp(min=0)


def griffin_lim(magnitude: Tensor, settings: MelSettings, n_iter: int = 60, momentum: float = 0.99,
                length: int | None = None, seed: int = 0) -> Tensor:
    """A waveform whose |STFT| approaches ``magnitude`` [..., n_fft // 2 + 1, frames]: Griffin & Lim (1984),
    accelerated by Perraudin et al. (2013): alternate projections onto consistent spectrograms and onto the
    given magnitude, with the phase extrapolated by ``momentum``. Random initial phase from ``seed``."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    angles = torch.polar(torch.ones(magnitude.shape), 2 * math.pi * torch.rand(magnitude.shape, generator=g))
    angles = angles.to(magnitude.device)
    magnitude = magnitude.float()
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        rebuilt = stft(istft(magnitude * angles, settings, length), settings)
        angles = rebuilt - (momentum / (1 + momentum)) * previous
        angles = angles / (angles.abs() + 1e-16)
        previous = rebuilt
    return istft(magnitude * angles, settings, length)


def mel_to_audio(log_mel_: Tensor, settings: MelSettings = DEFAULT_MEL, n_iter: int = 60, seed: int = 0) -> Tensor:
    """A waveform [..., samples] in [-1, 1] from log-mels [..., frames, n_mels]: pseudo-inverse, then Griffin-Lim."""
    frames = log_mel_.shape[-2]
    out = griffin_lim(mel_to_linear(log_mel_, settings), settings, n_iter, length=(frames - 1) * settings.hop_length,
                      seed=seed)
    return out.clamp(-1, 1)


def spectral_convergence(reference: Tensor, estimate: Tensor) -> float:
    """||S - S_hat||_F / ||S||_F of two magnitude spectrograms (0 is a perfect match)."""
    return float((reference - estimate).norm() / reference.norm())


# -- resampling -----------------------------------------------------------------------------------------------
def resample(wave_: Tensor, orig_rate: int, new_rate: int, zeros: int = 16, rolloff: float = 0.945) -> Tensor:
    """Band-limited resampling of [..., samples] by a windowed-sinc polyphase filter (torchaudio's design): a
    sinc low-pass at ``rolloff`` of the lower Nyquist frequency, ``zeros`` zero crossings each side, Hann window.
    Computed in float64 so the output does not depend on the number of threads."""
    if orig_rate == new_rate:
        return wave_
    g = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // g, new_rate // g
    cutoff = min(orig, new) * rolloff
    width = math.ceil(zeros * orig / cutoff)
    taps = torch.arange(-width, width + orig, dtype=torch.float64) / orig  # [W]
    t = (-torch.arange(new, dtype=torch.float64)[:, None] / new + taps[None, :]) * cutoff  # [new, W]
    t = t.clamp(-zeros, zeros)
    window = torch.cos(t * math.pi / zeros / 2) ** 2
    t = t * math.pi
    kernels = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t) * window * (cutoff / orig)
    lead, n = wave_.shape[:-1], wave_.shape[-1]
    x = F.pad(wave_.reshape(-1, 1, n).double(), (width, width + orig))
    out = F.conv1d(x, kernels[:, None, :], stride=orig)  # [B, new, blocks]: phase p of block b is sample b*new+p
    out = out.transpose(1, 2).reshape(x.shape[0], -1)[:, : math.ceil(new * n / orig)]
    return out.to(wave_.dtype if wave_.is_floating_point() else torch.float32).reshape(*lead, -1)


# -- WAV files ------------------------------------------------------------------------------------------------
def read_wav(path: str | os.PathLike, sample_rate: int | None = None) -> tuple[Tensor, int]:
    """A 16-bit PCM mono WAV as float samples in [-1, 1) and its rate. The header is checked (format, channels,
    sample width, ``sample_rate`` when given, and that the data hold the frames it promises); a file that is not
    such a WAV is a DataError naming it."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, count = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            kind = w.getcomptype()
            data = w.readframes(count)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except PermissionError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001 (the stdlib's parser raises wave.Error, EOFError, RuntimeError, ...)
        reason = " ".join(str(e).split()) or type(e).__name__
        raise DataError(f"{path}: not a readable WAV file ({reason})") from None
    if kind != "NONE" or width != 2 or channels != 1:
        raise DataError(f"{path}: {channels} channel(s) of {8 * width}-bit {kind} audio; expected 16-bit PCM mono")
    if sample_rate is not None and rate != sample_rate:
        raise DataError(f"{path}: sample rate {rate} Hz; expected {sample_rate} Hz")
    if len(data) != 2 * count:
        raise DataError(f"{path}: truncated: {len(data) // 2} samples, header promises {count}")
    if count == 0:
        raise DataError(f"{path}: holds no samples")
    samples = torch.frombuffer(bytearray(data), dtype=torch.int16).float() / 32768.0
    return samples, rate


def load_wav(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> Tensor:
    """A 16-bit PCM mono WAV of any rate, resampled to ``sample_rate`` if it has another."""
    samples, rate = read_wav(path)
    return resample(samples, rate, sample_rate)


def write_wav(path: str | os.PathLike, samples: Tensor, sample_rate: int = SAMPLE_RATE) -> Path:
    """16-bit PCM mono WAV of float samples (clipped to [-1, 1])."""
    pcm = (samples.detach().float().cpu().clamp(-1, 1) * 32767).round().to(torch.int16)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.numpy().tobytes())
    return path
