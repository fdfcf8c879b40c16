"""Built-in models; importing this module registers them all."""

from vaekit.models import beta_vae, conv_vae, cvae, iwae, ladder_vae, regressor, vae  # noqa: F401
from vaekit.models.base import Ability, LatentVariableModel, LossOutput, Model

__all__ = ["Ability", "LatentVariableModel", "LossOutput", "Model"]
