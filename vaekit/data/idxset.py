"""Any data set stored as MNIST is: ``vaekit train conv_vae --data idx --data-dir DIR``.

``data.dir`` holds the four standard IDX files, each plain or gzipped (``.gz``); a plain file is preferred
when both are present. Images are idx3 [N, H, W] (grey) or idx4 [N, H, W, C] with C = 1 or 3 (channels last,
as the IDX layout stores them); labels are idx1 class indices. Fashion-MNIST, KMNIST, EMNIST and the like
load unchanged.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vaekit.data.files import DataError, md5_of_gzip_content
from vaekit.data.idx import read_idx
from vaekit.data.images import UserDataConfig, data_path, user_splits
from vaekit.data.registry import Splits, register_data

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass
class IdxConfig(UserDataConfig):
    name: str = "idx"
    # File name (with or without .gz) -> md5 of its uncompressed content, checked when given. The content, not
    # the .gz: gzip headers carry timestamps, so the same data compressed twice differs.
    md5: dict[str, str] = field(default_factory=dict)


def md5_of_content(path: Path) -> str:
    """md5 of a file's bytes, uncompressed first if it is gzipped."""
    if path.suffix == ".gz":
        return md5_of_gzip_content(path)
    h = hashlib.md5()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise DataError(f"{path}: not readable ({e.strerror or e})") from None
    return h.hexdigest()


def locate(folder: Path, md5: dict[str, str]) -> dict[str, Path]:
    """The four files (plain or .gz) in ``folder``, each checked against ``md5`` where it gives a sum."""
    known = set(FILES.values()) | {n + ".gz" for n in FILES.values()}
    for key, value in md5.items():
        if key not in known:
            raise DataError(f"data.md5: unknown file {key!r}; expected one of the standard names "
                            f"{', '.join(FILES.values())} (with or without .gz)")
        if not re.fullmatch(r"[0-9a-fA-F]{32}", value):
            raise DataError(f"data.md5[{key!r}]: {value!r} is not an md5 sum (32 hex digits)")
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder (data set 'idx' reads a folder holding the four IDX files)")
    paths = {}
    for role, name in FILES.items():
        path = next((p for p in (folder / name, folder / (name + ".gz")) if p.is_file()), None)
        if path is None:
            raise DataError(f"{folder / name}: file not found (nor {name}.gz); data set 'idx' needs "
                            f"{', '.join(FILES.values())}")
        want = md5.get(path.name, md5.get(name, md5.get(name + ".gz")))
        if want is not None and (got := md5_of_content(path)) != want.lower():
            raise DataError(f"{path}: md5 of content is {got}, expected {want.lower()} (corrupt or wrong file)")
        paths[role] = path
    return paths


def read_images(path: Path) -> Tensor:
    """uint8 [N, C, H, W] from an idx3 [N, H, W] or idx4 [N, H, W, C] file."""
    a = read_idx(path)
    if a.ndim == 4 and a.shape[3] in (1, 3):
        a = a.transpose(0, 3, 1, 2)
    elif a.ndim == 3:
        a = a[:, None]
    else:
        raise DataError(f"{path}: shape {a.shape}: expected images, idx3 [N, H, W] or idx4 [N, H, W, C] with C 1 or 3")
    if a.shape[0] == 0:
        raise DataError(f"{path}: no images")
    return torch.from_numpy(np.array(a))  # a copy (ascontiguousarray is none when contiguous): the buffer is read-only


def read_labels(path: Path, n: int) -> Tensor:
    """int64 [N] labels from an idx1 file that must label ``n`` images."""
    a = read_idx(path)
    if a.ndim != 1:
        raise DataError(f"{path}: shape {a.shape}: expected labels, idx1 [N]")
    if len(a) != n:
        raise DataError(f"{path}: {len(a)} labels for the {n} images")
    return torch.from_numpy(a.astype(np.int64))


@register_data("idx", IdxConfig)
def build_idx(cfg: IdxConfig) -> Splits:
    """A set in MNIST's IDX format: train-/t10k-images-idx3-ubyte and -labels-idx1-ubyte, plain or .gz.

    The t10k files are the test set; ``data.val_fraction`` of the training images (or ``data.val_size``
    images) is the validation set. Optional ``data.md5`` sums are checked."""
    folder = data_path(cfg, "a folder with the four IDX files")
    paths = locate(folder, cfg.md5)
    x, x_test = read_images(paths["train_images"]), read_images(paths["test_images"])
    if x.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{paths['test_images']}: images are {tuple(x_test.shape[1:])} (C, H, W) but the training "
                        f"images {tuple(x.shape[1:])}")
    y = read_labels(paths["train_labels"], len(x))
    y_test = read_labels(paths["test_labels"], len(x_test))
    n_classes = int(max(y.max(), y_test.max())) + 1
    return user_splits(cfg, x, y, x_test, y_test, n_classes=n_classes, source=str(folder))
