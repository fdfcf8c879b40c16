"""Images held in a NumPy file as a data set: ``vaekit train conv_vae --data arrays --data-dir FILE_OR_FOLDER``.

``data.dir`` is a ``.npy`` / ``.npz`` file, or a folder holding exactly one. What is read:

- ``.npy``: the images, no labels.
- ``.npz``: ``x`` (or ``images``) and optionally ``y`` (or ``labels``); or a given test split as ``x_train``,
  ``x_test`` and optionally ``y_train``, ``y_test``; or a single array under any name (``np.savez(f, a)``).
  Other keys are refused, so a misspelt label key cannot silently give unlabelled data.

Images are [N, H, W] (grey), [N, H, W, C] or [N, C, H, W] with C = 1 or 3, of uint8 (or another integer type
holding 0..255), bool (0 / 255) or floats in [0, 1] (quantized as round(255 x)). Labels are integers >= 0, one
per image ([N] or [N, 1]). Files are loaded with ``allow_pickle=False``: a pickled array is refused, never run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from annotated_types import Gt, Lt
from torch import Tensor

from vaekit.data.files import DataError
from vaekit.data.images import UserDataConfig, data_path, split_test, user_splits
from vaekit.data.registry import Splits, register_data

SUFFIXES = {".npy", ".npz"}
ALIASES = {"x": "x", "images": "x", "y": "y", "labels": "y"}
SPLIT_KEYS = {"x_train", "x_test", "y_train", "y_test"}


@dataclass
class ArraysConfig(UserDataConfig):
    name: str = "arrays"
    test_fraction: Annotated[float, Gt(0), Lt(1)] = 0.1  # used only when the file has no x_test


def find_file(path: Path) -> Path:
    """``path`` itself if it is a .npy / .npz file, else the one such file in the folder ``path``."""
    if path.is_dir():
        found = sorted(p for p in path.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SUFFIXES)
        if len(found) != 1:
            names = ", ".join(p.name for p in found[:4]) + (", ..." if len(found) > 4 else "")
            raise DataError(f"{path}: {len(found)} .npy / .npz files ({names or 'none'}); the folder must hold "
                            "exactly one (put a given test split into one .npz as x_train, x_test)")
        return found[0]
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(f"{path}: not a .npy or .npz file")
    return path


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array in the file by key (``x`` for a .npy), never unpickling anything."""

    def refuse(e: Exception, key: str = "") -> DataError:
        where = f"{path}[{key!r}]" if key else str(path)
        if "pickle" in str(e).lower():
            return DataError(f"{where}: holds pickled Python objects, which are never loaded (save numeric arrays)")
        return DataError(f"{where}: not a readable NumPy file ({' '.join(str(e).split())})")

    try:
        loaded = np.load(path, allow_pickle=False)  # by content: a .npy named .npz (or the reverse) still reads
        if isinstance(loaded, np.ndarray):
            return {"x": loaded}
        with loaded as z:
            out = {}
            for key in z.files:
                try:
                    out[key] = z[key]
                except Exception as e:  # noqa: BLE001 (numpy and zipfile raise many kinds on a corrupt file)
                    raise refuse(e, key) from None
            return out
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 (a bad header can even raise SyntaxError from numpy's parser)
        raise refuse(e) from None


def pick_keys(keys: list[str], path: Path) -> dict[str, str]:
    """Which key of the file holds each of x, y (no test split) or x_train, x_test, y_train, y_test."""
    have = set(keys)
    if have & SPLIT_KEYS:
        if extra := sorted(have - SPLIT_KEYS):
            raise DataError(f"{path}: unexpected key(s) {', '.join(map(repr, extra))} beside x_train / x_test")
        for need in ("x_train", "x_test"):
            if need not in have:
                raise DataError(f"{path}: has {', '.join(sorted(have))} but no {need!r}")
        if ("y_train" in have) != ("y_test" in have):
            raise DataError(f"{path}: labels for one split only; give both y_train and y_test or neither")
        return {k: k for k in keys}
    if len(keys) == 1 and keys[0] not in ALIASES:
        return {"x": keys[0]}  # a lone array under any name (np.savez's arr_0) is the images
    out: dict[str, str] = {}
    for key in sorted(keys):
        if key not in ALIASES:
            raise DataError(f"{path}: unexpected key {key!r}; expected x (or images) and optionally y (or labels), "
                            "or x_train, x_test, y_train, y_test")
        if ALIASES[key] in out:
            raise DataError(f"{path}: both {out[ALIASES[key]]!r} and {key!r}; give one of them")
        out[ALIASES[key]] = key
    if "x" not in out:
        raise DataError(f"{path}: labels but no images (key x or images)")
    return out


def to_images(a: np.ndarray, where: str) -> Tensor:
    """uint8 [N, C, H, W] from any accepted layout and value type; ``where`` names the array in errors."""
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4:
        first, last = a.shape[1] in (1, 3), a.shape[3] in (1, 3)
        if first and last:
            raise DataError(f"{where}: shape {a.shape} is ambiguous: channels first or last?")
        if last:
            a = a.transpose(0, 3, 1, 2)
        elif not first:
            raise DataError(f"{where}: shape {a.shape} has no channel axis of 1 or 3 (second or last)")
    else:
        raise DataError(f"{where}: shape {a.shape}: expected [N, H, W], [N, H, W, C] or [N, C, H, W]")
    if a.shape[0] == 0:
        raise DataError(f"{where}: no images (shape {a.shape})")
    kind = a.dtype.kind
    if kind == "b":
        a = a.astype(np.uint8) * 255
    elif kind == "f":
        if not np.isfinite(a).all():
            raise DataError(f"{where}: contains NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 1:
            raise DataError(f"{where}: float values span [{lo:g}, {hi:g}]; expected [0, 1]")
        a = np.rint(a.astype(np.float64) * 255).astype(np.uint8)
    elif kind in "ui":
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{where}: integer values span [{lo}, {hi}]; expected 0..255")
        a = a.astype(np.uint8, copy=False)
    else:
        raise DataError(f"{where}: dtype {a.dtype}; expected uint8, bool or floats in [0, 1]")
    return torch.from_numpy(np.array(a))  # a copy: a memory-mapped or parsed buffer is read-only


def to_labels(a: np.ndarray, n: int, where: str) -> Tensor:
    """int64 [N] class indices; ``n`` is the number of images they label."""
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]  # Keras-style [N, 1]
    if a.dtype.kind not in "ui" or a.ndim != 1:
        raise DataError(f"{where}: labels must be integers of shape [N], got {a.dtype} {a.shape}")
    if len(a) != n:
        raise DataError(f"{where}: {len(a)} labels for {n} images")
    if len(a) and a.min() < 0:
        raise DataError(f"{where}: negative label {int(a.min())}")
    return torch.from_numpy(a.astype(np.int64))


@register_data("arrays", ArraysConfig)
def build_arrays(cfg: ArraysConfig) -> Splits:
    """Images from a .npy / .npz file (x, optional y; or x_train, x_test, ...), uint8 or floats in [0, 1].

    Without x_test, ``data.test_fraction`` of the images (a fixed permutation, ``data.split_seed``) is the test
    set; ``data.val_fraction`` of the training images (or ``data.val_size`` images) is the validation set."""
    path = find_file(data_path(cfg, "a .npy / .npz file or a folder holding one"))
    arrays = load_arrays(path)
    names = pick_keys(list(arrays), path)
    # Errors name the array by the key the file uses (images, arr_0, ...); a .npy has just the one.
    where = lambda key: f"{path}[{names[key]!r}]" if path.suffix.lower() == ".npz" else str(path)
    arrays = {key: arrays[name] for key, name in names.items()}
    if "x_train" in arrays:
        x, x_test = to_images(arrays["x_train"], where("x_train")), to_images(arrays["x_test"], where("x_test"))
        if x.shape[1:] != x_test.shape[1:]:
            raise DataError(f"{path}: x_train images are {tuple(x.shape[1:])} (C, H, W) but x_test "
                            f"{tuple(x_test.shape[1:])}")
        y = y_test = None
        if "y_train" in arrays:
            y = to_labels(arrays["y_train"], len(x), where("y_train"))
            y_test = to_labels(arrays["y_test"], len(x_test), where("y_test"))
    else:
        x_all = to_images(arrays["x"], where("x"))
        y_all = to_labels(arrays["y"], len(x_all), where("y")) if "y" in arrays else None
        train_idx, test_idx = split_test(len(x_all), cfg.test_fraction, cfg.split_seed, str(path))
        x, x_test = x_all[train_idx], x_all[test_idx]
        y, y_test = (None, None) if y_all is None else (y_all[train_idx], y_all[test_idx])
    n_classes = None if y is None else int(max(y.max(), y_test.max())) + 1
    return user_splits(cfg, x, y, x_test, y_test, n_classes=n_classes, source=str(path))
