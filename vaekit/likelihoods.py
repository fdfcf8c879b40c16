"""Observation models p(x|z) and Gaussian posteriors as ``torch.distributions`` objects.

A decoder outputs raw parameters; a likelihood turns them into a Distribution whose event is the whole
observation (an image [C, H, W], a frame, ...), so ``log_prob`` returns one number per example.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Bernoulli, Distribution, Independent, Normal, register_kl

# Argument validation costs more than the arithmetic for small models: the hot path skips it.
_FAST = {"validate_args": False}


class BernoulliImage(Independent):
    """Independent Bernoulli(logits) over the event dims, with a faster ``log_prob`` for importance sampling.

    log p(x|l) = sum_d x_d l_d - softplus(l_d) (exact for any x in [0, 1]). When k samples share one x
    (logits [k, B, ...], x [B, ...]) the first sum is a batched dot product and the whole needs two passes
    over the logits instead of binary_cross_entropy_with_logits' five: 1.3-2x faster NLL estimation."""

    def __init__(self, logits: Tensor, event_dims: int) -> None:
        super().__init__(Bernoulli(logits=logits, **_FAST), event_dims, **_FAST)

    def log_prob(self, value: Tensor) -> Tensor:
        logits, n = self.base_dist.logits, self.reinterpreted_batch_ndims
        if logits.shape == value.shape:  # one sample per x (training): autograd's fused BCE is faster
            return -F.binary_cross_entropy_with_logits(logits, value, reduction="none").flatten(-n).sum(-1)
        if logits.dim() <= value.dim():
            return super().log_prob(value)
        flat = logits.flatten(-n)
        return torch.einsum("...d,...d->...", flat, value.flatten(-n).to(flat.dtype)) - F.softplus(flat).sum(-1)


def bernoulli(params: Tensor, event_dims: int) -> Distribution:
    """Bernoulli on logits: one parameter per pixel."""
    return BernoulliImage(params, event_dims)


def gaussian(params: Tensor, event_dims: int) -> Distribution:
    """Diagonal Gaussian: parameters are (mean, log sigma) stacked on the channel axis."""
    mean, log_scale = params.chunk(2, dim=-event_dims)
    return Independent(Normal(mean, log_scale.clamp(-7.0, 5.0).exp(), **_FAST), event_dims, **_FAST)


# name -> (parameters per observed value, builder)
LIKELIHOODS: dict[str, tuple[int, Callable[[Tensor, int], Distribution]]] = {
    "bernoulli": (1, bernoulli),
    "gaussian": (2, gaussian),
}


class DiagonalGaussian(Independent):
    """N(mu, diag sigma^2) over the last axis, parameterised by log sigma^2 as in Kingma & Welling (2014).

    An Independent Normal that keeps ``log_var``, so the KL below is written with it directly (no log of a
    variance ratio) and costs as few operations as the hand-written formula."""

    def __init__(self, mean: Tensor, log_var: Tensor) -> None:
        self.log_var = log_var
        super().__init__(Normal(mean, (0.5 * log_var).exp(), **_FAST), 1, **_FAST)


class StandardNormal(DiagonalGaussian):
    """The N(0, I) prior p(z)."""


@register_kl(DiagonalGaussian, DiagonalGaussian)
def _kl_diagonal_gaussians(q: DiagonalGaussian, p: DiagonalGaussian) -> Tensor:
    """KL(q || p) = 1/2 sum_j [log sigma_p^2 - log sigma_q^2 + (sigma_q^2 + (mu_q - mu_p)^2) / sigma_p^2 - 1]."""
    log_ratio = q.log_var - p.log_var  # log sigma_q^2 / sigma_p^2
    return 0.5 * (log_ratio.exp() + (q.mean - p.mean).pow(2) / p.log_var.exp() - 1 - log_ratio).sum(-1)


@register_kl(DiagonalGaussian, StandardNormal)
def _kl_to_standard_normal(q: DiagonalGaussian, p: StandardNormal) -> Tensor:
    """KL(q || N(0, I)) = 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2): the negative of Kingma & Welling
    (2014)'s Appendix B term, on the stored log-variance."""
    return 0.5 * (q.mean.pow(2) + q.log_var.exp() - 1 - q.log_var).sum(-1)


def diag_gaussian(mean: Tensor, log_var: Tensor) -> Distribution:
    """q(z|x) = N(mu, diag sigma^2), parameterised by log-variance as in Kingma & Welling (2014)."""
    return DiagonalGaussian(mean, log_var)


def softplus_gaussian(mean: Tensor, raw_scale: Tensor, min_scale: float = 1e-4) -> Distribution:
    """N(mu, sigma) with sigma = softplus(raw) + min: bounded away from 0, used by deeper hierarchies."""
    return Independent(Normal(mean, F.softplus(raw_scale) + min_scale, **_FAST), 1, **_FAST)


def standard_normal(dim: int, like: Tensor) -> Distribution:
    """The N(0, I) prior over a ``dim``-dimensional latent, on ``like``'s device and dtype."""
    zeros = torch.zeros(dim, device=like.device, dtype=like.dtype)
    return StandardNormal(zeros, zeros)
