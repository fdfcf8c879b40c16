"""A folder of PNG / JPEG images as a data set: ``vaekit train conv_vae --data images --data-dir DIR``.

Also home of what the user-data sets (``images``, ``arrays``, ``idx``) share: ``data.dir`` is required and
names the data itself, validation (and, where the data has no test split, the test set) is a fraction of the
examples cut by a fixed permutation.
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from annotated_types import Ge, Gt, Lt
from PIL import Image, ImageOps
from torch import Tensor

from vaekit.data.files import DataError
from vaekit.data.imagesets import ImageDataConfig, image_splits
from vaekit.data.registry import Splits, register_data

SUFFIXES = {".png", ".jpg", ".jpeg"}
PROGRESS_FROM = 1000  # files; fewer read in a blink


@dataclass
class UserDataConfig(ImageDataConfig):
    # MNIST's fixed 10,000 means nothing for the user's data: by default validation is a fraction of the
    # training examples; an explicit val_size (a count) overrides it.
    val_size: Annotated[int, Ge(0)] | None = None
    val_fraction: Annotated[float, Ge(0), Lt(1)] = 0.1


def data_path(cfg: UserDataConfig, what: str) -> Path:
    """``cfg.dir`` as a path that exists. Not :func:`~vaekit.data.files.resolve_dir`: the user's folder is the
    data itself, and a class subfolder that happens to share the set's name must not be descended into."""
    if cfg.dir is None:
        raise DataError(f"data.dir (--data-dir) must name {what} for data set {cfg.name!r}")
    path = Path(cfg.dir).expanduser()
    if not path.exists():
        raise DataError(f"{path}: not found (data.dir of data set {cfg.name!r})")
    return path


def held_out(fraction: float, n: int) -> int:
    """How many of ``n`` examples a fraction holds out: at least one when the fraction is positive, never all."""
    if not 0 <= fraction < 1:
        raise DataError(f"a held-out fraction must be in [0, 1), got {fraction}")
    return 0 if fraction == 0 else min(max(1, round(fraction * n)), n - 1)


def split_test(n: int, fraction: float, seed: int, source: str) -> tuple[Tensor, Tensor]:
    """(train, test) indices of ``n`` examples: a fixed permutation whose first ``fraction`` is the test set."""
    if n < 2:
        raise DataError(f"{source}: {n} example(s); need at least 2 to cut a test set")
    n_test = held_out(fraction, n)
    if n_test == 0:
        raise DataError(f"{source}: data.test_fraction must be positive when the data has no test split")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_test:], perm[:n_test]


def user_splits(cfg: UserDataConfig, train: Tensor, train_labels: Tensor | None, test: Tensor,
                test_labels: Tensor | None, n_classes: int | None, source: str) -> Splits:
    """:func:`image_splits` with the validation count taken from ``val_fraction`` unless ``val_size`` is set."""
    n_val = cfg.val_size if cfg.val_size is not None else held_out(cfg.val_fraction, len(train))
    return image_splits(dataclasses.replace(cfg, val_size=n_val), train, train_labels, test, test_labels,
                        n_classes=n_classes, source=source)


@dataclass
class ImageFolderConfig(UserDataConfig):
    name: str = "images"
    size: tuple[Annotated[int, Ge(1)], Annotated[int, Ge(1)]] = (64, 64)  # (H, W) after resize + centre crop
    channels: Literal[1, 3] = 1  # 1: greyscale (Pillow mode L), 3: RGB
    test_fraction: Annotated[float, Gt(0), Lt(1)] = 0.1


def find_images(folder: Path) -> list[Path]:
    """The PNG / JPEG files under ``folder``, sorted. Hidden files and folders are skipped: macOS ``._x.jpg``
    resource forks and ``.ipynb_checkpoints`` look like images but are not the user's data."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(root) / f for f in files if not f.startswith(".") and Path(f).suffix.lower() in SUFFIXES]
    return sorted(found)


def _eight_bit(img: Image.Image) -> Image.Image:
    """16-bit greyscale (PNG opens as mode I;16 or I) scaled to 8 bits: Pillow's convert("L") clips it instead,
    turning all but the darkest pixels white."""
    if not img.mode.startswith("I"):
        return img
    v = np.asarray(img, dtype=np.float64) / 257.0
    return Image.fromarray(np.clip(np.rint(v), 0, 255).astype(np.uint8), "L")


def read_image(path: Path, size: tuple[int, int], channels: int) -> np.ndarray:
    """One image as uint8 [C, H, W]: shorter side scaled to the target, then centre-cropped."""
    h, w = size
    mode = "L" if channels == 1 else "RGB"
    try:
        with Image.open(path) as img:
            # JPEG: decode at a reduced scale that still covers the target whichever way the EXIF tag turns it.
            img.draft(mode, (max(h, w), max(h, w)))
            img = ImageOps.exif_transpose(img)  # phone photos are stored sideways plus an orientation tag
            img = _eight_bit(img).convert(mode)
            # fit = crop to the target's aspect ratio around the centre, then resize: the same pixels as
            # resize-shorter-side-then-crop, with less resampling work.
            img = ImageOps.fit(img, (w, h), method=Image.Resampling.LANCZOS)
            arr = np.asarray(img, dtype=np.uint8)
    except Exception as e:  # whatever goes wrong decoding one file (Pillow raises many kinds), name that file
        # One line, even if Pillow's message has several, and without repeating the path it quotes.
        msg = " ".join(str(e).replace(f" {str(path)!r}", "").split()) or type(e).__name__
        raise DataError(f"{path}: not a readable image ({msg})") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def read_folder(folder: Path, size: tuple[int, int], channels: int) -> tuple[Tensor, Tensor | None, list[str]]:
    """uint8 [N, C, H, W] images, labels (the index of each image's top-level subfolder) and class names.

    Labels exist when the images lie in subfolders; images both in the root and in subfolders are an error,
    since they could not all be labelled."""
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder (data set 'images' reads a folder of PNG / JPEG files)")
    paths = find_images(folder)
    if not paths:
        raise DataError(f"{folder}: no .png / .jpg / .jpeg images found (searched recursively)")
    rel = [p.relative_to(folder).parts for p in paths]
    top = [r for r in rel if len(r) == 1]
    classes = sorted({r[0] for r in rel if len(r) > 1})
    if classes and top:
        raise DataError(f"{folder / top[0][0]}: image in the top folder beside class subfolders "
                        f"({', '.join(classes[:3])}{', ...' if len(classes) > 3 else ''}); move it into one")
    out = np.empty((len(paths), channels, *size), dtype=np.uint8)
    # Decoding and resampling release the GIL, so threads read several files at once.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        arrays = pool.map(lambda p: read_image(p, size, channels), paths)
        if len(paths) > PROGRESS_FROM:
            from tqdm import tqdm

            arrays = tqdm(arrays, total=len(paths), desc=f"reading {folder}", unit="img")
        for i, a in enumerate(arrays):
            out[i] = a
    labels = None
    if classes:
        index = {c: i for i, c in enumerate(classes)}
        labels = torch.tensor([index[r[0]] for r in rel], dtype=torch.long)
    return torch.from_numpy(out), labels, classes


@register_data("images", ImageFolderConfig)
def build_images(cfg: ImageFolderConfig) -> Splits:
    """A folder of PNG / JPEG images (recursive; subfolders are classes), resized and centre-cropped to data.size.

    ``data.test_fraction`` of the images (a fixed permutation, ``data.split_seed``) is the test set,
    ``data.val_fraction`` of the rest (or ``data.val_size`` images) the validation set."""
    folder = data_path(cfg, "a folder of PNG / JPEG images")
    x, y, classes = read_folder(folder, tuple(cfg.size), cfg.channels)
    train_idx, test_idx = split_test(len(x), cfg.test_fraction, cfg.split_seed, str(folder))
    pick = lambda t, i: None if t is None else t[i]
    return user_splits(cfg, x[train_idx], pick(y, train_idx), x[test_idx], pick(y, test_idx),
                       n_classes=len(classes) or None, source=str(folder))
