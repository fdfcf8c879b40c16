"""PNG grids of images with pillow (torchvision does not load beside the CPU torch used here)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor


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


def paired_rows(x: Tensor, x_hat: Tensor, nrow: int = 16) -> Tensor:
    """Originals in one row, their reconstructions in the row below, ``nrow`` per row."""
    rows = []
    for i in range(0, x.shape[0], nrow):
        rows += [x[i : i + nrow], x_hat[i : i + nrow]]
    return torch.cat(rows)


def save_reconstructions(x: Tensor, x_hat: Tensor, path: str | Path, scale: int = 2) -> Path:
    """Pairs of rows: originals above their reconstructions."""
    nrow = min(x.shape[0], 16)
    return save_grid(paired_rows(x, x_hat, nrow), path, nrow=nrow, scale=scale)


def save_curve(
    xs: list[float], ys: list[float], path: str | Path, xlabel: str = "", ylabel: str = "", log_x: bool = False,
    size: tuple[int, int] = (480, 320),
) -> Path:
    """A minimal line plot with pillow (no plotting library needed): points, axes and end labels."""
    from PIL import ImageDraw

    xs_t = [math.log10(x) if log_x else x for x in xs]
    w, h = size
    left, right, top, bottom = 60, 30, 30, 40
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    x0, x1 = min(xs_t), max(xs_t) or 1
    y0, y1 = min(ys), max(ys)
    span_x, span_y = (x1 - x0) or 1.0, (y1 - y0) or 1.0

    def to_px(x: float, y: float) -> tuple[float, float]:
        return left + (x - x0) / span_x * (w - left - right), top + (y1 - y) / span_y * (h - top - bottom)

    draw.line([(left, top), (left, h - bottom), (w - right, h - bottom)], fill="black")
    pts = [to_px(x, y) for x, y in zip(xs_t, ys, strict=True)]
    draw.line(pts, fill=(31, 119, 180), width=2)
    for px, py in pts:
        draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=(31, 119, 180))
    for i, (x, y) in enumerate(((xs[0], ys[0]), (xs[-1], ys[-1]))):
        px, py = to_px(math.log10(x) if log_x else x, y)
        label = f"{y:.2f} at {x:g}"
        # first label right of its point, last label above-left of it, both inside the canvas
        draw.text((px + 6, py) if i == 0 else (px - 7 * len(label), py - 16), label, fill="black")
    draw.text((left, h - bottom + 8), f"{xlabel}{' (log scale)' if log_x else ''}: {xs[0]:g} .. {xs[-1]:g}",
              fill="black")
    draw.text((left, 6), ylabel, fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
