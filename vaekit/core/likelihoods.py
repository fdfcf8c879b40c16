"""Observation models p(x|z) and Gaussian posteriors as ``torch.distributions`` objects.

A decoder outputs raw parameters; a likelihood turns them into a Distribution whose event is the whole
observation (an image [C, H, W], a frame, ...), so ``log_prob`` returns one number per example.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

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


class MaskedBernoulli(Distribution):
    """Independent Bernoulli(logits) over the values where ``mask`` is true; the others contribute nothing (the
    pixels a conditional model is given are not scored)."""

    arg_constraints: dict = {}

    def __init__(self, logits: Tensor, mask: Tensor) -> None:
        self.pixels = Bernoulli(logits=logits, **_FAST)
        self.mask = mask
        n = mask.dim()
        super().__init__(logits.shape[:-n], logits.shape[-n:], validate_args=False)

    def log_prob(self, value: Tensor) -> Tensor:
        per_pixel = self.pixels.log_prob(value)  # broadcasts value over leading sample dims
        return (per_pixel * self.mask).flatten(-self.mask.dim()).sum(-1)

    @property
    def mean(self) -> Tensor:
        return self.pixels.mean


def bernoulli(params: Tensor, event_dims: int) -> Distribution:
    """Bernoulli on logits: one parameter per pixel."""
    return BernoulliImage(params, event_dims)


def gaussian(params: Tensor, event_dims: int) -> Distribution:
    """Diagonal Gaussian: parameters are (mean, log sigma) stacked on the channel axis."""
    mean, log_scale = params.chunk(2, dim=-event_dims)
    return Independent(Normal(mean, log_scale.clamp(-7.0, 5.0).exp(), **_FAST), event_dims, **_FAST)


class DiscretizedLogistic(Distribution):
    """8-bit values x = k/255, each with the mass a logistic(mu, s) puts on its bin [x - 1/510, x + 1/510], the
    end bins stretched to -inf and +inf (Salimans et al. 2017, PixelCNN++, eq. 2 with one mixture component).
    A normalised distribution over the 256 levels of every value, so -log p is an NLL in nats."""

    arg_constraints: dict = {}
    half_bin = 1.0 / 510.0

    def __init__(self, loc: Tensor, log_scale: Tensor, event_dims: int) -> None:
        self.loc, self.log_scale, self.event_dims = loc, log_scale.clamp(min=-7.0), event_dims
        super().__init__(loc.shape[: loc.dim() - event_dims], loc.shape[loc.dim() - event_dims :], validate_args=False)

    def log_prob(self, value: Tensor) -> Tensor:
        inv_s = torch.exp(-self.log_scale)
        centred = value - self.loc
        plus, minus = inv_s * (centred + self.half_bin), inv_s * (centred - self.half_bin)
        log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus): the mass below the top edge (k = 0)
        log_sf_minus = -F.softplus(minus)  # log (1 - sigmoid(minus)): the mass above the bottom edge (k = 255)
        mass = torch.sigmoid(plus) - torch.sigmoid(minus)
        mid = inv_s * centred  # where the bin's mass underflows, its density at the centre times the bin width
        log_mid = mid - self.log_scale - 2 * F.softplus(mid) - math.log(255.0)
        inner = torch.where(mass > 1e-5, mass.clamp(min=1e-12).log(), log_mid)
        per_value = torch.where(value < self.half_bin, log_cdf_plus,
                                torch.where(value > 1 - self.half_bin, log_sf_minus, inner))
        return per_value.flatten(-self.event_dims).sum(-1)

    @property
    def mean(self) -> Tensor:
        return self.loc.clamp(0.0, 1.0)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        u = torch.rand(shape, device=self.loc.device).clamp(1e-5, 1 - 1e-5)
        x = self.loc + self.log_scale.exp() * (u.log() - (-u).log1p())  # inverse logistic CDF
        return (x.clamp(0.0, 1.0) * 255).round() / 255


class QuantizedLogNormal(Distribution):
    """A distribution over the positive integers n = 1, 2, ...: the mass a log-normal(mu, sigma) puts on
    [n - 1/2, n + 1/2), with n = 1 taking everything below 3/2. A count (an utterance's length in frames)
    scored by a density on log n has no normalised probability; this has, so -log P(n) is in nats of the
    integer and sums with other log-likelihoods into a true bound.

        P(n) = Phi((log(n + 1/2) - mu) / sigma) - Phi((log(n - 1/2) - mu) / sigma),   Phi(-inf) = 0 at n = 1
    """

    arg_constraints: dict = {}

    def __init__(self, loc: Tensor, scale: Tensor) -> None:
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        super().__init__(self.loc.shape, validate_args=False)

    def log_prob(self, value: Tensor) -> Tensor:
        n = value.to(self.loc.dtype)
        upper = ((n + 0.5).log() - self.loc) / self.scale
        lower = torch.where(n > 1.5, ((n - 0.5).clamp(min=0.5).log() - self.loc) / self.scale,
                            torch.full_like(upper, -math.inf))
        # log(Phi(b) - Phi(a)) without cancellation: in the upper tail use the survival side, Phi(-a) - Phi(-b)
        flip = lower > 0
        hi, lo = torch.where(flip, -lower, upper), torch.where(flip, -upper, lower)
        log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
        return log_hi + torch.log1p(-torch.exp(log_lo - log_hi).clamp(max=1 - 1e-7))

    @property
    def median(self) -> Tensor:
        """The integer the continuous median exp(mu) falls in (at least 1)."""
        return self.loc.exp().round().clamp(min=1)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        with torch.no_grad():
            x = (self.loc + self.scale * torch.randn(shape, device=self.loc.device, dtype=self.loc.dtype)).exp()
            return x.round().clamp(min=1)


def discretized_logistic(params: Tensor, event_dims: int) -> Distribution:
    """Discretized logistic on 8-bit values: parameters are (mean, log scale) stacked on the channel axis."""
    loc, log_scale = params.chunk(2, dim=-event_dims)
    return DiscretizedLogistic(loc, log_scale, event_dims)


@dataclass(frozen=True)
class Likelihood:
    """An observation model: parameters per observed value, the builder, and the observations it is a
    normalised distribution (or, for dequantized data, a density) over."""

    n_params: int
    build: Callable[[Tensor, int], Distribution]
    accepts: frozenset[str]


LIKELIHOODS: dict[str, Likelihood] = {
    "bernoulli": Likelihood(1, bernoulli, frozenset({"binary"})),
    "gaussian": Likelihood(2, gaussian, frozenset({"dequantized", "continuous"})),
    "discretized_logistic": Likelihood(2, discretized_logistic, frozenset({"discrete8", "binary"})),
}


def check_likelihood(name: str, observation: str) -> None:
    """Refuse a likelihood that is not a normalised distribution over the data as served, with the fix."""
    like = LIKELIHOODS[name]
    if observation in like.accepts:
        return
    fixes = {"discrete8": "model.likelihood=discretized_logistic, or data.dequantize=uniform with "
                          "model.likelihood=gaussian, or data.binarize=dynamic",
             "binary": "model.likelihood=bernoulli",
             "dequantized": "model.likelihood=gaussian (a density), or data.dequantize=none",
             "continuous": "model.likelihood=gaussian"}
    what = {"discrete8": "8-bit grey levels", "binary": "binary values", "dequantized": "dequantized values",
            "continuous": "real values"}[observation]
    raise ValueError(f"model.likelihood={name} is not a normalised distribution over {what}, so its -log p would "
                     f"be no NLL; use {fixes[observation]}")


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
    return kl_per_dimension(q).sum(-1)


def kl_per_dimension(q: DiagonalGaussian) -> Tensor:
    """KL(q(z_j|x) || N(0, 1)) for each latent j, [..., D]: the terms the closed form above sums."""
    return 0.5 * (q.mean.pow(2) + q.log_var.exp() - 1 - q.log_var)


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
