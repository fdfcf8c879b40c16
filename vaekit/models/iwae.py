"""The importance weighted autoencoder (Burda, Grosse & Salakhutdinov 2016), with L stochastic layers.

Generative model  p(x, h_1..h_L) = p(h_L) p(h_{L-1}|h_L) ... p(h_1|h_2) p(x|h_1),  p(h_L) = N(0, I)
Recognition model q(h_1..h_L|x) = q(h_1|x) q(h_2|h_1) ... q(h_L|h_{L-1})             (Burda et al., sec. 2)

Objective, with w_i = p(x, h^(i)) / q(h^(i)|x) and h^(i) ~ q, i = 1..k:

    iwae:  L_k = log (1/k) sum_i w_i                                                     (eq. 8)
    vae:   (1/k) sum_i log w_i    (Burda's "VAE with k samples": the average of k single-sample ELBOs)

The gradient of L_k is sum_i w~_i grad log w_i with normalized weights w~_i = w_i / sum_j w_j (eq. 14);
autograd through the log-sum-exp produces exactly that, so the objective is written once, as the bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from vaekit.core.estimators import log_mean_exp
from vaekit.core.likelihoods import LIKELIHOODS, diag_gaussian
from vaekit.core.nets import MLP
from vaekit.models.base import Batch, LatentVariableModel, LossOutput
from vaekit.models.registry import register


@dataclass
class IWAEConfig:
    input_shape: tuple[int, ...] = (1, 28, 28)
    latent_dims: tuple[int, ...] = (50,)  # h_1 .. h_L; Burda's two-layer model is (100, 50)
    hidden: tuple[tuple[int, ...], ...] = ((200, 200),)  # deterministic widths of q(h_l|h_{l-1}); p mirrors
    k: int = 5  # importance samples in training
    objective: Literal["iwae", "vae"] = "iwae"
    activation: str = "tanh"
    likelihood: Literal["bernoulli", "gaussian", "discretized_logistic"] = "bernoulli"

    def __post_init__(self) -> None:
        if len(self.latent_dims) != len(self.hidden):
            raise ValueError(f"latent_dims has {len(self.latent_dims)} layers but hidden has {len(self.hidden)}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")


class GaussianLayer(nn.Module):
    """An MLP from its input to the mean and log-variance of a diagonal Gaussian."""

    def __init__(self, n_in: int, hidden: tuple[int, ...], n_out: int, act: str) -> None:
        super().__init__()
        self.net = MLP([n_in, *hidden, 2 * n_out], act)

    def forward(self, h: Tensor) -> Distribution:
        mean, log_var = self.net(h).chunk(2, dim=-1)
        return diag_gaussian(mean, log_var)


@register("iwae", IWAEConfig)
class IWAE(LatentVariableModel):
    """IWAE / k-sample VAE with one or more stochastic layers (Burda et al. 2016)."""

    monitor = ("bound", "max")  # the objective trained: L_k, or the average ELBO of the k-sample VAE

    def __init__(self, config: IWAEConfig) -> None:
        super().__init__()
        self.config = config
        self.input_shape = tuple(config.input_shape)
        n_x = math.prod(self.input_shape)
        likelihood = LIKELIHOODS[config.likelihood]
        n_params, self._likelihood = likelihood.n_params, likelihood.build
        self.n_param_channels = n_params
        dims = [n_x, *config.latent_dims]
        hidden = [tuple(h) for h in config.hidden]
        # q(h_l | h_{l-1}) for l = 1..L, with h_0 = x.
        self.q_layers = nn.ModuleList(
            GaussianLayer(dims[i], hidden[i], dims[i + 1], config.activation) for i in range(len(hidden))
        )
        # p(h_{l-1} | h_l) for l = L..2, then p(x | h_1) from the mirrored widths.
        self.p_layers = nn.ModuleList(
            GaussianLayer(dims[i + 1], hidden[i][::-1], dims[i], config.activation) for i in range(1, len(hidden))
        )
        self.p_x = MLP([dims[1], *hidden[0][::-1], n_params * n_x], config.activation)
        self.latent_dim = config.latent_dims[-1]

    # -- distributions (the prior is the base class's N(0, I) over h_L) ---------------------------------
    def encode(self, x: Tensor) -> Distribution:
        """q(h_1|x)."""
        return self.q_layers[0](x.flatten(-len(self.input_shape)))

    def decode(self, h1: Tensor) -> Distribution:
        """p(x|h_1)."""
        c, *spatial = self.input_shape
        params = self.p_x(h1).unflatten(-1, (self.n_param_channels * c, *spatial))
        return self._likelihood(params, len(self.input_shape))

    # -- objective -------------------------------------------------------------------------------------
    def log_importance_weights(self, batch: Batch, k: int) -> Tensor:
        """log w_i = log p(x|h_1) + sum_l log p(h_l|h_{l+1}) + log p(h_L) - sum_l log q(h_l|h_{l-1}); [k, B].

        x is encoded once; the k samples fan out from q(h_1|x) (a [k, B, D] tensor through every layer)."""
        x = batch["x"]
        q = self.encode(x)
        h = q.rsample((k,))
        log_w = -q.log_prob(h)
        hs = [h]
        for layer in self.q_layers[1:]:
            q = layer(h)
            h = q.rsample()
            log_w = log_w - q.log_prob(h)
            hs.append(h)
        log_w = log_w + self.prior().log_prob(hs[-1])
        for layer, (below, above) in zip(self.p_layers, zip(hs[:-1], hs[1:], strict=True), strict=True):
            log_w = log_w + layer(above).log_prob(below)
        return log_w + self.decode(hs[0]).log_prob(x)

    def loss(self, batch: Batch) -> LossOutput:
        """-L_k (iwae) or -(1/k) sum_i log w_i (vae), averaged over the batch."""
        log_w = self.log_importance_weights(batch, self.config.k)
        l_k = log_mean_exp(log_w, dim=0)
        bound = l_k if self.config.objective == "iwae" else log_w.mean(0)
        terms = {"bound": bound.detach(), "elbo": log_w.detach(), "iwae_bound": l_k.detach()}
        return LossOutput(loss=-bound.mean(), terms=terms)

    # -- use -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        h = self.prior().sample((n,))
        for layer in reversed(self.p_layers):
            h = layer(h).sample()
        return self.decode(h).mean

    @torch.no_grad()
    def latent_means(self, batch: Batch) -> dict[str, Tensor]:
        """E_q[h_l] per layer, each layer's mean fed to the next (Burda's active units, per layer)."""
        out, h = {}, batch["x"].flatten(-len(self.input_shape))
        for i, layer in enumerate(self.q_layers, start=1):
            h = layer(h).mean
            out[f"h{i}"] = h
        return out
