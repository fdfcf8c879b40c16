"""The VAE of "Learning latent representations for style control and transfer in end-to-end speech synthesis"
(Zhang, Pan, He & Ling, ICASSP 2019), at a scale two CPU cores train: a reference encoder turns a mel spectrogram
into a style latent z, which conditions a synthesiser of mel spectrograms from text.

    text encoder     characters -> embedding -> 3 conv1d (kernel 5) -> bidirectional GRU      h_1..h_N
    q(z | mel)       reference encoder (the paper's Fig. 1, after Skerry-Ryan et al. 2018): a conv2d stack over
                     (time, mel), a GRU over time, its last state -> fc -> mean and log-variance of z
    style            h_i + W z: z projected and added to every text encoding (as in the paper)
    p(mel | text, z, T)   a decoder of T mel frames from the styled text encodings; each frame a diagonal
                     Gaussian with a learned scale per mel bin
    P(T | text, z)   the utterance's length in frames, an integer: the mass a log-normal with mean
                     f(mean_i h_i + W z) and scale sigma_T puts on [T - 1/2, T + 1/2) (core's QuantizedLogNormal),
                     so a style carries its rate (Tacotron ends an utterance with a stop token; here the length
                     is drawn, or given)

    ELBO = E_q[log p(mel | text, z, T) + log P(T | text, z)] - KL(q(z | mel) || N(0, I))  <=  log p(mel, T | text)

(A density on log T, which an earlier version used, scores a real number, not the integer T: that sum was no
bound on log p(mel, T). P(T) is a normalised distribution over the lengths, so the logged ``elbo`` is one.)
    loss = -(E_q[...] - beta(t) KL),  beta(t) a warm-up from 0 (``kl_weight``, the contract's Ramp)

The paper's warm-up answers posterior collapse: with beta = 1 from the start, an autoregressive decoder learns to
ignore z (KL -> 0) and transfer becomes inaudible. ``kl`` and each dimension's ``kl_j`` are logged at every
logging step, so a run shows that the KL stays above zero.

Decoders (``decoder``):

- ``attention`` (default): Tacotron 2 in small (Shen et al. 2018), as the paper's synthesiser: a prenet on the
  previous frame, an attention GRU, location-sensitive attention (Chorowski et al. 2015), a decoder GRU, two
  frames a step; teacher forcing in training, its own frames when it speaks; the length is given (no stop token).
- ``aligned``: non-autoregressive. The N text encodings are spread over the T frames by Gaussian upsampling with
  uniform durations (Non-Attentive Tacotron's upsampling, Shen et al. 2020, every character given T/N frames), the
  relative position t/T is appended, and a bidirectional GRU writes every frame at once.

The simpler one does not train better here. After 2 minutes from the same start (one thread, AMD EPYC, both cores
shared with two other training jobs; the recipes' sizes; vaekit.views.speech_eval's measures):

    decoder     FSDD: steps/s  val mel L1, free (TF)  transfer: speaker / word   synthetic: steps/s  F0 r  rate r
    attention   4.9            0.67 (0.53)            97% / 91%                  5.5                 0.75  0.73
    aligned     4.2            0.61 (0.60)            94% / 81%                  4.9                 0.37  0.62

(val mel L1: mean |error| per log-mel value, the decoder on its own frames, or teacher-forced (TF); F0 r: of log
median F0 with the reference's, over the outputs Praat finds voiced, about half of them this early). So
``attention`` is the default; ``aligned`` has no exposure bias (its free-running error equals its training
error) and stays as an option.

Variable length: padding never changes z. Each conv layer's output is zeroed beyond the example's length (at that
layer's resolution), normalisation is per frame (LayerNorm over channels and mel bins, where the paper has batch
norm, whose statistics would mix padding and other examples into z), and the GRU runs over packed sequences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt
from torch import Tensor, nn
from torch.distributions import Distribution, Normal
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from vaekit.core.audio import MelSettings, mel_to_audio
from vaekit.core.figures import AudioClip, Figure, ImageGrid, paired_rows
from vaekit.core.likelihoods import DiagonalGaussian, QuantizedLogNormal, kl_per_dimension, standard_normal
from vaekit.core.schedules import Ramp
from vaekit.models.base import Ability, Batch, LossOutput, Model
from vaekit.models.registry import register


@dataclass
class SpeechVAEConfig:
    input_shape: tuple[int] = (80,)  # one mel frame: n_mels (the data set sets it)
    vocab_size: Annotated[int, Ge(2)] = 29  # characters + padding (the data set sets it)
    mel: MelSettings = field(default_factory=MelSettings)  # how the data's mels were made (for audio out)
    mel_mean: float = -6.0  # the input's normalisation (the data set sets both from its training split)
    mel_std: Annotated[float, Gt(0)] = 2.0
    likelihood: Literal["gaussian"] = "gaussian"
    latent_dim: Annotated[int, Ge(1)] = 16
    embed: Annotated[int, Ge(2)] = 128  # text encoder width
    text_convs: Annotated[int, Ge(0)] = 3
    ref_channels: tuple[int, ...] = (32, 32, 64, 64)  # reference encoder conv2d layers (3x3, mel stride 2)
    ref_time_strides: tuple[int, ...] = (2, 2, 1, 1)  # their strides over time
    ref_gru: Annotated[int, Ge(1)] = 128
    decoder: Literal["attention", "aligned"] = "attention"
    decoder_hidden: Annotated[int, Ge(1)] = 128
    decoder_layers: Annotated[int, Ge(1)] = 2  # aligned: bidirectional GRU layers
    upsample_width: Annotated[float, Gt(0)] = 0.5  # aligned: Gaussian width, in character durations
    min_log_scale: float = -4.0  # the decoder's per-bin log sigma is kept above this
    kl_weight: Ramp = field(default_factory=lambda: Ramp(0.0, 1.0, length=2000))  # beta(t): KL warm-up

    def __post_init__(self) -> None:
        if len(self.ref_channels) != len(self.ref_time_strides):
            raise ValueError("ref_channels and ref_time_strides must have one entry per conv layer")


def frame_mask(lengths: Tensor, t_max: int) -> Tensor:
    """Bool [B, t_max]: true on the first lengths[b] frames."""
    return torch.arange(t_max, device=lengths.device)[None, :] < lengths[:, None]


def _packed_rnn(rnn: nn.RNNBase, seq: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """``rnn`` over the first lengths[b] steps of each sequence only: (outputs [B, T, H] zero beyond the length,
    last hidden state [layers * directions, B, H])."""
    packed = pack_padded_sequence(seq, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, last = rnn(packed)
    return pad_packed_sequence(out, batch_first=True, total_length=seq.shape[1])[0], last


class ReferenceEncoder(nn.Module):
    """mel [B, T, M] -> (mean, log-variance) of q(z | mel): conv2d (3x3) + per-frame LayerNorm + ReLU layers, a GRU
    over the frames, its last state through a linear layer. Padding beyond ``lengths`` never reaches z."""

    def __init__(self, n_mels: int, channels: tuple[int, ...], time_strides: tuple[int, ...], hidden: int,
                 latent_dim: int) -> None:
        super().__init__()
        self.strides = time_strides
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        c_in, f = 1, n_mels
        for c_out, s in zip(channels, time_strides, strict=True):
            self.convs.append(nn.Conv2d(c_in, c_out, 3, stride=(s, 2), padding=1))
            f = (f + 1) // 2
            self.norms.append(nn.LayerNorm([c_out, f]))
            c_in = c_out
        self.gru = nn.GRU(c_in * f, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 2 * latent_dim)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        h = (x * frame_mask(lengths, x.shape[1])[..., None]).unsqueeze(1)  # [B, 1, T, M]
        for conv, norm, s in zip(self.convs, self.norms, self.strides, strict=True):
            h = conv(h)
            lengths = (lengths + s - 1) // s  # ceil(L / s): the frames that saw only the utterance
            h = F.relu(norm(h.transpose(1, 2)).transpose(1, 2))  # LayerNorm over (channels, mel) of each frame
            h = h * frame_mask(lengths, h.shape[2])[:, None, :, None]
        _, last = _packed_rnn(self.gru, h.permute(0, 2, 1, 3).flatten(2), lengths)
        mean, log_var = self.out(last[-1]).chunk(2, dim=-1)
        return mean, log_var


class TextEncoder(nn.Module):
    """Character ids [B, N] -> encodings [B, N, E] (zero beyond each length): embedding, conv1d layers
    (kernel 5, per-position LayerNorm, ReLU), a bidirectional GRU -- Tacotron 2's encoder in small."""

    def __init__(self, vocab_size: int, width: int, convs: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, width, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(width, width, 5, padding=2) for _ in range(convs))
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(convs))
        self.gru = nn.GRU(width, width // 2, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * (width // 2), width)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        mask = frame_mask(lengths, ids.shape[1])[..., None]
        h = self.embedding(ids) * mask
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = F.relu(norm(conv(h.transpose(1, 2)).transpose(1, 2))) * mask
        return self.proj(_packed_rnn(self.gru, h, lengths)[0]) * mask


def gaussian_upsample(h: Tensor, text_lengths: Tensor, lengths: Tensor, t_max: int, width: float) -> Tensor:
    """Spread encodings h [B, N, E] over frames [B, t_max, E]: character i of an utterance of T frames is centred
    at c_i = (i + 1/2) T / N with sigma = ``width`` T / N, and frame t takes sum_i w_ti h_i with
    w_ti = softmax_i(-(t + 1/2 - c_i)^2 / (2 sigma^2)) (Non-Attentive Tacotron's upsampling, uniform durations)."""
    step = (lengths.float() / text_lengths.float())[:, None]  # [B, 1] frames per character
    centres = (torch.arange(h.shape[1], device=h.device) + 0.5)[None, :] * step  # [B, N]
    t = torch.arange(t_max, device=h.device)[None, :, None] + 0.5  # [1, T, 1]
    logits = -0.5 * ((t - centres[:, None, :]) / (width * step[:, :, None])) ** 2  # [B, T, N]
    logits = logits.masked_fill(~frame_mask(text_lengths, h.shape[1])[:, None, :], -math.inf)
    return torch.softmax(logits, -1) @ h


class AlignedDecoder(nn.Module):
    """Styled text encodings -> T frames at once: Gaussian upsampling, the relative position t/T, a bidirectional
    GRU over the frames (packed, so an utterance's frames do not depend on the padding), a linear layer."""

    def __init__(self, width: int, hidden: int, layers: int, n_mels: int, upsample_width: float) -> None:
        super().__init__()
        self.upsample_width = upsample_width
        self.gru = nn.GRU(width + 1, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, n_mels)

    def forward(self, h: Tensor, text_lengths: Tensor, lengths: Tensor, t_max: int,
                target: Tensor | None = None) -> Tensor:
        context = gaussian_upsample(h, text_lengths, lengths, t_max, self.upsample_width)
        position = (torch.arange(t_max, device=h.device)[None, :] + 0.5) / lengths[:, None].float()
        return self.out(_packed_rnn(self.gru, torch.cat([context, position[..., None]], -1), lengths)[0])


class AttentionDecoder(nn.Module):
    """Tacotron 2's decoder in small (Shen et al. 2018): per step, a prenet on the last frame, an attention GRU,
    location-sensitive attention over the text (Chorowski et al. 2015: content plus a conv of the cumulative
    alignment), a decoder GRU and ``r`` frames out. Teacher-forced in training; the length is given."""

    def __init__(self, width: int, hidden: int, n_mels: int, r: int = 2, prenet: int = 128, attention: int = 64,
                 filters: int = 16, kernel: int = 15) -> None:
        super().__init__()
        self.r, self.n_mels = r, n_mels
        self.prenet = nn.Sequential(nn.Linear(n_mels, prenet), nn.ReLU(), nn.Dropout(0.5), nn.Linear(prenet, prenet),
                                    nn.ReLU(), nn.Dropout(0.5))
        self.attention_rnn = nn.GRUCell(prenet + width, hidden)
        self.query, self.memory = nn.Linear(hidden, attention, bias=False), nn.Linear(width, attention)
        self.location = nn.Sequential(nn.Conv1d(1, filters, kernel, padding=kernel // 2, bias=False),
                                      nn.Conv1d(filters, attention, 1, bias=False))
        self.energy = nn.Linear(attention, 1, bias=False)
        self.decoder_rnn = nn.GRUCell(hidden + width, hidden)
        self.out = nn.Linear(hidden + width, r * n_mels)

    def forward(self, h: Tensor, text_lengths: Tensor, lengths: Tensor, t_max: int,
                target: Tensor | None = None) -> Tensor:
        b, n, _ = h.shape
        keys = self.memory(h)
        valid = frame_mask(text_lengths, n)
        att_h = h.new_zeros(b, self.attention_rnn.hidden_size)
        dec_h = h.new_zeros(b, self.decoder_rnn.hidden_size)
        context, cumulative = h.new_zeros(b, h.shape[-1]), h.new_zeros(b, n)
        last = h.new_zeros(b, self.n_mels)  # the <GO> frame
        frames = []
        for k in range(math.ceil(t_max / self.r)):
            att_h = self.attention_rnn(torch.cat([self.prenet(last), context], -1), att_h)
            loc = self.location(cumulative[:, None]).transpose(1, 2)  # [B, N, A]
            energies = self.energy(torch.tanh(self.query(att_h)[:, None] + keys + loc))[..., 0]
            align = torch.softmax(energies.masked_fill(~valid, -math.inf), -1)
            cumulative = cumulative + align
            context = (align[:, :, None] * h).sum(1)
            dec_h = self.decoder_rnn(torch.cat([att_h, context], -1), dec_h)
            out = self.out(torch.cat([dec_h, context], -1)).view(b, self.r, self.n_mels)
            frames.append(out)
            teacher = target is not None and (k + 1) * self.r <= target.shape[1]
            last = target[:, (k + 1) * self.r - 1] if teacher else out[:, -1].detach()
        return torch.cat(frames, 1)[:, :t_max]


class MaskedFrames(Distribution):
    """Independent Normal(loc, scale) over the frames [T, M] an utterance has; frames beyond its length (padding)
    contribute nothing to log_prob and are zero in the mean."""

    arg_constraints: dict = {}

    def __init__(self, loc: Tensor, scale: Tensor, mask: Tensor) -> None:
        self.frames, self.mask = Normal(loc, scale, validate_args=False), mask
        super().__init__(loc.shape[:-2], loc.shape[-2:], validate_args=False)

    def log_prob(self, value: Tensor) -> Tensor:
        return (self.frames.log_prob(value).sum(-1) * self.mask).sum(-1)

    @property
    def mean(self) -> Tensor:
        return self.frames.loc * self.mask[..., None]


@register("speech_vae", SpeechVAEConfig)
class SpeechVAE(Model):
    """Style VAE for speech synthesis (Zhang et al. 2019): reference encoder -> z, text + z -> mel spectrogram."""

    abilities = frozenset({Ability.LATENT_MEANS, Ability.RECONSTRUCT, Ability.FIGURES})
    monitor = ("elbo", "max")

    def __init__(self, config: SpeechVAEConfig) -> None:
        super().__init__()
        self.config = c = config
        self.scheduled("kl_weight", c.kl_weight)
        n_mels = c.input_shape[-1]
        self.latent_dim = c.latent_dim
        self.reference_encoder = ReferenceEncoder(n_mels, tuple(c.ref_channels), tuple(c.ref_time_strides), c.ref_gru,
                                                  c.latent_dim)
        self.text_encoder = TextEncoder(c.vocab_size, c.embed, c.text_convs)
        self.style = nn.Linear(c.latent_dim, c.embed)
        if c.decoder == "attention":
            self.decoder: nn.Module = AttentionDecoder(c.embed, c.decoder_hidden, n_mels)
        else:
            self.decoder = AlignedDecoder(c.embed, c.decoder_hidden, c.decoder_layers, n_mels, c.upsample_width)
        self.log_scale = nn.Parameter(torch.full((n_mels,), math.log(c.mel_std) - 1.0))  # sigma per mel bin
        self.length_net = nn.Sequential(nn.Linear(c.embed, c.embed), nn.ReLU(), nn.Linear(c.embed, 1))
        self.length_log_scale = nn.Parameter(torch.tensor(-1.0))

    # -- the distributions ------------------------------------------------------------------------------------
    def normalise(self, mel: Tensor) -> Tensor:
        return (mel - self.config.mel_mean) / self.config.mel_std

    def encode_style(self, mel: Tensor, lengths: Tensor) -> DiagonalGaussian:
        """q(z | mel) = N(mu, diag sigma^2) from log-mels [B, T, M] whose first lengths[b] frames are the utterance."""
        mean, log_var = self.reference_encoder(self.normalise(mel), lengths)
        return DiagonalGaussian(mean, log_var)

    def styled_text(self, text: Tensor, text_lengths: Tensor, z: Tensor) -> Tensor:
        """Text encodings with the projected style added to each character: h_i + W z, [B, N, E]."""
        mask = frame_mask(text_lengths, text.shape[1])[..., None]
        return (self.text_encoder(text, text_lengths) + self.style(z)[:, None, :]) * mask

    def length_distribution(self, h: Tensor, text_lengths: Tensor) -> QuantizedLogNormal:
        """P(T | text, z) over the integer lengths: a quantized log-normal whose log-mean reads the styled
        encodings' average over the characters."""
        pooled = h.sum(1) / text_lengths[:, None].float()
        scale = self.length_log_scale.clamp(min=-5.0).exp()
        return QuantizedLogNormal(self.length_net(pooled)[:, 0], scale.expand(len(h)))

    def mel_distribution(self, h: Tensor, text_lengths: Tensor, lengths: Tensor, t_max: int,
                         target: Tensor | None = None) -> MaskedFrames:
        """p(mel | text, z, T): a diagonal Gaussian per frame over the first lengths[b] of t_max frames."""
        out = self.decoder(h, text_lengths, lengths, t_max, None if target is None else self.normalise(target))
        loc = out * self.config.mel_std + self.config.mel_mean
        scale = self.log_scale.clamp(min=self.config.min_log_scale).exp()
        return MaskedFrames(loc, scale.expand_as(loc), frame_mask(lengths, t_max))

    def prior(self) -> Distribution:
        return standard_normal(self.latent_dim, like=self.log_scale)

    # -- objective ----------------------------------------------------------------------------------------------
    def loss(self, batch: Batch) -> LossOutput:
        """-(E_q[log p(mel | text, z, T) + log P(T | text, z)] - beta KL(q(z | mel) || N(0, I))), one z per
        utterance; the logged ``elbo`` is the true bound (beta = 1), ``kl_j`` the KL of latent j."""
        x, lengths, text, text_lengths = batch["x"], batch["lengths"], batch["text"], batch["text_lengths"]
        q = self.encode_style(x, lengths)
        z = q.rsample()
        h = self.styled_text(text, text_lengths, z)
        p_mel = self.mel_distribution(h, text_lengths, lengths, x.shape[1], target=x)
        log_p_mel = p_mel.log_prob(x)
        log_p_length = self.length_distribution(h, text_lengths).log_prob(lengths)
        kl_dims = kl_per_dimension(q)
        kl = kl_dims.sum(-1)
        rec = log_p_mel + log_p_length
        frames = lengths.float() * x.shape[-1]
        mask = frame_mask(lengths, x.shape[1])[..., None]
        terms = {"elbo": rec - kl, "rec": rec, "log_p_mel": log_p_mel, "log_p_length": log_p_length, "kl": kl,
                 "mel_l1": ((p_mel.mean - x).abs() * mask).flatten(1).sum(-1) / frames,
                 **{f"kl_{j}": kl_dims[:, j] for j in range(self.latent_dim)}}
        return LossOutput(loss=-(rec - self.kl_weight * kl).mean(), terms={k: v.detach() for k, v in terms.items()})

    # -- use ------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def synthesize(self, text: Tensor, text_lengths: Tensor | None = None, z: Tensor | None = None,
                   reference: Tensor | None = None, reference_lengths: Tensor | None = None,
                   lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Log-mels [B, T_max, M] (zero beyond each length) and their lengths [B] of ``text`` [B, N] in a style:
        ``z`` [B, D] if given, else the posterior mean of q(z | reference), else the prior's mean 0. The lengths are
        given, or the median of P(T | text, z)."""
        if text_lengths is None:
            text_lengths = (text != 0).sum(1)
        if z is None:
            z = (self.encode_style(reference, reference_lengths).mean if reference is not None
                 else text.new_zeros(len(text), self.latent_dim, dtype=self.log_scale.dtype))
        h = self.styled_text(text, text_lengths, z)
        if lengths is None:
            lengths = self.length_distribution(h, text_lengths).median.long().clamp(min=2)
        return self.mel_distribution(h, text_lengths, lengths, int(lengths.max())).mean, lengths

    @torch.no_grad()
    def reconstruct(self, batch: Batch) -> Tensor:
        """The mean of p(mel | text, z, T) at z = E_q[z | mel], with the utterance's own length and text."""
        x = batch["x"]
        mel, _ = self.synthesize(batch["text"], batch["text_lengths"], reference=x, reference_lengths=batch["lengths"],
                                 lengths=batch["lengths"])
        return F.pad(mel, (0, 0, 0, x.shape[1] - mel.shape[1]))

    @torch.no_grad()
    def latent_means(self, batch: Batch) -> dict[str, Tensor]:
        return {"z": self.encode_style(batch["x"], batch["lengths"]).mean}

    def mel_images(self, mel: Tensor, lengths: Tensor) -> Tensor:
        """Log-mels [B, T, M] as images [B, 1, M, T] in [0, 1] (low frequencies at the bottom; mean +- 3 std of the
        data mapped to black..white, padding black)."""
        c = self.config
        img = ((mel - c.mel_mean) / (6 * c.mel_std) + 0.5).clamp(0, 1) * frame_mask(lengths, mel.shape[1])[..., None]
        return img.transpose(1, 2).flip(1)[:, None]

    @torch.no_grad()
    def figures(self, batch: Batch) -> dict[str, Figure]:
        """Reconstructions (rows of targets above their reconstructions), style transfer (the first example's text
        spoken in the style of each reference, below the references) and the first reconstruction as audio
        (Griffin-Lim)."""
        n = min(8, len(batch["x"]))
        sub = {k: v[:n] for k, v in batch.items()}
        x, lengths = sub["x"], sub["lengths"]
        recon = self.reconstruct(sub)
        figures: dict[str, Figure] = {
            "reconstructions": ImageGrid(paired_rows(self.mel_images(x, lengths), self.mel_images(recon, lengths),
                                                     nrow=4), nrow=4)}
        text = sub["text"][:1].expand(n, -1)
        moved, moved_lengths = self.synthesize(text, sub["text_lengths"][:1].expand(n), reference=x,
                                               reference_lengths=lengths)
        t_max = max(x.shape[1], moved.shape[1])
        pad = lambda m: F.pad(m, (0, 0, 0, t_max - m.shape[1]))
        figures["transfer"] = ImageGrid(paired_rows(self.mel_images(pad(x), lengths),
                                                    self.mel_images(pad(moved), moved_lengths), nrow=4), nrow=4)
        audio = mel_to_audio(recon[0, : int(lengths[0])], self.config.mel, n_iter=32)
        figures["reconstruction_audio"] = AudioClip(audio, self.config.mel.sample_rate)
        return figures
