"""Data sets by name, as models are: ``@register_data("mnist", MNISTConfig)`` on a builder that returns
:class:`Splits`. A recipe's ``data:`` section is validated against the registered config dataclass, and the
builder hands the model its defaults (input shape, classes, ...) through ``Splits.defaults``.

Nothing here imports a model, the trainer or the run configuration: data knows only data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from annotated_types import Ge
from torch.utils.data import Dataset

from vaekit.core.registry import Registry, first_line

# What one observed value is, so a likelihood can be checked against it and NLL reported in the right units:
#   binary       0/1 (binarized): a Bernoulli is a normalised distribution over it
#   discrete8    one of 256 levels k/255: needs a discrete likelihood (e.g. discretized logistic)
#   dequantized  (k + u)/256 with u ~ U(0, 1): a density on [0, 1]; log P(k) >= E_u log p(x) - log 256 per value
Observation = Literal["binary", "discrete8", "dequantized"]


@dataclass
class DataConfig:
    """Fields every data set has; each set's config subclasses it."""

    name: str = "mnist"
    dir: str | None = None  # else $VAEKIT_DATA/<name>, else the user cache
    batch_size: Annotated[int, Ge(1)] = 100
    drop_last: bool = False  # drop a last, smaller training batch (batch norm cannot train on one example)


@dataclass
class Splits:
    """train / val / test data sets plus what a model and the evaluation need to know about them."""

    train: Dataset
    val: Dataset
    test: Dataset
    observation: Observation = "binary"
    defaults: dict[str, Any] = field(default_factory=dict)  # model config defaults: input_shape, n_classes, ...
    ground_truth: Any = None  # a GroundTruthData (vaekit.data.ground_truth) where the factors are known

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.defaults["input_shape"])

    @property
    def dims(self) -> int:
        """Observed values per example (for bits per dimension)."""
        return math.prod(self.input_shape)

    @property
    def nats_offset(self) -> float:
        """Added to -log p(x) of the served values to give the NLL of the 8-bit data, in nats per example.

        Uniform dequantization maps level k to (k + u)/256: P(k) >= exp(E_u log p(x)) / 256 per value."""
        return self.dims * math.log(256) if self.observation == "dequantized" else 0.0


@dataclass(frozen=True)
class DataEntry:
    name: str
    config: type
    build: Callable[[Any], Splits]
    summary: str


# Filled by the data set modules, which ``vaekit.data`` imports (this module imports none of them).
DATASETS: Registry[DataEntry] = Registry("data set")


def register_data(name: str, config: type) -> Callable[[Callable[[Any], Splits]], Callable[[Any], Splits]]:
    """Function decorator: ``@register_data("mnist", MNISTConfig)`` makes ``data.name: mnist`` buildable."""

    def wrap(builder: Callable[[Any], Splits]) -> Callable[[Any], Splits]:
        DATASETS.add(name, DataEntry(name, config, builder, first_line(builder.__doc__)))
        return builder

    return wrap


def get_data(name: str) -> DataEntry:
    return DATASETS.get(name)


def data_names() -> list[str]:
    return DATASETS.names()


def build_data(cfg: Any) -> Splits:
    """The splits of a validated data config (an instance of the registered dataclass)."""
    return get_data(cfg.name).build(cfg)
