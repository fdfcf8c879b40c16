"""Data sets by name. Each builder returns train / val / test ``TensorImages`` from a ``DataConfig``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from vaekit.config import DataConfig
from vaekit.data import mnist
from vaekit.data.batches import TensorImages, binarize_fixed, loader
from vaekit.data.files import DataError


@dataclass
class Splits:
    train: TensorImages
    val: TensorImages
    test: TensorImages
    n_classes: int | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.train.shape


def _mnist(cfg: DataConfig) -> Splits:
    d = mnist.load(cfg.dir)
    n_val = cfg.val_size
    if not 0 <= n_val < len(d["train_images"]):
        raise DataError(f"data.val_size={n_val} must be in [0, {len(d['train_images'])})")
    # A fixed permutation decides the validation split, independent of the training seed.
    perm = torch.randperm(len(d["train_images"]), generator=torch.Generator().manual_seed(1234))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    binarized = cfg.binarize == "dynamic"
    train_mode = "dynamic" if binarized else "none"

    def fixed(images: torch.Tensor, seed: int) -> torch.Tensor:
        return binarize_fixed(images, seed) if binarized else images

    return Splits(
        train=TensorImages(d["train_images"][train_idx], d["train_labels"][train_idx], train_mode),
        val=TensorImages(fixed(d["train_images"][val_idx], cfg.test_binarize_seed + 1), d["train_labels"][val_idx]),
        test=TensorImages(fixed(d["test_images"], cfg.test_binarize_seed), d["test_labels"]),
        n_classes=10,
    )


DATASETS: dict[str, Callable[[DataConfig], Splits]] = {"mnist": _mnist}


def build(cfg: DataConfig) -> Splits:
    if cfg.name not in DATASETS:
        raise DataError(f"unknown data set {cfg.name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[cfg.name](cfg)


__all__ = ["DATASETS", "DataError", "Splits", "TensorImages", "build", "loader"]
