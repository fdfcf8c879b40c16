"""Data sets by name (``vaekit.data.registry``), served as mappings of tensors (``vaekit.data.batches``).

Importing the package registers the built-in data sets: each module's ``@register_data`` fills the registry,
which itself imports none of them."""

from vaekit.data import (  # noqa: F401
    arrays,
    dsprites,
    fsdd,
    idxset,
    images,
    mnist,
    moving_mnist,
    oscillator,
    shapes3d,
    synthetic_speech,
)
from vaekit.data.batches import EpochBatches, TensorExamples, iterate, loader
from vaekit.data.files import DataError
from vaekit.data.registry import DataConfig, Splits, build_data, data_names, get_data, register_data

__all__ = ["DataConfig", "DataError", "EpochBatches", "Splits", "TensorExamples", "build_data", "data_names",
           "get_data", "iterate", "loader", "register_data"]
