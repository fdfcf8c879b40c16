"""The conditional VAE (Sohn, Lee & Yan 2015), one class per task.

Conditional log-likelihood bound (Sohn et al., eq. 4):

    log p(Y|X) >= E_{q(z|X,Y)}[ log p(Y|X,z) ] - KL( q(z|X,Y) || p(z|X) )

with a recognition network q(z|x,y), a learned conditional prior p(z|x) and a generation network p(y|x,z).

- ``cvae_label``: X = the digit's label (one-hot), Y = the image: class-conditional generation.
- ``cvae_quadrants``: X = 1, 2 or 3 given quadrants of the image, Y = the missing pixels, scored on the missing
  pixels only. As in Sohn et al. (and Pyro's reproduction) the prior network also sees a baseline regressor's
  prediction of the missing part; that regressor is a submodule, initialised from a trained run by the recipe
  (``train.init: {baseline: runs/...}``), never loaded from disk by the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from annotated_types import Ge, Le
from torch import Tensor
from torch.distributions import Distribution

from vaekit.core.figures import Figure, ImageGrid
from vaekit.core.likelihoods import MaskedBernoulli, bernoulli, diag_gaussian
from vaekit.core.nets import MLP
from vaekit.models.base import Ability, Batch, LossOutput, Model, elbo_terms, kl_term
from vaekit.models.registry import register
from vaekit.models.regressor import QuadrantRegressor, RegressorConfig, completion_grid


class ConditionalVAE(Model):
    """q(z|x,y), p(z|x), p(y|x,z) over a condition vector X (``condition``) and the image Y."""

    abilities = frozenset({Ability.IMPORTANCE_WEIGHTS, Ability.LATENT_MEANS, Ability.RECONSTRUCT, Ability.FIGURES})

    def __init__(self, input_shape: tuple[int, ...], n_cond: int, hidden: tuple[int, ...], latent_dim: int,
                 activation: str) -> None:
        super().__init__()
        self.input_shape, self.latent_dim = tuple(input_shape), latent_dim
        n, h = math.prod(self.input_shape), list(hidden)
        self.recognition = MLP([n_cond + n, *h, 2 * latent_dim], activation)  # q(z|x, y)
        self.prior_net = MLP([n_cond, *h, 2 * latent_dim], activation)  # p(z|x)
        self.generation = MLP([latent_dim + n_cond, *h[::-1], n], activation)  # p(y|x, z)

    def condition(self, batch: Batch) -> Tensor:
        """X as a flat vector [B, n_cond]."""
        raise NotImplementedError

    def observation_model(self) -> str:
        return "bernoulli"

    def likelihood(self, logits: Tensor) -> Distribution:
        """p(y|x, z) from the generation network's logits: a Bernoulli over the image."""
        return bernoulli(logits, len(self.input_shape))

    # -- distributions ---------------------------------------------------------------------------------
    def prior(self, cond: Tensor) -> Distribution:
        """p(z|x)."""
        return diag_gaussian(*self.prior_net(cond).chunk(2, dim=-1))

    def encode(self, cond: Tensor, y: Tensor) -> Distribution:
        """q(z|x, y)."""
        return diag_gaussian(*self.recognition(torch.cat([cond, y.flatten(1)], -1)).chunk(2, dim=-1))

    def decode(self, z: Tensor, cond: Tensor) -> Distribution:
        """p(y|x, z); z may have leading sample dimensions."""
        cond = cond.expand(*z.shape[:-1], cond.shape[-1])
        return self.likelihood(self.generation(torch.cat([z, cond], -1)).unflatten(-1, self.input_shape))

    # -- objective -------------------------------------------------------------------------------------
    def loss(self, batch: Batch) -> LossOutput:
        """-[E_q log p(y|x,z) - KL(q(z|x,y) || p(z|x))], the analytic Gaussian KL (eq. 4)."""
        cond, y = self.condition(batch), batch["x"]
        q = self.encode(cond, y)
        z = q.rsample()
        return elbo_terms(self.decode(z, cond).log_prob(y), kl_term(q, self.prior(cond), z))

    def log_importance_weights(self, batch: Batch, k: int) -> Tensor:
        """log p(y|x,z_i) + log p(z_i|x) - log q(z_i|x,y), z_i ~ q(z|x,y): L_k bounds log p(y|x)."""
        cond, y = self.condition(batch), batch["x"]
        q = self.encode(cond, y)
        z = q.rsample((k,))
        return self.decode(z, cond).log_prob(y) + self.prior(cond).log_prob(z) - q.log_prob(z)

    # -- use -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def complete(self, batch: Batch, n: int) -> Tensor:
        """n draws of Y for each X, z ~ p(z|x): [n, B, C, H, W] (means of p(y|x,z))."""
        cond = self.condition(batch)
        return self.decode(self.prior(cond).sample((n,)), cond).mean

    @torch.no_grad()
    def reconstruct(self, batch: Batch) -> Tensor:
        cond = self.condition(batch)
        return self.decode(self.encode(cond, batch["x"]).mean, cond).mean

    @torch.no_grad()
    def latent_means(self, batch: Batch) -> dict[str, Tensor]:
        return {"z": self.encode(self.condition(batch), batch["x"]).mean}


@dataclass
class LabelCVAEConfig:
    input_shape: tuple[int, int, int] = (1, 28, 28)
    n_classes: Annotated[int, Ge(2)] = 10
    hidden: tuple[int, ...] = (500, 500)
    latent_dim: Annotated[int, Ge(1)] = 200
    activation: str = "relu"


@register("cvae_label", LabelCVAEConfig)
class LabelCVAE(ConditionalVAE):
    """Conditional VAE for class-conditional generation: X = the label, Y = the image (Sohn et al. 2015)."""

    abilities = ConditionalVAE.abilities | {Ability.SAMPLE, Ability.SAMPLE_BY_LABEL}

    def __init__(self, config: LabelCVAEConfig) -> None:
        super().__init__(config.input_shape, config.n_classes, config.hidden, config.latent_dim, config.activation)
        self.config = config

    def condition(self, batch: Batch) -> Tensor:
        if "y" not in batch:
            raise ValueError("a label-conditioned CVAE needs labels (batch['y'])")
        return F.one_hot(batch["y"], self.config.n_classes).to(batch["x"].dtype)

    @torch.no_grad()
    def sample(self, n: int, label: int | None = None) -> Tensor:
        """n images of ``label``; with no label, n // n_classes of each digit, digit by digit."""
        device = next(self.parameters()).device
        if label is not None and not 0 <= label < self.config.n_classes:
            raise ValueError(f"label must be in 0..{self.config.n_classes - 1}, got {label}")
        labels = torch.arange(self.config.n_classes) if label is None else torch.tensor([label])
        per = n if label is not None else max(1, n // self.config.n_classes)
        dummy = torch.zeros(len(labels), *self.input_shape, device=device)
        out = self.complete({"x": dummy, "y": labels.to(device)}, per)  # [per, labels, C, H, W]
        return out.transpose(0, 1).reshape(-1, *self.input_shape)

    @torch.no_grad()
    def figures(self, batch: Batch) -> dict[str, Figure]:
        return {"samples_by_digit": ImageGrid(self.sample(8 * self.config.n_classes), 8)}


@dataclass
class QuadrantCVAEConfig:
    input_shape: tuple[int, int, int] = (1, 28, 28)
    given_quadrants: Annotated[int, Ge(1), Le(3)] = 1
    hidden: tuple[int, ...] = (500, 500)
    latent_dim: Annotated[int, Ge(1)] = 200
    activation: str = "relu"
    baseline_hidden: tuple[int, ...] = (500, 500)  # the widths of the regressor whose prediction the prior sees


@register("cvae_quadrants", QuadrantCVAEConfig)
class QuadrantCVAE(ConditionalVAE):
    """Conditional VAE for MNIST quadrant completion: X = the given quadrants, Y = the missing pixels."""

    def __init__(self, config: QuadrantCVAEConfig) -> None:
        super().__init__(config.input_shape, math.prod(config.input_shape), config.hidden, config.latent_dim,
                         config.activation)
        self.config = config
        self.baseline = QuadrantRegressor(
            RegressorConfig(self.input_shape, config.given_quadrants, tuple(config.baseline_hidden)))
        self.baseline.requires_grad_(False)

    @property
    def given(self) -> Tensor:
        """The pixels X gives: the baseline regressor's mask."""
        return self.baseline.given

    def scored_values(self, dims: int) -> int:
        return int((~self.given).sum())  # only the missing pixels are scored

    def condition(self, batch: Batch) -> Tensor:
        """The given pixels with the baseline's guess in the missing ones."""
        x, _ = self.baseline.split(batch)
        with torch.no_grad():
            guess = torch.sigmoid(self.baseline.predict_logits(x))
        return torch.where(self.given, x, guess).flatten(1)

    def likelihood(self, logits: Tensor) -> Distribution:
        """Bernoulli over the missing pixels alone: the given ones are not scored."""
        return MaskedBernoulli(logits, ~self.given)

    @torch.no_grad()
    def complete(self, batch: Batch, n: int) -> Tensor:
        """n completions per image, given pixels kept."""
        return torch.where(self.given, batch["x"], super().complete(batch, n))

    @torch.no_grad()
    def figures(self, batch: Batch) -> dict[str, Figure]:
        sub = {k: v[:8] for k, v in batch.items()}
        return {"completions": completion_grid(sub["x"], self.given, list(self.complete(sub, 5)))}
