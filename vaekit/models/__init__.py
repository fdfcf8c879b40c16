"""Built-in models; importing this module registers them all."""

from vaekit.models import (  # noqa: F401
    beta_vae,
    conv_vae,
    cvae,
    iwae,
    ladder_vae,
    lstm_predictor,
    provlae,
    regressor,
    speech_vae,
    tdvae,
    vae,
)
from vaekit.models.base import Ability, LatentVariableModel, LossOutput, Model

__all__ = ["Ability", "LatentVariableModel", "LossOutput", "Model"]
