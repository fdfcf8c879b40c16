"""The convolutional VAE: conv encoder / transposed-conv decoder. Weight sharing makes it far smaller than a
dense VAE on the same images (a dense layer holds input x output weights; a conv layer k*k*C_in*C_out).

Default channels follow Higgins et al. (2017) / Burgess et al. (2018) for 64x64 inputs: conv 32-32-64-64,
4x4 stride 2, fc 256. For 28x28 MNIST use two or three conv layers (``channels: [32, 64]``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from torch import Tensor
from torch.distributions import Distribution

from vaekit.core.likelihoods import LIKELIHOODS, diag_gaussian
from vaekit.core.nets import ConvDecoder, ConvEncoder, fold
from vaekit.core.schedules import Ramp
from vaekit.models.base import LatentVariableModel
from vaekit.models.registry import register


@dataclass
class ConvVAEConfig:
    input_shape: tuple[int, ...] = (1, 64, 64)
    channels: tuple[int, ...] = (32, 32, 64, 64)
    fc: int = 256
    latent_dim: int = 10
    activation: str = "relu"
    likelihood: Literal["bernoulli", "gaussian", "discretized_logistic"] = "bernoulli"
    kl_weight: Ramp = field(default_factory=Ramp)  # beta on the KL term: 1, or a warm-up from 0 to 1

    def __post_init__(self) -> None:
        if len(self.input_shape) != 3:
            raise ValueError(f"input_shape must be (C, H, W), got {self.input_shape}")


@register("conv_vae", ConvVAEConfig)
class ConvVAE(LatentVariableModel):
    """Convolutional VAE: q(z|x) = N(mu(x), diag sigma^2(x)) from a conv net, p(x|z) from its mirror."""

    def __init__(self, config: ConvVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.latent_dim = config.latent_dim
        self.input_shape = tuple(config.input_shape)
        likelihood = LIKELIHOODS[config.likelihood]
        n_params, self._likelihood = likelihood.n_params, likelihood.build
        if isinstance(getattr(config, "kl_weight", None), Ramp):  # beta_vae weighs its KL its own way
            self.scheduled("kl_weight", config.kl_weight)
        c, h, w = self.input_shape
        self.encoder = ConvEncoder(self.input_shape, config.channels, config.fc, 2 * config.latent_dim,
                                   config.activation)
        self.decoder = ConvDecoder(config.latent_dim, (n_params * c, h, w), config.channels, config.fc,
                                   config.activation)

    def encode(self, x: Tensor) -> Distribution:
        # Distribution parameters in float32: under bf16 autocast the convolutions run in bf16, the ELBO's terms don't.
        mean, log_var = fold(self.encoder, x, 3).float().chunk(2, dim=-1)
        return diag_gaussian(mean, log_var)

    def decode(self, z: Tensor) -> Distribution:
        return self._likelihood(fold(self.decoder, z, 1).float(), 3)  # conv layers take one batch dim: k x B folded
