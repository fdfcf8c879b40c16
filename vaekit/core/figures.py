"""What a model's ``figures(batch)`` returns: typed outputs that one writer (``vaekit.core.drawing.write``) turns into
files. Plain data only, so model code draws nothing and imports no plotting or image library."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class ImageGrid:
    """Images [N, C, H, W] in [0, 1], ``nrow`` to a row (PNG)."""

    images: Tensor
    nrow: int = 8


@dataclass
class AudioClip:
    """A mono waveform in [-1, 1] (WAV)."""

    samples: Tensor
    sample_rate: int


@dataclass
class Curve:
    """One or more named series over a shared x axis (PNG chart)."""

    x: list[float]
    series: dict[str, list[float]]
    xlabel: str = ""
    ylabel: str = ""
    log_x: bool = False


@dataclass
class Bars:
    """One value per named bar (PNG chart), e.g. the KL carried by each latent dimension."""

    labels: list[str]
    values: list[float]
    ylabel: str = ""
    title: str = ""


@dataclass
class Table:
    """Rows of named values (JSON and Markdown)."""

    rows: list[dict[str, object]] = field(default_factory=list)


Figure = ImageGrid | AudioClip | Curve | Bars | Table


def paired_rows(x: Tensor, x_hat: Tensor, nrow: int = 16) -> Tensor:
    """Originals in one row, their reconstructions in the row below, ``nrow`` per row."""
    rows = []
    for i in range(0, x.shape[0], nrow):
        rows += [x[i : i + nrow], x_hat[i : i + nrow]]
    return torch.cat(rows)
