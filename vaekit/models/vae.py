"""The fully connected VAE (Kingma & Welling 2014), defaulting to Burda et al. (2016)'s one-stochastic-layer
architecture for MNIST: 784-200-200-50, tanh, Bernoulli likelihood."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from torch import Tensor
from torch.distributions import Distribution

from vaekit.core.likelihoods import LIKELIHOODS, diag_gaussian
from vaekit.core.nets import MLP
from vaekit.core.schedules import Ramp
from vaekit.models.base import LatentVariableModel
from vaekit.models.registry import register


@dataclass
class VAEConfig:
    input_shape: tuple[int, ...] = (1, 28, 28)  # filled from the data set when a recipe leaves it out
    hidden: tuple[int, ...] = (200, 200)  # encoder widths; the decoder mirrors them
    latent_dim: int = 50
    activation: str = "tanh"
    likelihood: Literal["bernoulli", "gaussian", "discretized_logistic"] = "bernoulli"
    kl_weight: Ramp = field(default_factory=Ramp)  # beta on the KL term: 1, or a warm-up from 0 to 1


@register("vae", VAEConfig)
class VAE(LatentVariableModel):
    """Fully connected VAE: q(z|x) = N(mu(x), diag sigma^2(x)), p(z) = N(0, I), p(x|z) from an MLP."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        self.latent_dim = config.latent_dim
        self.input_shape = tuple(config.input_shape)
        n_in = math.prod(self.input_shape)
        likelihood = LIKELIHOODS[config.likelihood]
        n_params, self._likelihood = likelihood.n_params, likelihood.build
        self.n_param_channels = n_params
        self.scheduled("kl_weight", config.kl_weight)
        hidden = list(config.hidden)
        self.encoder = MLP([n_in, *hidden, 2 * config.latent_dim], config.activation)
        self.decoder = MLP([config.latent_dim, *hidden[::-1], n_params * n_in], config.activation)

    def encode(self, x: Tensor) -> Distribution:
        mean, log_var = self.encoder(x.flatten(-len(self.input_shape))).chunk(2, dim=-1)
        return diag_gaussian(mean, log_var)

    def decode(self, z: Tensor) -> Distribution:
        c, *spatial = self.input_shape
        params = self.decoder(z).unflatten(-1, (self.n_param_channels * c, *spatial))
        return self._likelihood(params, len(self.input_shape))
