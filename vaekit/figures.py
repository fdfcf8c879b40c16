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


def save_reconstructions(x: Tensor, x_hat: Tensor, path: str | Path, scale: int = 2) -> Path:
    """Pairs of rows: originals above their reconstructions."""
    n = x.shape[0]
    nrow = min(n, 16)
    rows = []
    for i in range(0, n, nrow):
        rows += [x[i : i + nrow], x_hat[i : i + nrow]]
    return save_grid(torch.cat(rows), path, nrow=nrow, scale=scale)
