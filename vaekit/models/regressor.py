"""The deterministic baseline of Sohn et al. (2015)'s MNIST quadrant completion: an MLP 784-500-500-784 that
predicts the missing pixels from the given ones. It has no latent variable, so its log-likelihood is exact."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Ge, Le
from torch import Tensor

from vaekit.core.figures import Figure, ImageGrid
from vaekit.core.likelihoods import MaskedBernoulli
from vaekit.core.nets import MLP
from vaekit.models.base import Ability, Batch, LossOutput, Model
from vaekit.models.registry import register

MISSING = -1.0  # value of the pixels X does not give (as in Pyro's reproduction)


def quadrant_mask(shape: tuple[int, ...], given: int, device: torch.device | None = None) -> Tensor:
    """Boolean [C, H, W] mask of the pixels X gives: 1 = bottom-left quadrant, 2 = left half, 3 = all but the
    bottom-right quadrant (the protocol of Sohn et al. and Pyro's CVAE example)."""
    if given not in (1, 2, 3):
        raise ValueError(f"given quadrants must be 1, 2 or 3, got {given}")
    _, h, w = shape
    m = torch.zeros(shape, dtype=torch.bool, device=device)
    m[:, h // 2 :, : w // 2] = True
    if given >= 2:
        m[:, :, : w // 2] = True
    if given == 3:
        m[:, : h // 2, :] = True
    return m


def show_input(img: Tensor, given: Tensor) -> Tensor:
    """X as people see it: given pixels as they are, missing ones mid-grey."""
    return torch.where(given, img, torch.full_like(img, 0.5))


def completion_grid(img: Tensor, given: Tensor, completions: list[Tensor]) -> ImageGrid:
    """One row per test image: the input X, then the completions, then the truth."""
    cols = [show_input(img, given), *completions, img]
    return ImageGrid(torch.stack(cols, 1).flatten(0, 1), len(cols))


@dataclass
class RegressorConfig:
    input_shape: tuple[int, int, int] = (1, 28, 28)
    given_quadrants: Annotated[int, Ge(1), Le(3)] = 1
    hidden: tuple[int, ...] = (500, 500)


@register("regressor", RegressorConfig)
class QuadrantRegressor(Model):
    """Deterministic baseline: an MLP 784-500-500-784 predicting the missing pixels from the given ones."""

    abilities = frozenset({Ability.EXACT_LIKELIHOOD, Ability.RECONSTRUCT, Ability.FIGURES})
    monitor = ("log_likelihood", "max")

    def __init__(self, config: RegressorConfig) -> None:
        super().__init__()
        self.config = config
        self.input_shape = tuple(config.input_shape)
        n = math.prod(self.input_shape)
        self.net = MLP([n, *config.hidden, n], "relu")
        self.register_buffer("given", quadrant_mask(self.input_shape, config.given_quadrants), persistent=False)

    def observation_model(self) -> str:
        return "bernoulli"

    def scored_values(self, dims: int) -> int:
        return int((~self.given).sum())  # only the missing pixels are scored

    def split(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """(X with missing pixels set to -1, the full image)."""
        img = batch["x"]
        return torch.where(self.given, img, torch.full_like(img, MISSING)), img

    def predict_logits(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(-len(self.input_shape))).view(*x.shape)

    def likelihood(self, x: Tensor) -> MaskedBernoulli:
        """p(y|x): a Bernoulli over the missing pixels."""
        return MaskedBernoulli(self.predict_logits(x), ~self.given)

    def log_likelihood(self, batch: Batch) -> Tensor:
        """log p(y|x) of the missing pixels, exact."""
        x, img = self.split(batch)
        return self.likelihood(x).log_prob(img)

    def loss(self, batch: Batch) -> LossOutput:
        ll = self.log_likelihood(batch)
        return LossOutput(loss=-ll.mean(), terms={"log_likelihood": ll.detach(), "ncll": -ll.detach()})

    @torch.no_grad()
    def reconstruct(self, batch: Batch) -> Tensor:
        """The given pixels with the regressor's (mean) prediction in the missing ones."""
        x, img = self.split(batch)
        return torch.where(self.given, img, torch.sigmoid(self.predict_logits(x)))

    @torch.no_grad()
    def figures(self, batch: Batch) -> dict[str, Figure]:
        sub = {k: v[:8] for k, v in batch.items()}
        return {"completions": completion_grid(sub["x"], self.given, [self.reconstruct(sub)])}
