"""Built-in models; importing this module registers them all."""

from vaekit.models import conv_vae, cvae, iwae, vae  # noqa: F401
from vaekit.models.base import LatentVariableModel, LossOutput

__all__ = ["LatentVariableModel", "LossOutput"]
