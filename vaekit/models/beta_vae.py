"""beta-VAE (Higgins et al. 2017) and its capacity-controlled form (Burgess et al. 2018), on the 64x64 conv
architecture both papers use for dSprites: conv 32-32-64-64 (4x4, stride 2), fc 256, 10 latents.

    beta:      L = E_q[log p(x|z)] - beta KL(q(z|x) || p(z))                    (Higgins et al., eq. 4)
    capacity:  L = E_q[log p(x|z)] - gamma |KL(q(z|x) || p(z)) - C|            (Burgess et al., eq. 8)
               with the KL averaged over the batch before |. - C|, as Burgess et al. train it

beta > 1 narrows the latent channel, which is claimed to push each latent towards one generative factor.
Burgess et al. raise the capacity C linearly (0 to 25 nats over 100,000 steps, gamma = 1000 on dSprites), so the
KL is allowed to grow slowly and the factors that most reduce the reconstruction error are encoded first.
C(t) is a schedule (``Ramp``): the trainer moves it, the weights carry it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

import torch
from annotated_types import Ge

from vaekit.core.likelihoods import kl_per_dimension
from vaekit.core.schedules import Ramp
from vaekit.models.base import Batch, LossOutput
from vaekit.models.conv_vae import ConvVAE
from vaekit.models.registry import register


@dataclass
class BetaVAEConfig:
    input_shape: tuple[int, int, int] = (1, 64, 64)
    channels: tuple[int, ...] = (32, 32, 64, 64)
    fc: int = 256
    latent_dim: Annotated[int, Ge(1)] = 10
    activation: str = "relu"
    likelihood: Literal["bernoulli", "gaussian", "discretized_logistic"] = "bernoulli"
    objective: Literal["beta", "capacity"] = "beta"
    beta: Annotated[float, Ge(0)] = 4.0  # objective=beta; Higgins et al. use 4 on dSprites
    gamma: Annotated[float, Ge(0)] = 1000.0  # objective=capacity
    capacity: Ramp = field(default_factory=lambda: Ramp(0.0, 25.0, length=100_000))  # C(t) in nats


@register("beta_vae", BetaVAEConfig)
class BetaVAE(ConvVAE):
    """beta-VAE (Higgins et al. 2017) or capacity-controlled VAE (Burgess et al. 2018), conv 64x64."""

    def __init__(self, config: BetaVAEConfig) -> None:
        super().__init__(config)
        self.scheduled("capacity", config.capacity)

    def loss(self, batch: Batch) -> LossOutput:
        """-(E_q log p(x|z) - beta KL) or -(E_q log p(x|z) - gamma |KL - C|); the ELBO is logged as it is."""
        x = batch["x"]
        q = self.encode(x)
        z = q.rsample()
        rec = self.decode(z).log_prob(x)
        kl_dims = kl_per_dimension(q)
        kl = kl_dims.sum(-1)
        cfg = self.config
        if cfg.objective == "beta":
            loss = -(rec - cfg.beta * kl).mean()
        else:
            # |KL - C| of the batch's average KL, as Burgess et al. train it ("tune gamma such that the (batch)
            # average KL stays close to C"). Taken per example, the penalty makes every x pay the same KL, which an
            # offset code that ignores x does best: on dSprites it settled there (KL = C, no information).
            loss = -(rec.mean() - cfg.gamma * (kl.mean() - self.capacity).abs())
        terms = {"elbo": (rec - kl).detach(), "rec": rec.detach(), "kl": kl.detach()}
        terms.update({f"kl_{j}": kl_dims[:, j].detach() for j in range(kl_dims.shape[-1])})
        if cfg.objective == "capacity":
            terms["capacity"] = torch.as_tensor(self.capacity, dtype=rec.dtype).detach().expand_as(rec)
        # Latents whose posterior mean varies over the batch (Burda et al.'s activity, Cov_x E_q[z] > 0.01). A KL
        # above zero does not show that z carries information: a code whose mean is one offset for every x pays
        # KL = C and tells the decoder nothing (the collapse the capacity objective can settle into).
        terms["active_units"] = (q.mean.detach().var(0) > 0.01).sum().to(rec.dtype).expand_as(rec)
        return LossOutput(loss=loss, terms=terms)
