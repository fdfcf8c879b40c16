"""vaekit: variational autoencoders that read like their papers, trained with Lightning, measured on data.

Names are imported on first use, so ``import vaekit.data`` (or any one part) loads no model and no trainer."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_EXPORTS = {
    "ConfigError": "vaekit.run.config", "RunConfig": "vaekit.run.config", "load_config": "vaekit.run.config",
    "importance_weighted_bound": "vaekit.core.estimators", "iwae_bound": "vaekit.core.estimators",
    "log_mean_exp": "vaekit.core.estimators", "load": "vaekit.run.io", "Ability": "vaekit.models.base",
    "LatentVariableModel": "vaekit.models.base", "LossOutput": "vaekit.models.base", "Model": "vaekit.models.base",
    "build": "vaekit.models.registry", "get": "vaekit.models.registry", "names": "vaekit.models.registry",
    "register": "vaekit.models.registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vaekit' has no attribute {name!r}")
