"""The conditional VAE (Sohn, Lee & Yan 2015) and its deterministic regressor baseline.

Conditional log-likelihood bound (Sohn et al., eq. 4):

    log p(Y|X) >= E_{q(z|X,Y)}[ log p(Y|X,z) ] - KL( q(z|X,Y) || p(z|X) )

with a recognition network q(z|x,y), a learned conditional prior p(z|x) and a generation network p(y|x,z).
Two tasks on MNIST choose what X and Y are (``task``):

- ``label``: X = the digit's label (one-hot), Y = the image: class-conditional generation.
- ``quadrants``: X = 1, 2 or 3 given quadrants of the image, Y = the missing pixels. As in Sohn et al. (and
  Pyro's reproduction) the prior network also sees the baseline regressor's prediction of the missing part.

Masked pixels: Y's likelihood is summed over the missing pixels only, so the given pixels never count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution

from vaekit.likelihoods import bernoulli, diag_gaussian
from vaekit.models.base import Batch, LossOutput, elbo_terms, kl_term
from vaekit.nets import MLP
from vaekit.registry import register

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


class MaskedBernoulli(Distribution):
    """Independent Bernoulli over the pixels where ``mask`` is true; the others contribute nothing."""

    arg_constraints: dict = {}

    def __init__(self, logits: Tensor, mask: Tensor) -> None:
        self.pixels = Bernoulli(logits=logits, validate_args=False)
        self.mask = mask
        n = mask.dim()
        super().__init__(logits.shape[:-n], logits.shape[-n:], validate_args=False)

    def log_prob(self, value: Tensor) -> Tensor:
        per_pixel = self.pixels.log_prob(value)  # broadcasts value over leading sample dims
        return (per_pixel * self.mask).flatten(-self.mask.dim()).sum(-1)

    @property
    def mean(self) -> Tensor:
        return self.pixels.mean


@dataclass
class RegressorConfig:
    input_shape: tuple[int, ...] = (1, 28, 28)
    given_quadrants: int = 1
    hidden: tuple[int, ...] = (500, 500)


@register("regressor", RegressorConfig)
class QuadrantRegressor(nn.Module):
    """Deterministic baseline: an MLP 784-500-500-784 predicting the missing pixels from the given ones."""

    conditional = True

    def __init__(self, config: RegressorConfig) -> None:
        super().__init__()
        self.config = config
        self.input_shape = tuple(config.input_shape)
        n = math.prod(self.input_shape)
        self.net = MLP([n, *config.hidden, n], "relu")
        self.register_buffer("given", quadrant_mask(self.input_shape, config.given_quadrants), persistent=False)

    def split(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """(X with missing pixels set to -1, the full image)."""
        img = batch["x"]
        return torch.where(self.given, img, torch.full_like(img, MISSING)), img

    def predict_logits(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(-len(self.input_shape))).view(*x.shape)

    def likelihood(self, x: Tensor) -> Distribution:
        return MaskedBernoulli(self.predict_logits(x), ~self.given)

    def loss(self, batch: Batch) -> LossOutput:
        x, img = self.split(batch)
        ll = self.likelihood(x).log_prob(img)
        return LossOutput(loss=-ll.mean(), terms={"elbo": ll.detach(), "ncll": -ll.detach()})

    def log_importance_weights(self, batch: Batch, k: int) -> Tensor:
        """log p(y|x) of a deterministic prediction: every 'sample' weighs the same, so L_k is exact."""
        x, img = self.split(batch)
        return self.likelihood(x).log_prob(img).expand(k, -1)

    @torch.no_grad()
    def reconstruct(self, img: Tensor) -> Tensor:
        """The given pixels with the regressor's (mean) prediction in the missing ones."""
        x, _ = self.split({"x": img})
        return torch.where(self.given, img, torch.sigmoid(self.predict_logits(x)))

    @torch.no_grad()
    def figures(self, batch: Batch) -> dict[str, tuple[Tensor, int]]:
        return {"completions": completion_grid(self, batch)}


@dataclass
class CVAEConfig:
    input_shape: tuple[int, ...] = (1, 28, 28)
    task: Literal["label", "quadrants"] = "quadrants"
    n_classes: int = 10  # task=label
    given_quadrants: int = 1  # task=quadrants
    hidden: tuple[int, ...] = (500, 500)
    latent_dim: int = 200
    activation: str = "relu"
    baseline_run: str | None = None  # task=quadrants: a trained regressor run whose prediction the prior sees
    baseline_hidden: tuple[int, ...] = (500, 500)  # that regressor's widths


@register("cvae", CVAEConfig)
class CVAE(nn.Module):
    """Conditional VAE: q(z|x,y), p(z|x), p(y|x,z) (Sohn et al. 2015)."""

    conditional = True

    def __init__(self, config: CVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.input_shape = tuple(config.input_shape)
        self.latent_dim = config.latent_dim
        n = math.prod(self.input_shape)
        h, act = list(config.hidden), config.activation
        n_x = config.n_classes if config.task == "label" else n
        self.recognition = MLP([n_x + n, *h, 2 * config.latent_dim], act)  # q(z|x, y)
        self.prior_net = MLP([n_x, *h, 2 * config.latent_dim], act)  # p(z|x)
        self.generation = MLP([config.latent_dim + n_x, *h[::-1], n], act)  # p(y|x, z)
        if config.task == "quadrants":
            self.baseline = QuadrantRegressor(
                RegressorConfig(self.input_shape, config.given_quadrants, tuple(config.baseline_hidden)))
            self.baseline.requires_grad_(False)

    @property
    def given(self) -> Tensor:
        """The pixels X gives (task=quadrants): the baseline regressor's mask."""
        return self.baseline.given

    def prepare(self) -> None:
        """Before training: load the pre-trained baseline regressor (its weights then live in this model)."""
        if self.config.task == "quadrants" and self.config.baseline_run:
            from vaekit.io import load

            trained = load(self.config.baseline_run)
            if trained.config != self.baseline.config:
                raise ValueError(f"{self.config.baseline_run}: regressor {trained.config} does not match this CVAE's "
                                 f"baseline {self.baseline.config} (set model.baseline_hidden / given_quadrants)")
            self.baseline.load_state_dict(trained.state_dict())

    # -- X and Y -----------------------------------------------------------------------------------------
    def condition(self, batch: Batch) -> Tensor:
        """X as a flat vector: the one-hot label, or the given pixels with the baseline's guess elsewhere."""
        if self.config.task == "label":
            return F.one_hot(batch["y"], self.config.n_classes).to(batch["x"].dtype)
        x, _ = self.baseline.split(batch)
        with torch.no_grad():
            guess = torch.sigmoid(self.baseline.predict_logits(x))
        return torch.where(self.given, x, guess).flatten(1)

    def target_mask(self) -> Tensor | None:
        return None if self.config.task == "label" else ~self.given

    # -- distributions ---------------------------------------------------------------------------------
    def prior(self, cond: Tensor) -> Distribution:
        """p(z|x)."""
        return diag_gaussian(*self.prior_net(cond).chunk(2, dim=-1))

    def encode(self, cond: Tensor, y: Tensor) -> Distribution:
        """q(z|x, y)."""
        return diag_gaussian(*self.recognition(torch.cat([cond, y.flatten(1)], -1)).chunk(2, dim=-1))

    def decode(self, z: Tensor, cond: Tensor) -> Distribution:
        """p(y|x, z): Bernoulli over the image, restricted to the missing pixels for quadrant completion."""
        cond = cond.expand(*z.shape[:-1], cond.shape[-1])
        logits = self.generation(torch.cat([z, cond], -1)).unflatten(-1, self.input_shape)
        mask = self.target_mask()
        return bernoulli(logits, len(self.input_shape)) if mask is None else MaskedBernoulli(logits, mask)

    # -- objective -------------------------------------------------------------------------------------
    def _posterior(self, batch: Batch) -> tuple[Tensor, Tensor, Distribution]:
        """(X, Y, q(z|x,y)) for a batch."""
        cond, y = self.condition(batch), batch["x"]
        return cond, y, self.encode(cond, y)

    def loss(self, batch: Batch) -> LossOutput:
        """-[E_q log p(y|x,z) - KL(q(z|x,y) || p(z|x))], the analytic Gaussian KL (eq. 4)."""
        cond, y, q = self._posterior(batch)
        z = q.rsample()
        return elbo_terms(self.decode(z, cond).log_prob(y), kl_term(q, self.prior(cond), z))

    def log_importance_weights(self, batch: Batch, k: int) -> Tensor:
        """log p(y|x,z_i) + log p(z_i|x) - log q(z_i|x,y), z_i ~ q(z|x,y): L_k bounds log p(y|x)."""
        cond, y, q = self._posterior(batch)
        z = q.rsample((k,))
        return self.decode(z, cond).log_prob(y) + self.prior(cond).log_prob(z) - q.log_prob(z)

    # -- use -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def complete(self, batch: Batch, n: int) -> Tensor:
        """n draws of Y for each X, z ~ p(z|x): [n, B, C, H, W] (given pixels kept for quadrants)."""
        cond = self.condition(batch)
        z = self.prior(cond).sample((n,))
        y = self.decode(z, cond).mean
        if self.config.task == "quadrants":
            y = torch.where(self.given, batch["x"], y)
        return y

    @torch.no_grad()
    def sample(self, n: int, label: int | None = None) -> Tensor:
        """task=label: n images of ``label``; with no label, n // n_classes of each digit, digit by digit."""
        if self.config.task != "label":
            raise ValueError("sample() needs a label-conditioned CVAE (task=label); quadrant models complete()")
        device = next(self.parameters()).device
        if label is not None and not 0 <= label < self.config.n_classes:
            raise ValueError(f"label must be in 0..{self.config.n_classes - 1}, got {label}")
        labels = torch.arange(self.config.n_classes) if label is None else torch.tensor([label])
        per = n if label is not None else max(1, n // self.config.n_classes)
        dummy = torch.zeros(len(labels), *self.input_shape, device=device)
        out = self.complete({"x": dummy, "y": labels.to(device)}, per)  # [per, labels, C, H, W]
        return out.transpose(0, 1).reshape(-1, *self.input_shape)

    @torch.no_grad()
    def reconstruct(self, img: Tensor, y: Tensor | None = None) -> Tensor:
        batch = {"x": img} if y is None else {"x": img, "y": y}
        if self.config.task == "label" and y is None:
            raise ValueError("a label-conditioned CVAE needs labels to reconstruct")
        cond = self.condition(batch)
        return self.decode(self.encode(cond, img).mean, cond).mean

    @torch.no_grad()
    def latent_means(self, batch: Batch) -> dict[str, Tensor]:
        return {"z": self.encode(self.condition(batch), batch["x"]).mean}

    @torch.no_grad()
    def figures(self, batch: Batch) -> dict[str, tuple[Tensor, int]]:
        if self.config.task == "label":
            return {"samples_by_digit": (self.sample(8 * self.config.n_classes), 8)}
        return {"completions": completion_grid(self, batch, n_completions=5)}


def show_input(img: Tensor, given: Tensor) -> Tensor:
    """X as people see it: given pixels as they are, missing ones mid-grey."""
    return torch.where(given, img, torch.full_like(img, 0.5))


def completion_grid(model: nn.Module, batch: Batch, n_completions: int = 5, n_rows: int = 8) -> tuple[Tensor, int]:
    """One row per test image: the input X, then the model's completions, then the truth."""
    img = batch["x"][:n_rows]
    sub = {k: v[:n_rows] for k, v in batch.items()}
    if hasattr(model, "complete"):
        outs = list(model.complete(sub, n_completions))
    else:
        outs = [model.reconstruct(img)]
    cols = [show_input(img, model.given), *outs, img]
    return torch.stack(cols, 1).flatten(0, 1), len(cols)
