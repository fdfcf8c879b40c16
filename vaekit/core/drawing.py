"""The one figure writer: a model's typed figures (vaekit.core.figures) to files. Image grids with pillow
(torchvision does not load beside the CPU torch used here), curves with matplotlib, audio as 16-bit WAV."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from vaekit.core.figures import AudioClip, Bars, Curve, Figure, ImageGrid, Table, paired_rows


def grid(images: Tensor, nrow: int | None = None, pad: int = 2, scale: int = 1) -> Image.Image:
    """Tile images [N, C, H, W] with values in [0, 1] into one picture, ``nrow`` images per row."""
    images = images.detach().float().cpu().clamp(0, 1)
    if images.dim() == 3:
        images = images.unsqueeze(1)
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    canvas = torch.ones(c, rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        canvas[:, top : top + h, left : left + w] = images[i]
    arr = (canvas.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    img = Image.fromarray(arr[..., 0] if c == 1 else arr, mode="L" if c == 1 else "RGB")
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST) if scale > 1 else img


def save_grid(images: Tensor, path: str | Path, nrow: int | None = None, scale: int = 2) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid(images, nrow, scale=scale).save(path)
    return path


def save_reconstructions(x: Tensor, x_hat: Tensor, path: str | Path, scale: int = 2) -> Path:
    """Pairs of rows: originals above their reconstructions."""
    nrow = min(x.shape[0], 16)
    return save_grid(paired_rows(x, x_hat, nrow), path, nrow=nrow, scale=scale)


@contextlib.contextmanager
def _chart(path: str | Path, width: float) -> Iterator[Any]:
    """A matplotlib Axes (no display needed) saved to ``path`` on exit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, 3.2), dpi=100)
    yield ax
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def save_curve(curve: Curve, path: str | Path) -> Path:
    """A line chart of each named series."""
    with _chart(path, 5) as ax:
        for name, ys in curve.series.items():
            ax.plot(curve.x, ys, marker="o", markersize=3, label=name)
        if curve.log_x:
            ax.set_xscale("log")
        ax.set_xlabel(curve.xlabel)
        ax.set_ylabel(curve.ylabel)
        if len(curve.series) > 1:
            ax.legend()
    return Path(path)


def save_bars(bars: Bars, path: str | Path) -> Path:
    """A bar chart, one bar per label."""
    with _chart(path, max(4, 0.45 * len(bars.values) + 1.5)) as ax:
        ax.bar(range(len(bars.values)), bars.values, color="#1f77b4")
        ax.set_xticks(range(len(bars.labels)), bars.labels)
        ax.set_ylabel(bars.ylabel)
        if bars.title:
            ax.set_title(bars.title)
    return Path(path)


def wav_bytes(samples: Tensor, sample_rate: int) -> bytes:
    """16-bit mono PCM WAV of a waveform in [-1, 1] (the standard library's wave module)."""
    import io
    import wave

    pcm = (samples.detach().float().cpu().clamp(-1, 1) * 32767).round().to(torch.int16).numpy()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def save_audio(clip: AudioClip, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(clip.samples, clip.sample_rate))
    return path


def save_table(table: Table, path: str | Path) -> Path:
    """JSON rows, and a Markdown table beside them."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table.rows, indent=2, default=float))
    cols = list(dict.fromkeys(k for row in table.rows for k in row))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in cols) + " |" for row in table.rows]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return path


def write_figure(figure: Figure, stem: str | Path) -> Path:
    """Write a typed figure to ``stem`` plus the suffix its type takes (.png, .wav, .json)."""
    stem = Path(stem)
    if isinstance(figure, ImageGrid):
        return save_grid(figure.images, stem.with_suffix(".png"), nrow=figure.nrow)
    if isinstance(figure, Curve):
        return save_curve(figure, stem.with_suffix(".png"))
    if isinstance(figure, Bars):
        return save_bars(figure, stem.with_suffix(".png"))
    if isinstance(figure, AudioClip):
        return save_audio(figure, stem.with_suffix(".wav"))
    if isinstance(figure, Table):
        return save_table(figure, stem.with_suffix(".json"))
    raise TypeError(f"no writer for figures of type {type(figure).__name__}")
