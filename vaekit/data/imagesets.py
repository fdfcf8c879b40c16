"""What every image data set shares: how stored 8-bit values are served (binarized, grey levels or
dequantized) and how train / validation / test splits are cut, so each loader only reads its files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from annotated_types import Ge
from torch import Tensor

from vaekit.data.batches import TensorExamples, binarize_fixed
from vaekit.data.files import DataError
from vaekit.data.registry import DataConfig, Observation, Splits


@dataclass
class ImageDataConfig(DataConfig):
    # dynamic: a fresh Bernoulli draw per batch (Burda et al.), evaluation sets binarized once with a fixed seed;
    # none: the 8-bit grey levels, served as k/255 (discrete) or, with dequantize=uniform, as (k + u)/256.
    binarize: Literal["dynamic", "none"] = "dynamic"
    dequantize: Literal["none", "uniform"] = "none"
    val_size: Annotated[int, Ge(0)] = 10000  # held out of the training examples
    test_binarize_seed: int = 0  # the fixed-seed binarized test set (validation uses this + 1)
    split_seed: int = 1234  # the fixed permutation that picks the validation examples


def observation(cfg: ImageDataConfig) -> Observation:
    if cfg.binarize == "dynamic":
        if cfg.dequantize != "none":
            raise DataError("data.dequantize=uniform needs data.binarize=none (binary data is not dequantized)")
        return "binary"
    return "dequantized" if cfg.dequantize == "uniform" else "discrete8"


def image_splits(cfg: ImageDataConfig, train: Tensor, train_labels: Tensor | None, test: Tensor,
                 test_labels: Tensor | None, n_classes: int | None = None, source: str = "") -> Splits:
    """Splits from uint8 [N, C, H, W] train and test tensors: validation held out of train by a fixed
    permutation, values served as ``cfg`` asks."""
    obs = observation(cfg)
    n_val = cfg.val_size
    if not 0 <= n_val < len(train):
        raise DataError(f"data.val_size={n_val} must be smaller than the {len(train)} training examples"
                        + (f" of {source}" if source else ""))
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.split_seed))
    val_idx, train_idx = perm[:n_val], perm[n_val:]

    def labels(t: Tensor | None, idx: Tensor | None = None) -> Tensor | None:
        return None if t is None else (t if idx is None else t[idx])

    def fixed(images: Tensor, seed: int) -> TensorExamples:
        if obs == "binary":
            return TensorExamples(binarize_fixed(images, seed), None, "fixed")
        return TensorExamples(images, None, "dequantized" if obs == "dequantized" else "grey")

    val = fixed(train[val_idx], cfg.test_binarize_seed + 1)
    val.labels = labels(train_labels, val_idx)
    test_set = fixed(test, cfg.test_binarize_seed)
    test_set.labels = labels(test_labels)
    train_values = {"binary": "dynamic", "dequantized": "dequantized", "discrete8": "grey"}[obs]
    defaults: dict = {"input_shape": tuple(train.shape[1:])}
    if n_classes is not None:
        defaults["n_classes"] = n_classes
    return Splits(train=TensorExamples(train[train_idx], labels(train_labels, train_idx), train_values),
                  val=val, test=test_set, observation=obs, defaults=defaults)
