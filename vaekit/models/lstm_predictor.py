"""A deterministic frame predictor, the baseline TD-VAE's rollouts are compared with: an LSTM reads x_1..x_t and
p(x_{t+1} | h_t) is scored directly, with no latent state:

    h_t = LSTM(h_{t-1}, phi(x_t)),   loss = -(1 / (T - 1)) sum_t log p(x_{t+1} | h_t)

Its rollouts feed the predicted mean frame back in as the next input, so they are one deterministic guess
(the mean over possible futures), where TD-VAE samples futures."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from annotated_types import Ge
from torch import Tensor, nn
from torch.distributions import Distribution

from vaekit.core.figures import Figure
from vaekit.core.likelihoods import LIKELIHOODS
from vaekit.core.nets import MLP
from vaekit.models.base import Ability, Batch, LossOutput, Model
from vaekit.models.registry import register
from vaekit.models.tdvae import rollout_curve, rollout_grid


@dataclass
class LSTMPredictorConfig:
    input_shape: tuple[int, ...] = (1, 28, 28)  # one frame
    likelihood: Literal["bernoulli", "gaussian", "discretized_logistic"] = "bernoulli"
    preprocess: tuple[int, ...] = (256,)  # phi, as TD-VAE's
    hidden_size: Annotated[int, Ge(1)] = 50  # the LSTM state (TD-VAE's belief size, for a like-for-like baseline)
    decoder_hidden: tuple[int, ...] = (200, 200)


@register("lstm_predictor", LSTMPredictorConfig)
class LSTMPredictor(Model):
    """Deterministic LSTM next-frame predictor: p(x_{t+1} | h_t), trained on -log p; TD-VAE's rollout baseline."""

    abilities = frozenset({Ability.FIGURES})
    monitor = ("log_p_next", "max")

    def __init__(self, config: LSTMPredictorConfig) -> None:
        super().__init__()
        self.config = config
        self.frame_shape = tuple(config.input_shape)
        likelihood = LIKELIHOODS[config.likelihood]
        self._likelihood, n_params = likelihood.build, likelihood.n_params
        n_x = math.prod(self.frame_shape)
        self.phi = MLP([n_x, *config.preprocess], "relu", final_act=True) if config.preprocess else nn.Identity()
        self.lstm = nn.LSTM(config.preprocess[-1] if config.preprocess else n_x, config.hidden_size, batch_first=True)
        self.decoder = MLP([config.hidden_size, *config.decoder_hidden, n_params * n_x], "tanh")
        self._param_shape = (n_params * self.frame_shape[0], *self.frame_shape[1:])

    def p_next(self, h: Tensor) -> Distribution:
        """p(x_{t+1} | h_t) over one frame."""
        params = self.decoder(h)
        return self._likelihood(params.view(*params.shape[:-1], *self._param_shape).float(), len(self.frame_shape))

    def loss(self, batch: Batch) -> LossOutput:
        """-(1 / (T - 1)) sum_t log p(x_{t+1} | h_t), averaged over the batch (nats per predicted frame)."""
        x = batch["x"]
        h = self.lstm(self.phi(x[:, :-1].flatten(2)))[0]
        log_p = self.p_next(h).log_prob(x[:, 1:]).mean(1)
        return LossOutput(loss=-log_p.mean(), terms={"log_p_next": log_p.detach()})

    @torch.no_grad()
    def rollout(self, x_context: Tensor, horizon: int, jump: int = 1, n_samples: int = 1) -> Tensor:
        """TD-VAE's rollout signature: [n_samples, B, horizon // jump, *frame], every jump-th predicted frame (the
        predictor steps through all of them, feeding each mean back in); the samples are identical copies.
        Horizon 0 returns the last context frame (the model has no reconstruction)."""
        if horizon == 0:
            return x_context[:, -1:].expand(n_samples, *x_context[:, -1:].shape).clone()
        h, state = self.lstm(self.phi(x_context.flatten(2)))
        frames = []
        for _ in range(horizon):
            frame = self.p_next(h[:, -1]).mean
            frames.append(frame)
            h, state = self.lstm(self.phi(frame.flatten(1)).unsqueeze(1), state)
        pred = torch.stack(frames, 1)[:, jump - 1 :: jump][:, : horizon // jump]
        return pred.expand(n_samples, *pred.shape).clone()

    @torch.no_grad()
    def figures(self, batch: Batch) -> dict[str, Figure]:
        """The rollout from the first half of each sequence below its true frames (images) or beside them."""
        x = batch["x"][:4]
        context = x.shape[1] // 2
        pred = self.rollout(x[:, :context], x.shape[1] - context, 1, n_samples=1)
        if len(self.frame_shape) == 3:
            return {"rollout": rollout_grid(x, context, pred)}
        state = batch.get("state")
        return {"rollout": rollout_curve(x[0, :, 0], context, pred[:, 0, :, 0], 1,
                                         None if state is None else state[0, :, 0])}
