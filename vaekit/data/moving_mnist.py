"""Moving MNIST as in the public TD-VAE reference implementation (xqding/TD-VAE, ``prep_data.py``): one binarized
MNIST digit (28x28) that rolls ``shift`` pixels left or right per frame, wrapping around the edge (torch.roll), for
``seq_len`` frames; the direction is drawn per sequence.

The digit is binarized first and then rolled, as in the reference, so every frame is an exact rolled copy of
frame 0. Training sequences come from MNIST's training digits (less a validation share), test sequences from
its test digits. Serving reuses the image machinery (:func:`vaekit.data.imagesets.image_splits`): training
digits are binarized afresh per batch from the batch's seed (dynamic binarization), validation and test digits
once with a fixed seed. A training sequence's direction is drawn per batch from the same seed (so a digit moves
both ways over the epochs, as the reference draws it in ``__getitem__``); validation and test directions are
fixed per sequence. Batches:

    {"x": [B, T, 1, 28, 28], "y": [B] digit label, "direction": [B] (+1 right, -1 left)}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Ge
from torch import Tensor

from vaekit.data.batches import BatchServing, TensorExamples, batch_seed, generator_on, index_on
from vaekit.data.imagesets import ImageDataConfig, image_splits
from vaekit.data.mnist import load as load_mnist
from vaekit.data.registry import Splits, register_data

# The likelihood that is a normalised distribution over the frames as served (vaekit.core.likelihoods.check_likelihood).
LIKELIHOOD = {"binary": "bernoulli", "discrete8": "discretized_logistic", "dequantized": "gaussian"}


@dataclass
class MovingMNISTConfig(ImageDataConfig):
    name: str = "moving_mnist"
    seq_len: Annotated[int, Ge(1)] = 20
    shift: int = 1  # pixels per frame
    direction_seed: int = 0  # the fixed directions of the validation and test sequences


def roll_frames(first: Tensor, direction: Tensor, seq_len: int, shift: int = 1) -> Tensor:
    """Frames t = 0..T-1 of ``first`` [B, C, H, W] rolled by direction * shift * t pixels along the width:
    frame t is torch.roll(first, direction * shift * t, dims=-1) for each sequence; returns [B, T, C, H, W]."""
    b, _, _, w = first.shape
    offsets = direction.view(b, 1) * shift * torch.arange(seq_len, device=first.device)  # [B, T]
    # torch.roll by s puts column (j - s) mod W at column j: one gather does every frame of every sequence.
    cols = (torch.arange(w, device=first.device) - offsets.unsqueeze(-1)) % w  # [B, T, W]
    frames = first.unsqueeze(1).expand(-1, seq_len, -1, -1, -1)
    return frames.gather(-1, cols[:, :, None, None, :].expand_as(frames))


class MovingDigits(BatchServing):
    """Sequences of a rolling digit, built from digits served by ``digits`` (a TensorExamples).

    ``directions`` fixes each sequence's direction; ``None`` draws it per batch from the batch's seed."""

    def __init__(self, digits: TensorExamples, seq_len: int, shift: int, directions: Tensor | None = None) -> None:
        if directions is not None and len(directions) != len(digits):
            raise ValueError(f"{len(digits)} digits but {len(directions)} directions")
        self.digits, self.seq_len, self.shift, self.directions = digits, seq_len, shift, directions

    def __len__(self) -> int:
        return len(self.digits)

    def to(self, device: torch.device | str) -> MovingDigits:
        """The digits (and fixed directions) held on ``device``: sequences are rolled and directions drawn there,
        from the device's generator (another stream than the CPU's for the same seed)."""
        return MovingDigits(self.digits.to(device), self.seq_len, self.shift,
                            None if self.directions is None else self.directions.to(device))

    def _directions(self, idx: list[int]) -> Tensor:
        dev = self.digits.device
        if self.directions is not None:
            return self.directions.index_select(0, index_on(idx, dev))
        g = generator_on(idx, dev, 1)  # a second stream of the batch's seed: binarization keeps its own
        return torch.randint(0, 2, (len(idx),), generator=g, device=dev) * 2 - 1

    def __getitems__(self, idx: list[int]) -> dict[str, Tensor]:
        batch = self.digits.__getitems__(idx)  # binarized (or grey) digits [B, 1, 28, 28] and labels
        direction = self._directions(idx)
        out = {"x": roll_frames(batch["x"], direction, self.seq_len, self.shift), "direction": direction}
        if "y" in batch:
            out["y"] = batch["y"]
        return out

    def subset(self, n: int) -> MovingDigits:
        return MovingDigits(self.digits.subset(n), self.seq_len, self.shift,
                            None if self.directions is None else self.directions[:n])


@register_data("moving_mnist", MovingMNISTConfig)
def build_moving_mnist(cfg: MovingMNISTConfig) -> Splits:
    """MNIST digits rolling 1 px left or right per frame, 20 frames (the TD-VAE reference's moving MNIST)."""
    d = load_mnist(cfg.dir)
    images = image_splits(cfg, d["train_images"], d["train_labels"], d["test_images"], d["test_labels"],
                          n_classes=10, source="MNIST")

    def fixed(digits: TensorExamples, part: int) -> MovingDigits:
        g = torch.Generator().manual_seed(batch_seed(cfg.direction_seed, part))
        return MovingDigits(digits, cfg.seq_len, cfg.shift, torch.randint(0, 2, (len(digits),), generator=g) * 2 - 1)

    return Splits(train=MovingDigits(images.train, cfg.seq_len, cfg.shift), val=fixed(images.val, 1),
                  test=fixed(images.test, 2), observation=images.observation,
                  defaults={"input_shape": images.input_shape, "likelihood": LIKELIHOOD[images.observation]})
