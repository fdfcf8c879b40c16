"""The model contract every vaekit variant follows, and the one place the ELBO is written.

A model is a plain ``nn.Module`` that says what its distributions are:

- ``encode(x) -> q(z|x)``, ``decode(z) -> p(x|z)``, ``prior() -> p(z)``: ``torch.distributions`` objects.
- ``loss(batch) -> LossOutput``: the quantity to minimise plus named terms to log.
- ``log_importance_weights(x, k) -> [k, B]``: log p(x, z_i) - log q(z_i|x) for z_i ~ q(z|x). The shared
  estimator in :mod:`vaekit.estimators` turns these into the IWAE bound / NLL for any model.
- ``sample(n)``, ``reconstruct(x)``, ``latent_means(x)`` for figures and active units.

Batches are mappings ``{"x": images, "y": labels, ...}`` so that conditional and sequence models take the
inputs they need without a change of signature.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, kl_divergence

from vaekit.likelihoods import standard_normal

Batch = Mapping[str, Tensor]


@dataclass
class LossOutput:
    """What ``loss`` returns: the scalar to minimise and named terms to log.

    Terms are detached tensors (per example, or per sample and example); what is logged is their mean, taken
    only when a logger asks, so a training step pays nothing for the terms it does not log."""

    loss: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)


def kl_term(q: Distribution, p: Distribution, z: Tensor | None = None) -> Tensor:
    """KL(q || p): analytic where torch.distributions knows it, else the one-sample estimate at ``z``."""
    try:
        return kl_divergence(q, p)
    except NotImplementedError:
        if z is None:
            z = q.rsample()
        return q.log_prob(z) - p.log_prob(z)


def elbo_terms(log_px_z: Tensor, kl: Tensor) -> LossOutput:
    """ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z))   (Kingma & Welling 2014, eq. 3). Loss = -ELBO."""
    elbo = log_px_z - kl
    return LossOutput(loss=-elbo.mean(), terms={"elbo": elbo.detach(), "rec": log_px_z.detach(), "kl": kl.detach()})


class LatentVariableModel(nn.Module):
    """Base for single-latent VAEs: subclasses define ``encode``, ``decode`` and ``latent_dim``."""

    latent_dim: int

    def encode(self, x: Tensor) -> Distribution:
        raise NotImplementedError

    def decode(self, z: Tensor) -> Distribution:
        raise NotImplementedError

    def prior(self) -> Distribution:
        """p(z) = N(0, I); it has no parameters, so it is built once per device and dtype."""
        like = next(self.parameters())
        cache = self.__dict__.setdefault("_prior_cache", {})  # a plain attribute, not a module buffer
        key = (like.device, like.dtype, self.latent_dim)
        if key not in cache:
            cache[key] = standard_normal(self.latent_dim, like=like)
        return cache[key]

    # -- objective ---------------------------------------------------------------------------------------
    def loss(self, batch: Batch) -> LossOutput:
        """Negative single-sample ELBO with the analytic KL (reparameterised z ~ q(z|x))."""
        x = batch["x"]
        q = self.encode(x)
        z = q.rsample()
        return elbo_terms(self.decode(z).log_prob(x), kl_term(q, self.prior(), z))

    def log_importance_weights(self, x: Tensor, k: int) -> Tensor:
        """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x), z_i ~ q(z|x), i = 1..k; shape [k, B]."""
        q = self.encode(x)
        z = q.rsample((k,))
        return self.decode(z).log_prob(x) + self.prior().log_prob(z) - q.log_prob(z)

    # -- use -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """Mean of p(x|z) for n draws z ~ p(z) (the mean image is what people look at)."""
        z = self.prior().sample((n,))
        return self.decode(z).mean

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Mean of p(x|z) at the posterior mean z = E_q[z]."""
        return self.decode(self.encode(x).mean).mean

    @torch.no_grad()
    def figures(self, batch: Batch) -> dict[str, tuple[Tensor, int]]:
        """Named image grids (images, per row) for the training figures: prior samples, reconstructions."""
        from vaekit.figures import paired_rows

        x = batch["x"]
        return {"samples": (self.sample(64), 8), "reconstructions": (paired_rows(x, self.reconstruct(x)), 16)}

    @torch.no_grad()
    def latent_means(self, x: Tensor) -> dict[str, Tensor]:
        """E_q[z] per latent layer, for Burda et al.'s active-unit count."""
        return {"z": self.encode(x).mean}
