"""Speech from a trained ``speech_vae`` run (Zhang et al. 2019): style transfer from a reference recording, style
control by setting z, and traversals of one z dimension. Writes WAVs (Griffin-Lim from the mel) and mel PNGs.

    vaekit speak runs/speech_vae_fsdd --text seven --reference some.wav -o out.wav   # z from the reference
    vaekit speak runs/speech_vae_fsdd --text seven --z 0.5,-1,0,2 -o out.wav         # z given (the rest 0)
    vaekit speak runs/speech_vae_fsdd --text seven --traverse 3 -o trav.wav          # z_3 from -3 to 3: WAVs + PNG
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vaekit.core import options as opt
from vaekit.core.audio import MelSettings, load_wav, log_mel, mel_to_audio, write_wav


def load_speech_run(run: str | Path) -> tuple[nn.Module, Any, Path]:
    """A trained run whose model synthesises speech (``synthesize``), its config and directory."""
    from vaekit.run.io import load_run

    model, cfg, run_dir = load_run(run)
    if not callable(getattr(model, "synthesize", None)):
        raise ValueError(f"{run}: a {type(model).__name__} does not speak; train a speech_vae")
    return model, cfg, run_dir


def reference_mel(path: str | Path, settings: MelSettings) -> Tensor:
    """The log-mel [1, T, M] of a 16-bit PCM mono WAV (resampled to the model's rate if it has another)."""
    return log_mel(load_wav(path, settings.sample_rate), settings)[None]


def parse_z(text: str, dim: int) -> Tensor:
    """``"0.5,-1,2"`` -> z [dim]: the values given, zeros (the prior mean) for the dimensions left out."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--z {text!r}: give comma-separated numbers, e.g. --z 0.5,-1,2") from None
    if not values or len(values) > dim or not all(math.isfinite(v) for v in values):
        raise ValueError(f"--z {text!r}: 1 to {dim} finite numbers (the model's z has {dim} dimensions)")
    return torch.tensor(values + [0.0] * (dim - len(values)))


@torch.no_grad()
def speak(model: nn.Module, text: str, z: Tensor, frames: int | None = None,
          length_scale: float = 1.0) -> Tensor:
    """The log-mel [T, M] of ``text`` spoken in style ``z`` [D]; ``frames`` fixes its length, else the model's
    median length, times ``length_scale``."""
    from vaekit.data.speech import text_to_ids

    ids = torch.tensor([text_to_ids(text)])
    z = z[None].to(model.log_scale.dtype)
    lengths = None if frames is None else torch.tensor([frames])
    if lengths is None and length_scale != 1.0:
        _, natural = model.synthesize(ids, z=z)
        lengths = (natural.float() * length_scale).round().long().clamp(min=2)
    mel, lengths = model.synthesize(ids, z=z, lengths=lengths)
    return mel[0, : int(lengths[0])]


def save_mels_png(mels: list[Tensor], titles: list[str], path: str | Path, settings: MelSettings) -> Path:
    """Log-mel spectrograms side by side (time in seconds, mel bins upwards), one panel each, on a shared scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = [len(m) * settings.hop_length / settings.sample_rate for m in mels]
    fig, axes = plt.subplots(1, len(mels), figsize=(max(4.0, 1.2 + 2.2 * len(mels)), 3.0), dpi=100, squeeze=False,
                             gridspec_kw={"width_ratios": [max(s, 0.1) for s in seconds]})
    lo, hi = min(float(m.min()) for m in mels), max(float(m.max()) for m in mels)
    for ax, mel, title, s in zip(axes[0], mels, titles, seconds, strict=True):
        ax.imshow(mel.T.cpu().numpy(), origin="lower", aspect="auto", extent=(0, s, 0, mel.shape[1]), vmin=lo,
                  vmax=hi, cmap="magma")
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("s", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("mel bin", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def style_of(model: nn.Module, reference: str | None, z: str | None) -> tuple[Tensor, str]:
    """z [D] and a description: the values given, else the posterior mean of q(z | reference), else 0."""
    dim = model.latent_dim
    if z is not None:
        return parse_z(z, dim), f"z = {z}"
    if reference is not None:
        mel = reference_mel(reference, model.config.mel)
        return model.encode_style(mel, torch.tensor([mel.shape[1]])).mean[0], f"style of {Path(reference).name}"
    return torch.zeros(dim), "z = 0"


def cmd_speak(args: argparse.Namespace) -> None:
    model, _, run_dir = load_speech_run(args.run)
    torch.manual_seed(args.seed)
    settings: MelSettings = model.config.mel
    z, how = style_of(model, args.reference, args.z)
    out = Path(args.out or run_dir / "speak" / f"{args.text.replace(' ', '_')}.wav")
    audio = lambda mel: mel_to_audio(mel, settings, n_iter=args.iterations, seed=args.seed)
    written: list[Path] = []
    if args.traverse is None:
        mel = speak(model, args.text, z, args.frames, args.length_scale)
        written.append(write_wav(out.with_suffix(".wav"), audio(mel), settings.sample_rate))
        panels, titles = [mel], [f"{args.text!r}, {how}"]
        if args.reference is not None:
            panels.insert(0, reference_mel(args.reference, settings)[0])
            titles.insert(0, f"reference {Path(args.reference).name}")
        written.append(save_mels_png(panels, titles, out.with_suffix(".png"), settings))
    else:
        d = args.traverse
        if not 0 <= d < model.latent_dim:
            raise ValueError(f"--traverse {d}: the model's z has dimensions 0..{model.latent_dim - 1}")
        values = torch.linspace(-args.radius, args.radius, args.steps)
        mels = []
        for v in values.tolist():
            zv = z.clone()
            zv[d] = v
            mels.append(speak(model, args.text, zv, args.frames, args.length_scale))
            written.append(write_wav(out.with_name(f"{out.stem}_z{d}_{v:+.1f}.wav"), audio(mels[-1]),
                                     settings.sample_rate))
        written.append(save_mels_png(mels, [f"z{d} = {v:+.1f}" for v in values.tolist()],
                                     out.with_name(f"{out.stem}_z{d}.png"), settings))
    for path in written:
        print(f"vaekit: wrote {path}")


def _check_words(text: str) -> str:
    from vaekit.data.speech import text_to_ids

    text_to_ids(text)  # a ValueError naming the characters it cannot say
    return text


def add_speak_parser(sub: Any) -> argparse.ArgumentParser:
    """``vaekit speak RUN ...``: add the subcommand to the CLI's subparsers (one line in vaekit/cli.py)."""
    s = sub.add_parser("speak", help="speech from a speech_vae run: style transfer (--reference), control (--z), "
                                     "traversals (--traverse); WAV + mel PNG")
    s.add_argument("run", type=opt.existing_path, help="run directory of a speech_vae")
    s.add_argument("--text", required=True, type=opt.as_type("words", _check_words),
                   help="the word(s) to say: letters, space, apostrophe")
    s.add_argument("--reference", type=opt.existing_file,
                   help="a 16-bit PCM mono WAV whose style to use (z = the mean of q(z | its mel))")
    s.add_argument("--z", type=opt.vector,
                   help="comma-separated values of z (the dimensions left out are 0; wins over --reference)")
    s.add_argument("--traverse", type=opt.integer(0, 1023), metavar="DIM",
                   help="move z_DIM from -radius to radius (the other "
                                                               "dimensions from --reference/--z, else 0)")
    s.add_argument("--radius", type=opt.number(0, 100), default=3.0)
    s.add_argument("--steps", type=opt.integer(2, 101), default=7, help="values of the traversed dimension")
    s.add_argument("--frames", type=opt.count(10**5), help="length in frames (default: the model's, from text and z)")
    s.add_argument("--length-scale", type=opt.number(0, 100), default=1.0,
                   help="stretch the model's length (>1: slower)")
    s.add_argument("--iterations", type=opt.count(10**4), default=60, help="Griffin-Lim iterations")
    s.add_argument("--seed", type=opt.seed, default=0, help="Griffin-Lim's initial phase")
    s.add_argument("-o", "--out", type=opt.out_path,
                   help="WAV path (the PNG goes beside it); default RUN/speak/TEXT.wav")
    s.set_defaults(func=cmd_speak)
    return s
