"""The Ladder VAE (Sønderby, Raiko, Maaløe, Sønderby & Winther, NIPS 2016) and the hierarchical VAE it is measured
against: L stochastic layers z_1 (next to x) .. z_L (the top), one generative model, two inference models.
Equation numbers are the NIPS paper's.

Generative model, the same in both (eqs. 1-3):

    p(z) = p(z_L) prod_{i=1}^{L-1} p(z_i|z_{i+1}),   p(z_i|z_{i+1}) = N(mu_p,i(z_{i+1}), sigma^2_p,i(z_{i+1})),
    p(z_L) = N(0, I),   p(x|z_1) Bernoulli (or another vaekit likelihood) from an MLP of z_1.

Hierarchical VAE inference, bottom-up (eqs. 4-6): q(z|x) = q(z_1|x) prod_{i=2}^{L} q(z_i|z_{i-1}), each a Gaussian
from an MLP of the sample below.

Ladder VAE inference (eqs. 13-19): a deterministic bottom-up pass d_i = MLP(d_{i-1}), d_0 = x (eq. 13), gives
each level an "approximate likelihood" mu_hat_i = Linear(d_i), sigma_hat^2_i = Softplus(Linear(d_i)) (eqs. 14-15);
a stochastic top-down pass, q(z|x) = q(z_L|x) prod_{i=1}^{L-1} q(z_i|z_{i+1}, x) (eq. 16), merges it with the
generative model's own p(z_i|z_{i+1}) by precision weighting (eqs. 17-19, ``precision_weighted``); at the top
q(z_L|x) = N(mu_hat_L, sigma_hat^2_L). The top-down networks mu_p,i, sigma_p,i are shared by the generative and
the inference model: the paper's "same top-down dependency structure in both".

Every MLP is the paper's: two dense layers, each batch-normalised (Ioffe & Szegedy 2015) and followed by a leaky
rectifier; Gaussian parameters are mu = Linear(d), sigma^2 = Softplus(Linear(d)) (eqs. 7-9), plus 1e-5 so the
precision stays finite (the authors' code adds 1e-5 to the variance too). Widths mirror: q's MLP at level i has
``hidden[i]`` units, p(z_i|z_{i+1})'s reads z_{i+1} through ``hidden[i+1]`` and p(x|z_1)'s through ``hidden[0]``
(MNIST: x -512- z_1 -256- z_2 -128- z_3 -64- z_4 -32- z_5 and back).

Objective: the ELBO (eqs. 10-11) with the KL written per level,

    ELBO = E_q[log p(x|z_1)] - sum_i KL_i,   KL_i = E_q[log q(z_i|.) - log p(z_i|z_{i+1})],

and the deterministic warm-up (their L_T): the loss is -(E_q[log p(x|z_1)] - beta(t) sum_i KL_i) with beta going
linearly from 0 to 1 (``kl_weight``, a Ramp over epochs: N_t = 200 in the paper). Logged per example: ``rec``,
``kl_1`` .. ``kl_L``, ``kl`` (their sum) and ``elbo`` = rec - kl, the true bound (beta = 1), the monitored term.

The authors' code (github.com/casperkaae/LVAE) has options the paper does not describe (by default a separate
top-down network for inference, the bottom-up MLP reading mu_hat_{i-1} instead of d_{i-1}, batch norm on the Gaussian
heads, gradient clipping); this module follows the paper's equations.

Both models are ``Model`` subclasses with LatentVariableModel's abilities. ``encode(x)`` is the posterior over the
top level z_L and ``decode(z_L)`` the generative path's mean image (each lower z_i at the mean of
p(z_i|z_{i+1})), so ``vaekit traverse`` moves the top-level units.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from annotated_types import Ge
from torch import Tensor, nn
from torch.distributions import Distribution

from vaekit.core.estimators import log_mean_exp
from vaekit.core.figures import Figure, ImageGrid, paired_rows
from vaekit.core.likelihoods import LIKELIHOODS, DiagonalGaussian, standard_normal
from vaekit.core.nets import ACTIVATIONS, activation, fold
from vaekit.core.schedules import Ramp
from vaekit.models.base import Ability, Batch, LossOutput, Model, elbo_terms, kl_term
from vaekit.models.registry import register

MIN_VARIANCE = 1e-5  # added to Softplus(Linear(d)): sigma^2 >= 1e-5, so 1 / sigma^2 stays finite


def _warm_up() -> Ramp:
    """beta from 0 to 1 over the first 200 epochs: Sønderby et al.'s warm-up for MNIST (N_t = 200)."""
    return Ramp(0.0, 1.0, length=200, unit="epoch")


@dataclass
class LadderVAEConfig:
    """The Ladder VAE and the hierarchical VAE share this config (and the paper's MNIST model as defaults).

    Figure 3's models are config choices: VAE (``batch_norm: false``, ``kl_weight: {}`` i.e. beta = 1), VAE+BN,
    VAE+BN+WU (``hierarchical_vae`` with the defaults) and LVAE+BN+WU (``ladder_vae`` with the defaults)."""

    input_shape: tuple[int, ...] = (1, 28, 28)  # filled from the data set when a recipe leaves it out
    latent_dims: tuple[Annotated[int, Ge(1)], ...] = (64, 32, 16, 8, 4)  # z_1 (bottom) .. z_L (top)
    hidden: tuple[Annotated[int, Ge(1)], ...] = (512, 256, 128, 64, 32)  # two-layer MLP width per level
    batch_norm: bool = True
    activation: str = "leaky_relu"
    likelihood: Literal["bernoulli", "gaussian", "discretized_logistic"] = "bernoulli"
    kl_weight: Ramp = field(default_factory=_warm_up)  # beta(t), the warm-up; Ramp() is the constant 1
    k: Annotated[int, Ge(1)] = 1  # samples per example in training: 1 = the ELBO, k > 1 = Burda's bound L_k

    def __post_init__(self) -> None:
        if len(self.latent_dims) != len(self.hidden):
            raise ValueError(f"latent_dims has {len(self.latent_dims)} layers but hidden has {len(self.hidden)}; "
                             "give one hidden width per stochastic layer")
        if not self.latent_dims:
            raise ValueError("latent_dims must name at least one stochastic layer")
        if min(self.latent_dims) < 1 or min(self.hidden) < 1:
            raise ValueError("latent_dims and hidden must be positive")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of: {', '.join(ACTIVATIONS)}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")


# -- the precision-weighted merge ------------------------------------------------------------------------------
def _mean_and_log_var(d: Distribution) -> tuple[Tensor, Tensor]:
    log_var = getattr(d, "log_var", None)
    return d.mean, (d.variance.log() if log_var is None else log_var)


def precision_weighted(q_hat: Distribution, p: Distribution) -> DiagonalGaussian:
    """q(z_i|.) = N(mu_q, sigma_q^2), the Ladder VAE's merge of the bottom-up N(mu_hat, sigma_hat^2) and the
    top-down p(z_i|z_{i+1}) = N(mu_p, sigma_p^2) (Sønderby et al., eqs. 17-19):

        sigma_q^2 = 1 / (sigma_hat^-2 + sigma_p^-2),   mu_q = (mu_hat sigma_hat^-2 + mu_p sigma_p^-2) sigma_q^2.

    (Eq. 17 prints sigma_q on the left; it is the variance.) This is the normalised product of the two Gaussian
    densities. Written on log-variances: log sigma_q^2 = -logaddexp(-log sigma_hat^2, -log sigma_p^2) and
    mu_q = mu_p + w (mu_hat - mu_p) with w = sigma_hat^-2 / (sigma_hat^-2 + sigma_p^-2) = sigmoid(log sigma_p^2 -
    log sigma_hat^2), so no precision is formed and nothing overflows. Takes any diagonal Gaussians (a
    DiagonalGaussian, an Independent Normal); batch shapes broadcast ([B, D] with [k, B, D] gives [k, B, D])."""
    mu_hat, log_var_hat = _mean_and_log_var(q_hat)
    mu_p, log_var_p = _mean_and_log_var(p)
    log_var = -torch.logaddexp(-log_var_hat, -log_var_p)
    weight = torch.sigmoid(log_var_p - log_var_hat)
    mean = mu_p + weight * (mu_hat - mu_p)
    return DiagonalGaussian(mean, log_var.expand_as(mean))


# -- layers ------------------------------------------------------------------------------------------------------
class DenseBlock(nn.Module):
    """The paper's two-layer MLP d(y) (eqs. 7, 13): (Linear -> BatchNorm -> activation) twice. Any leading sample
    dimensions are folded into the batch for BatchNorm1d, which takes [N, C]."""

    def __init__(self, n_in: int, width: int, act: str, batch_norm: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for n in (n_in, width):
            layers.append(nn.Linear(n, width, bias=not batch_norm))  # batch norm's shift is the bias
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(activation(act))
        self.net = nn.Sequential(*layers)

    def forward(self, y: Tensor) -> Tensor:
        return fold(self.net, y, 1)


class GaussianHead(nn.Module):
    """mu = Linear(d), sigma^2 = Softplus(Linear(d)) (+ MIN_VARIANCE) (eqs. 8-9, 14-15)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.mean = nn.Linear(n_in, n_out)
        self.var = nn.Linear(n_in, n_out)

    def moments(self, d: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, sigma^2)."""
        return self.mean(d), F.softplus(self.var(d)) + MIN_VARIANCE

    def forward(self, d: Tensor) -> DiagonalGaussian:
        mean, var = self.moments(d)
        return DiagonalGaussian(mean, var.log())


class GaussianLayer(nn.Module):
    """A Gaussian over one level from an MLP of its input: p(z_i|z_{i+1}), or the hierarchical VAE's q(z_i|z_{i-1})."""

    def __init__(self, n_in: int, width: int, n_out: int, act: str, batch_norm: bool) -> None:
        super().__init__()
        self.mlp = DenseBlock(n_in, width, act, batch_norm)
        self.head = GaussianHead(width, n_out)

    def forward(self, y: Tensor) -> DiagonalGaussian:
        return self.head(self.mlp(y))


@dataclass
class Hierarchy:
    """One pass through a model, per level i = 1..L (list index i - 1): the posterior q(z_i|.), the z_i drawn from
    it (or its mean), the prior p(z_i|z_{i+1}) at that draw (p(z_L) = N(0, I) at the top); and p(x|z_1)."""

    q: list[DiagonalGaussian]
    z: list[Tensor]
    p: list[DiagonalGaussian]
    px: Distribution


def _draw(q: Distribution, k: int | None, use_mean: bool) -> Tensor:
    """The posterior mean, one reparameterised sample per example, or k of them ([k, B, D])."""
    if use_mean:
        return q.mean
    return q.rsample() if k is None else q.rsample((k,))


@contextmanager
def _running_statistics(model: nn.Module) -> Iterator[None]:
    """Eval mode (batch norm on its running statistics) for the duration, whatever the model's mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


# -- the shared model ------------------------------------------------------------------------------------------
class TopDownGenerative(Model):
    """What both models share: the generative model p(x|z_1) p(z_1|z_2) .. p(z_L), the per-level objective and
    the uses. Subclasses give the inference model (``hierarchy``) and how each level's KL is estimated
    (``kl_levels``)."""

    abilities = frozenset({Ability.IMPORTANCE_WEIGHTS, Ability.LATENT_MEANS, Ability.REPRESENTATION, Ability.SAMPLE,
                           Ability.RECONSTRUCT, Ability.FIGURES, Ability.TRAVERSAL})
    monitor = ("elbo", "max")

    def __init__(self, config: LadderVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.input_shape = tuple(config.input_shape)
        n_x = math.prod(self.input_shape)
        likelihood = LIKELIHOODS[config.likelihood]
        self.n_param_channels, self._likelihood = likelihood.n_params, likelihood.build
        self.scheduled("kl_weight", config.kl_weight)
        dims, hidden = list(config.latent_dims), list(config.hidden)
        self.n_levels = len(dims)
        self.latent_dim = dims[-1]  # the top level, which encode/decode (traversals) work on
        act, bn = config.activation, config.batch_norm
        # p(z_i | z_{i+1}), i = 1 .. L-1 (index i - 1): an MLP of z_{i+1} with level i+1's width (eq. 2).
        self.top_down = nn.ModuleList(
            GaussianLayer(dims[i + 1], hidden[i + 1], dims[i], act, bn) for i in range(self.n_levels - 1))
        # p(x | z_1) (eq. 3): an MLP of z_1 with level 1's width, then the likelihood's parameters.
        self.px_mlp = DenseBlock(dims[0], hidden[0], act, bn)
        self.px_out = nn.Linear(hidden[0], self.n_param_channels * n_x)

    # -- distributions -----------------------------------------------------------------------------------------
    def prior(self) -> DiagonalGaussian:
        """p(z_L) = N(0, I); it has no parameters, so it is built once per device and dtype."""
        like = self.px_out.weight
        cache = self.__dict__.setdefault("_prior_cache", {})  # a plain attribute, not a module buffer
        key = (like.device, like.dtype)
        if key not in cache:
            cache[key] = standard_normal(self.latent_dim, like=like)
        return cache[key]

    def decode_x(self, z1: Tensor) -> Distribution:
        """p(x|z_1) (eq. 3), for z_1 with any leading sample dimensions."""
        c, *spatial = self.input_shape
        params = self.px_out(self.px_mlp(z1)).unflatten(-1, (self.n_param_channels * c, *spatial))
        return self._likelihood(params, len(self.input_shape))

    def hierarchy(self, x: Tensor, k: int | None = None, use_mean: bool = False) -> Hierarchy:
        """q and p at every level for observations ``x`` [B, ...]: one sample per example (k None, shapes
        [B, D]), k samples fanning out from the first level drawn ([k, B, D] from there on), or the posterior
        means propagated through the levels (``use_mean``)."""
        raise NotImplementedError

    def kl_levels(self, h: Hierarchy) -> list[Tensor]:
        """KL_i for i = 1..L, each an unbiased estimate from the pass ``h``."""
        raise NotImplementedError

    @staticmethod
    def log_ratios(h: Hierarchy) -> list[Tensor]:
        """log q(z_i|.) - log p(z_i|z_{i+1}) at the drawn z_i: the single-sample estimate of each KL_i."""
        return [q.log_prob(z) - p.log_prob(z) for q, z, p in zip(h.q, h.z, h.p, strict=True)]

    # -- objective ---------------------------------------------------------------------------------------------
    def loss(self, batch: Batch) -> LossOutput:
        """-(E_q[log p(x|z_1)] - beta(t) sum_i KL_i) (eq. 11 with the warm-up L_T) for k = 1; for k > 1,
        -L_k (Burda et al. eq. 8) on log-weights whose latent part log p(z) - log q(z) is weighted by beta."""
        x, k = batch["x"], self.config.k
        h = self.hierarchy(x, k if k > 1 else None)
        rec = h.px.log_prob(x)
        kls = self.kl_levels(h)
        out = elbo_terms(rec, sum(kls), self.kl_weight)
        if k > 1:
            log_ratio = sum(self.log_ratios(h))
            out.loss = -log_mean_exp(rec - self.kl_weight * log_ratio, dim=0).mean()
            out.terms["iwae_bound"] = log_mean_exp(rec - log_ratio, dim=0).detach()
        out.terms.update({f"kl_{i}": kl.detach() for i, kl in enumerate(kls, start=1)})
        return out

    def log_importance_weights(self, batch: Batch, k: int) -> Tensor:
        """log w = log p(x|z_1) + sum_i [log p(z_i|z_{i+1}) - log q(z_i|.)], k samples of the whole hierarchy
        per example; [k, B]. In eval mode batch norm uses its running statistics, so each example's weights
        depend on that example alone."""
        x = batch["x"]
        h = self.hierarchy(x, k)
        return h.px.log_prob(x) - sum(self.log_ratios(h))

    # -- use (in eval mode: batch norm on running statistics) --------------------------------------------------
    def encode(self, x: Tensor) -> DiagonalGaussian:
        """The posterior over the top level z_L, from the pass that propagates posterior means."""
        return self.hierarchy(x, use_mean=True).q[-1]

    def decode(self, z_top: Tensor) -> Distribution:
        """p(x|z_1) with z_1 .. z_{L-1} at the means of p(z_i|z_{i+1}) below the given z_L: the generative
        path's mean image, what traversals of the top level show."""
        z = z_top
        for layer in reversed(self.top_down):
            z = layer(z).mean
        return self.decode_x(z)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """Ancestral samples z_L ~ p(z_L), z_i ~ p(z_i|z_{i+1}); the mean of p(x|z_1) is the image."""
        with _running_statistics(self):
            z = self.prior().sample((n,))
            for layer in reversed(self.top_down):
                z = layer(z).sample()
            return self.decode_x(z).mean

    @torch.no_grad()
    def reconstruct(self, batch: Batch) -> Tensor:
        """Mean of p(x|z_1) with every level at its posterior mean."""
        with _running_statistics(self):
            return self.hierarchy(batch["x"], use_mean=True).px.mean

    @torch.no_grad()
    def latent_means(self, batch: Batch) -> dict[str, Tensor]:
        """{"z1": E_q[z_1], ..., "zL": E_q[z_L]}, each level's posterior mean given the means of the levels it
        is conditioned on (above for the ladder, below for the hierarchical VAE): active units per level."""
        with _running_statistics(self):
            h = self.hierarchy(batch["x"], use_mean=True)
        return {f"z{i}": z for i, z in enumerate(h.z, start=1)}

    @torch.no_grad()
    def represent(self, x: Tensor) -> Tensor:
        """The posterior means of all levels concatenated, [B, sum latent_dims] (z_1 first): every level carries
        part of the code, and the top alone is often a few units."""
        return torch.cat(list(self.latent_means({"x": x}).values()), dim=-1)

    @torch.no_grad()
    def figures(self, batch: Batch) -> dict[str, Figure]:
        """Ancestral samples and reconstructions of a fixed batch."""
        x = batch["x"]
        return {"samples": ImageGrid(self.sample(64), 8),
                "reconstructions": ImageGrid(paired_rows(x, self.reconstruct(batch)), 16)}


@register("ladder_vae", LadderVAEConfig)
class LadderVAE(TopDownGenerative):
    """Ladder VAE (Sønderby et al. 2016): bottom-up estimates merged top-down with p(z_i|z_{i+1}) by precision.

    The top-down networks of q are the generative model's own (eqs. 17-18 use mu_p,i and sigma_p,i)."""

    def __init__(self, config: LadderVAEConfig) -> None:
        super().__init__(config)
        n_in = [math.prod(self.input_shape), *config.hidden[:-1]]
        act, bn = config.activation, config.batch_norm
        # d_i = MLP(d_{i-1}), d_0 = x (eq. 13); mu_hat_i, sigma_hat^2_i from d_i (eqs. 14-15).
        self.bottom_up = nn.ModuleList(DenseBlock(n, w, act, bn) for n, w in zip(n_in, config.hidden, strict=True))
        self.likelihood_terms = nn.ModuleList(
            GaussianHead(w, d) for w, d in zip(config.hidden, config.latent_dims, strict=True))

    def hierarchy(self, x: Tensor, k: int | None = None, use_mean: bool = False) -> Hierarchy:
        """Deterministic bottom-up pass (eqs. 13-15), then top-down: q(z_L|x) = N(mu_hat_L, sigma_hat^2_L) and
        q(z_i|.) = precision_weighted(N(mu_hat_i, sigma_hat^2_i), p(z_i|z_{i+1})) (eqs. 16-19)."""
        d = x.flatten(-len(self.input_shape))
        q_hat = []
        for mlp, head in zip(self.bottom_up, self.likelihood_terms, strict=True):
            d = mlp(d)
            q_hat.append(head(d))
        top = self.n_levels - 1
        q, z, p = list(q_hat), [torch.empty(0)] * self.n_levels, [self.prior()] * self.n_levels
        z[top] = _draw(q[top], k, use_mean)
        for i in reversed(range(top)):
            p[i] = self.top_down[i](z[i + 1])
            q[i] = precision_weighted(q_hat[i], p[i])
            z[i] = _draw(q[i], None, use_mean)
        return Hierarchy(q, z, p, self.decode_x(z[0]))

    def kl_levels(self, h: Hierarchy) -> list[Tensor]:
        """KL(q(z_i|.) || p(z_i|z_{i+1})) in closed form at the drawn z_{i+1}. q factorises top-down like p, so
        KL(q(z|x) || p(z)) = sum_i E_{q(z_{i+1}..z_L)}[KL(q(z_i|z_{i+1}, x) || p(z_i|z_{i+1}))]: analytic in z_i,
        one sample in the levels above."""
        return [kl_term(q, p, z) for q, z, p in zip(h.q, h.z, h.p, strict=True)]


@register("hierarchical_vae", LadderVAEConfig)
class HierarchicalVAE(TopDownGenerative):
    """Hierarchical VAE with bottom-up inference q(z_1|x) q(z_2|z_1) .. (the Ladder VAE paper's VAE baseline)."""

    def __init__(self, config: LadderVAEConfig) -> None:
        super().__init__(config)
        n_in = [math.prod(self.input_shape), *config.latent_dims[:-1]]
        self.bottom_up = nn.ModuleList(
            GaussianLayer(n, w, d, config.activation, config.batch_norm)
            for n, w, d in zip(n_in, config.hidden, config.latent_dims, strict=True))

    def hierarchy(self, x: Tensor, k: int | None = None, use_mean: bool = False) -> Hierarchy:
        """q(z_1|x), then q(z_i|z_{i-1}) at the z_{i-1} drawn (eqs. 4-6); then p(z_i|z_{i+1}) at the draws."""
        y = x.flatten(-len(self.input_shape))
        q, z = [], []
        for i, layer in enumerate(self.bottom_up):
            q.append(layer(y))
            y = _draw(q[-1], k if i == 0 else None, use_mean)
            z.append(y)
        p = [self.top_down[i](z[i + 1]) for i in range(self.n_levels - 1)] + [self.prior()]
        return Hierarchy(q, z, p, self.decode_x(z[0]))

    def kl_levels(self, h: Hierarchy) -> list[Tensor]:
        """Single-sample log q(z_i|z_{i-1}) - log p(z_i|z_{i+1}) below the top: p(z_i|z_{i+1}) is evaluated at a
        z_{i+1} drawn given z_i, so no closed form integrates z_i out. At the top, KL(q(z_L|z_{L-1}) || N(0, I))
        in closed form at the drawn z_{L-1}. Each term's expectation is the level's KL, so the sum is unbiased."""
        kls = self.log_ratios(h)
        kls[-1] = kl_term(h.q[-1], h.p[-1], h.z[-1])
        return kls
