"""vaekit: variational autoencoders that read like their papers, trained with Lightning, measured on data."""

from vaekit.config import ConfigError, RunConfig, load_config
from vaekit.estimators import importance_weighted_bound, iwae_bound, log_mean_exp
from vaekit.io import load
from vaekit.models.base import LatentVariableModel, LossOutput
from vaekit.registry import build, get, names, register

__version__ = "0.1.0"
__all__ = [
    "ConfigError", "LatentVariableModel", "LossOutput", "RunConfig", "build", "get", "importance_weighted_bound",
    "iwae_bound", "load", "load_config", "log_mean_exp", "names", "register",
]
