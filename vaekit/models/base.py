"""The model contract every vaekit variant follows, and the one place the ELBO is written.

A model is a plain ``nn.Module`` (no Lightning, no data set, no files) that takes the batch mapping
``{"x": observations, "y": labels, ...}`` in every method, so conditional and sequence models need no other
signature:

- ``loss(batch) -> LossOutput``: the scalar to minimise and named per-example terms to log.
- ``on_train_step(step, epoch)``: the training module calls it before every step; scheduled values (KL warm-up,
  capacity, fade-in) live in buffers, so checkpoints and ``vaekit.load`` carry them.
- ``monitor``: the logged term that selects the best checkpoint and the direction that is better. It must be a
  quantity no schedule moves (the true ELBO or bound), not the annealed loss, lowest during warm-up.

Optional abilities are declared in ``abilities`` (checked when the model registers), never guessed:

==================  ==============================================  ==============================
ability             method                                          used by
==================  ==============================================  ==============================
importance_weights  ``log_importance_weights(batch, k) -> [k, B]``  NLL = -L_k (vaekit.core.estimators)
exact_likelihood    ``log_likelihood(batch) -> [B]``                NLL of models with no latent
latent_means        ``latent_means(batch) -> {level: [B, D]}``      active units
representation      ``represent(x) -> [B, D]``                      disentanglement metrics
sample              ``sample(n) -> observations``                   vaekit sample
sample_by_label     ``sample(n, label=...)``                        vaekit sample --label
reconstruct         ``reconstruct(batch) -> observations``          vaekit reconstruct
figures             ``figures(batch) -> {name: Figure}``            training figures, reports
traversal           ``encode(x)`` diagonal q(z|x), ``decode(z)``     vaekit traverse
==================  ==============================================  ==============================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, kl_divergence

from vaekit.core.figures import Figure, ImageGrid, paired_rows
from vaekit.core.likelihoods import standard_normal
from vaekit.core.schedules import Ramp

Batch = Mapping[str, Tensor]


class Ability(StrEnum):
    IMPORTANCE_WEIGHTS = "importance_weights"
    EXACT_LIKELIHOOD = "exact_likelihood"
    LATENT_MEANS = "latent_means"
    REPRESENTATION = "representation"
    SAMPLE = "sample"
    SAMPLE_BY_LABEL = "sample_by_label"
    RECONSTRUCT = "reconstruct"
    FIGURES = "figures"
    TRAVERSAL = "traversal"


# The method each ability promises (registration checks that the class defines it).
ABILITY_METHODS: dict[Ability, str] = {
    Ability.IMPORTANCE_WEIGHTS: "log_importance_weights", Ability.EXACT_LIKELIHOOD: "log_likelihood",
    Ability.LATENT_MEANS: "latent_means", Ability.REPRESENTATION: "represent", Ability.SAMPLE: "sample",
    Ability.SAMPLE_BY_LABEL: "sample", Ability.RECONSTRUCT: "reconstruct", Ability.FIGURES: "figures",
    Ability.TRAVERSAL: "decode",
}


def has(model: nn.Module, ability: Ability) -> bool:
    return ability in getattr(model, "abilities", frozenset())


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


def elbo_terms(log_px_z: Tensor, kl: Tensor, beta: Tensor | float = 1.0) -> LossOutput:
    """ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z))   (Kingma & Welling 2014, eq. 3).

    The loss minimised is -(E_q[log p(x|z)] - beta KL) with beta = 1 unless a schedule (KL warm-up, Sonderby et
    al. 2016) or a beta-VAE (Higgins et al. 2017) sets it; the logged ``elbo`` is always the true bound."""
    elbo = log_px_z - kl
    terms = {"elbo": elbo.detach(), "rec": log_px_z.detach(), "kl": kl.detach()}
    return LossOutput(loss=-(log_px_z - beta * kl).mean(), terms=terms)


class Model(nn.Module):
    """What every registered model shares: declared abilities, the monitored term and scheduled buffers."""

    abilities: ClassVar[frozenset[Ability]] = frozenset()
    monitor: ClassVar[tuple[str, Literal["max", "min"]]] = ("elbo", "max")

    def __init__(self) -> None:
        super().__init__()
        self._schedules: dict[str, Ramp] = {}

    def scheduled(self, name: str, ramp: Ramp) -> None:
        """Keep ``ramp``'s current value as attribute ``name``: a buffer (saved and loaded with the weights) when
        it changes over training, a plain float when it is constant."""
        if ramp.constant:
            setattr(self, name, float(ramp.start))
            return
        self._schedules[name] = ramp
        self.register_buffer(name, torch.tensor(float(ramp.value(0, 0))))

    def on_train_step(self, step: int, epoch: int) -> None:
        """Called by the training module before every training step."""
        for name, ramp in self._schedules.items():
            getattr(self, name).fill_(ramp.value(step, epoch))

    def loss(self, batch: Batch) -> LossOutput:
        raise NotImplementedError

    def check_budget(self, total_steps: int) -> None:
        """Refuse (ValueError naming the setting) a schedule that cannot complete in ``total_steps`` of training."""

    def monitor_from_step(self) -> int:
        """The first training step from which the monitored term compares with later ones: the best weights are
        chosen from there on (a progressive model: once its last level is fully in)."""
        return 0

    def observation_model(self) -> str:
        """The name of p(x|.) in vaekit.core.likelihoods; the trainer checks it against what the data serve."""
        name = getattr(self.config, "likelihood", None)
        if name is None:
            raise NotImplementedError(f"{type(self).__name__}: override observation_model() (its config names no "
                                      "likelihood)")
        return name

    def scored_values(self, dims: int) -> int:
        """How many of an example's ``dims`` observed values the likelihood scores (for bits per dimension)."""
        return dims


class LatentVariableModel(Model):
    """Base for single-latent VAEs: subclasses define ``encode``, ``decode`` and ``latent_dim``.

    ``encode(x) -> q(z|x)``, ``decode(z) -> p(x|z)`` and ``prior() -> p(z)`` are ``torch.distributions``
    objects; the decoder accepts any leading sample dimensions ([k, B, D] -> p(x|z) of batch shape [k, B])."""

    abilities = frozenset({Ability.IMPORTANCE_WEIGHTS, Ability.LATENT_MEANS, Ability.REPRESENTATION, Ability.SAMPLE,
                           Ability.RECONSTRUCT, Ability.FIGURES, Ability.TRAVERSAL})
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
        """Negative single-sample ELBO with the analytic KL (reparameterised z ~ q(z|x)), KL weighted by beta."""
        x = batch["x"]
        q = self.encode(x)
        z = q.rsample()
        beta = getattr(self, "kl_weight", 1.0)  # set by self.scheduled("kl_weight", ...) where a model has one
        return elbo_terms(self.decode(z).log_prob(x), kl_term(q, self.prior(), z), beta)

    def log_importance_weights(self, batch: Batch, k: int) -> Tensor:
        """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x), z_i ~ q(z|x), i = 1..k; shape [k, B]."""
        x = batch["x"]
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
    def reconstruct(self, batch: Batch) -> Tensor:
        """Mean of p(x|z) at the posterior mean z = E_q[z]."""
        return self.decode(self.encode(batch["x"]).mean).mean

    @torch.no_grad()
    def represent(self, x: Tensor) -> Tensor:
        """The posterior mean E_q[z|x], the representation disentanglement metrics score."""
        return self.encode(x).mean

    @torch.no_grad()
    def figures(self, batch: Batch) -> dict[str, Figure]:
        """Prior samples and reconstructions of a fixed batch."""
        x = batch["x"]
        return {"samples": ImageGrid(self.sample(64), 8),
                "reconstructions": ImageGrid(paired_rows(x, self.reconstruct(batch)), 16)}

    @torch.no_grad()
    def latent_means(self, batch: Batch) -> dict[str, Tensor]:
        """E_q[z] per latent layer, for Burda et al.'s active-unit count."""
        return {"z": self.encode(batch["x"]).mean}
