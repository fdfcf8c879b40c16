"""TD-VAE: the Temporal Difference Variational Auto-Encoder (Gregor, Papamakarios, Besse, Buesing & Weber, ICLR
2019), with the two-layer state hierarchy of the paper's appendix and of the public reference code (xqding/TD-VAE).

Four distributions, named as in the paper:

    belief      b_t = LSTM(b_{t-1}, phi(x_t))          a deterministic summary of x_{1..t}
    p_B(z_t | b_t)                                     the belief over the state, "what z is now"
    p_T(z_t2 | z_t1)                                   the (jumpy) transition over t2 - t1 frames
    p_S(z_t1 | z_t2, b_t1, b_t2)                       smoothing: the state at t1 in hindsight (q_S in the paper)
    p_D(x_t | z_t)                                     the decoder

and one objective on a pair of time points t1 < t2 (the paper's eq. 8, the jumpy form of eq. 6):

    J_{t1,t2} = E[ log p_D(x_t2 | z_t2) + log p_B(z_t1 | b_t1) + log p_T(z_t2 | z_t1)
                   - log p_B(z_t2 | b_t2) - log p_S(z_t1 | z_t2, b_t1, b_t2) ],
    z_t2 ~ p_B(. | b_t2),  z_t1 ~ p_S(. | z_t2, b_t1, b_t2)

with t2 - t1 = delta uniform on 1..D (``max_jump``) and t1 uniform over the frames where t2 fits. The belief at
t2 is the bootstrap target for the belief at t1, as a value at t2 is for the value at t1 in TD learning.

Each of p_B, p_T and p_S is a two-layer Gaussian over z = (z^1, z^2): z^2 ~ N(D(c)), then z^1 ~ N(D(c, z^2)), with
c the distribution's conditioning input and D the paper's appendix block (mu, log sigma from
tanh(W1 c) * sigmoid(W2 c)). With ``jump_input`` the jump delta (one-hot) is also given to p_T and p_S, so one
model rolls out with any jump 1..D; the reference code trains without it (its p_T is a mixture over jumps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from annotated_types import Ge
from torch import Tensor, nn
from torch.distributions import Distribution, constraints

from vaekit.core.figures import Curve, Figure, ImageGrid
from vaekit.core.likelihoods import LIKELIHOODS, DiagonalGaussian
from vaekit.core.nets import MLP, ConvDecoder, fold
from vaekit.core.schedules import Ramp
from vaekit.models.base import Ability, Batch, LossOutput, Model
from vaekit.models.registry import register


@dataclass
class TDVAEConfig:
    input_shape: tuple[int, ...] = (1, 28, 28)  # one frame: (C, H, W) images or (D,) vectors
    likelihood: Literal["bernoulli", "gaussian", "discretized_logistic"] = "bernoulli"
    preprocess: tuple[int, ...] = (256,)  # phi: an MLP on each frame before the LSTM (relu)
    belief_size: Annotated[int, Ge(1)] = 50  # b_t (the reference uses 50)
    latent_size: Annotated[int, Ge(1)] = 8  # per stochastic layer (reference: 8), so z has layers x this
    layers: Annotated[int, Ge(1)] = 2  # stochastic layers of z (the paper and the reference use 2)
    hidden: Annotated[int, Ge(1)] = 50  # width of the D blocks of p_B, p_T and p_S
    decoder_hidden: tuple[int, ...] = (200, 200)  # p_D: an MLP z -> frame (tanh), as the reference's
    # p_D's network: the reference's MLP, or (image frames) an fc layer of decoder_hidden[-1] then transposed convs
    # of decoder_channels, which draw a shape at any offset with the same filters where an MLP learns each offset
    decoder: Literal["mlp", "conv"] = "mlp"
    decoder_channels: tuple[int, ...] = (32, 64)
    max_jump: Annotated[int, Ge(1)] = 4  # D: t2 - t1 is uniform on 1..D (reference: 4)
    jump_input: bool = True  # give p_T and p_S the jump (one-hot), so rollouts can choose it
    pairs: Annotated[int, Ge(1)] = 1  # (t1, t2) pairs drawn per sequence and step, J averaged over them
    # beta on J's two KL estimates (see loss); 1, or a warm-up from 0 that keeps a weak decoder from ignoring z
    kl_weight: Ramp = field(default_factory=Ramp)


class DBlock(nn.Module):
    """The paper's appendix block D: t = tanh(W1 c) * sigmoid(W2 c); (mu, log sigma) = (W_mu t, W_sigma t)."""

    def __init__(self, n_in: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.gate = nn.Linear(n_in, 2 * hidden)
        self.out = nn.Linear(hidden, 2 * n_out)

    def forward(self, c: Tensor) -> tuple[Tensor, Tensor]:
        a, g = self.gate(c).chunk(2, dim=-1)
        mu, log_sigma = self.out(torch.tanh(a) * torch.sigmoid(g)).chunk(2, dim=-1)
        return mu, log_sigma


class LayeredGaussian(Distribution):
    """p(z | c) = p(z^L | c) prod_{l < L} p(z^l | c, z^{l+1}, ..., z^L), each factor a diagonal Gaussian from a D
    block; z is the concatenation (z^1, ..., z^L). The top layer is drawn first, as in the reference code."""

    arg_constraints: dict = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, blocks: Sequence[DBlock], context: Tensor, latent_size: int) -> None:
        self.blocks, self.context, self.latent_size = blocks, context, latent_size
        super().__init__(context.shape[:-1], torch.Size([len(blocks) * latent_size]), validate_args=False)

    def _walk(self, z: Tensor | None = None, means: bool = False) -> tuple[Tensor, Tensor]:
        """Down the layers from the top, each factor conditioned on c and the layers above it, which are taken
        from ``z`` when given, else drawn (or set to their means). Returns (z, log p(z | c))."""
        given = None if z is None else z.split(self.latent_size, dim=-1)
        c = self.context if given is None else self.context.expand(*given[0].shape[:-1], -1)
        above: list[Tensor] = []  # z^{l+1}, ..., z^L
        log_p = torch.zeros((), device=c.device)
        for level in reversed(range(len(self.blocks))):
            mu, log_sigma = self.blocks[level](torch.cat([c, *above], dim=-1))
            factor = DiagonalGaussian(mu, 2 * log_sigma)
            z_level = given[level] if given is not None else mu if means else factor.rsample()
            log_p = log_p + factor.log_prob(z_level)
            above.insert(0, z_level)
        return torch.cat(above, dim=-1), log_p

    def rsample(self, sample_shape: torch.Size | Sequence[int] = ()) -> Tensor:
        if len(sample_shape):
            return LayeredGaussian(self.blocks, self.context.expand(*sample_shape, *self.context.shape),
                                   self.latent_size).rsample()
        return self._walk()[0]

    def sample(self, sample_shape: torch.Size | Sequence[int] = ()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        return self._walk(value)[1]

    @property
    def mean(self) -> Tensor:
        """The layers' means, each at the means of the layers above (the mode of each factor, not E[z])."""
        return self._walk(means=True)[0]


class ConditionalGaussian(nn.Module):
    """c -> LayeredGaussian p(z | c): one D block per layer; a lower layer also sees the layers above it."""

    def __init__(self, n_context: int, hidden: int, latent_size: int, layers: int) -> None:
        super().__init__()
        self.latent_size = latent_size
        self.blocks = nn.ModuleList(DBlock(n_context + (layers - 1 - level) * latent_size, hidden, latent_size)
                                    for level in range(layers))

    def forward(self, context: Tensor) -> LayeredGaussian:
        return LayeredGaussian(list(self.blocks), context, self.latent_size)


@register("tdvae", TDVAEConfig)
class TDVAE(Model):
    """TD-VAE (Gregor et al. 2019): belief LSTM, p_B, jumpy p_T, smoothing p_S, decoder p_D; two-layer states."""

    abilities = frozenset({Ability.FIGURES})
    monitor = ("J", "max")

    def __init__(self, config: TDVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.scheduled("kl_weight", config.kl_weight)
        self.frame_shape = tuple(config.input_shape)
        likelihood = LIKELIHOODS[config.likelihood]
        self._likelihood, n_params = likelihood.build, likelihood.n_params
        n_x, z, d = math.prod(self.frame_shape), config.layers * config.latent_size, config.max_jump
        n_jump = d if config.jump_input else 0
        self.phi = MLP([n_x, *config.preprocess], "relu", final_act=True) if config.preprocess else nn.Identity()
        self.lstm = nn.LSTM(config.preprocess[-1] if config.preprocess else n_x, config.belief_size,
                            batch_first=True)
        self.p_B = ConditionalGaussian(config.belief_size, config.hidden, config.latent_size, config.layers)
        self.p_T = ConditionalGaussian(z + n_jump, config.hidden, config.latent_size, config.layers)
        self.p_S = ConditionalGaussian(z + 2 * config.belief_size + n_jump, config.hidden, config.latent_size,
                                       config.layers)
        self._param_shape = (n_params * self.frame_shape[0], *self.frame_shape[1:])
        if config.decoder == "conv":
            if len(self.frame_shape) != 3:
                raise ValueError(f"decoder=conv draws image frames (C, H, W), not frames of shape {self.frame_shape}")
            self.decoder = ConvDecoder(z, self._param_shape, config.decoder_channels, config.decoder_hidden[-1])
        else:  # the flat output shaped as the frame's parameters (Unflatten has no weights: checkpoints unchanged)
            self.decoder = MLP([z, *config.decoder_hidden, n_params * n_x], "tanh").append(
                nn.Unflatten(-1, self._param_shape))

    # -- the four distributions -------------------------------------------------------------------------
    def belief(self, x: Tensor) -> Tensor:
        """b_t = LSTM(b_{t-1}, phi(x_t)) for every t: [B, T, *frame] -> [B, T, belief_size]."""
        return self.lstm(self.phi(x.flatten(2)))[0]

    def p_D(self, z: Tensor) -> Distribution:
        """p_D(x | z) over one frame, for z of any leading shape."""
        return self._likelihood(fold(self.decoder, z, 1).float(), len(self.frame_shape))

    def _jump(self, delta: Tensor | int, like: Tensor) -> list[Tensor]:
        """The one-hot jump that p_T and p_S are given (nothing without ``jump_input``)."""
        if not self.config.jump_input:
            return []
        delta = torch.as_tensor(delta, device=like.device).expand(like.shape[:-1])
        return [F.one_hot(delta - 1, self.config.max_jump).to(like.dtype)]

    # -- objective --------------------------------------------------------------------------------------
    def sample_times(self, n: int, seq_len: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
        """n pairs (t1, t2): delta = t2 - t1 uniform on 1..D, then t1 uniform on 0..T-1-delta (torch's RNG)."""
        d = self.config.max_jump
        if seq_len <= d:
            raise ValueError(f"sequences of {seq_len} frames are too short for max_jump={d} (need more than D)")
        delta = torch.randint(1, d + 1, (n,), device=device)
        t1 = (torch.rand(n, device=device) * (seq_len - delta)).long().clamp_max(seq_len - 1 - delta)
        return t1, t1 + delta

    def objective(self, batch: Batch) -> dict[str, Tensor]:
        """The terms of J_{t1,t2} (eq. 8) at one draw of (t1, t2) and of the states per pair: each [B * pairs]."""
        x = batch["x"]
        b = self.belief(x)
        rows = torch.arange(x.shape[0], device=x.device).repeat_interleave(self.config.pairs)
        t1, t2 = self.sample_times(len(rows), x.shape[1], x.device)
        b1, b2 = b[rows, t1], b[rows, t2]
        jump = self._jump(t2 - t1, b1)

        p_B2 = self.p_B(b2)
        z2 = p_B2.rsample()  # z_t2 ~ p_B(z_t2 | b_t2)
        p_S = self.p_S(torch.cat([z2, b1, b2, *jump], -1))
        z1 = p_S.rsample()  # z_t1 ~ p_S(z_t1 | z_t2, b_t1, b_t2)
        p_T = self.p_T(torch.cat([z1, *jump], -1))
        terms = {"log_pD": self.p_D(z2).log_prob(x[rows, t2]), "log_pB_t1": self.p_B(b1).log_prob(z1),
                 "log_pT": p_T.log_prob(z2), "log_pB_t2": p_B2.log_prob(z2), "log_pS": p_S.log_prob(z1)}
        terms["J"] = (terms["log_pD"] + terms["log_pB_t1"] + terms["log_pT"] - terms["log_pB_t2"]
                      - terms["log_pS"])
        return terms

    def loss(self, batch: Batch) -> LossOutput:
        """-J averaged over the batch; every term of J is logged on its own (per sequence, over its pairs).

        J = log p_D - KL_t1 - KL_t2 with the one-sample KL estimates KL_t1 = log p_S - log p_B(z_t1|b_t1) and
        KL_t2 = log p_B(z_t2|b_t2) - log p_T; with a ``kl_weight`` beta < 1 (a warm-up, Sonderby et al. 2016) the
        loss is -(log p_D - beta (KL_t1 + KL_t2)), while the logged J stays the true objective."""
        t = {k: v.view(-1, self.config.pairs).mean(1) for k, v in self.objective(batch).items()}
        beta = self.kl_weight
        kl = (t["log_pS"] - t["log_pB_t1"]) + (t["log_pB_t2"] - t["log_pT"])
        loss = -(t["log_pD"] - beta * kl).mean()  # = -J at beta = 1
        return LossOutput(loss=loss, terms={k: v.detach() for k, v in t.items()})

    # -- use ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, x_context: Tensor, horizon: int, jump: int = 1, n_samples: int = 1) -> Tensor:
        """Predicted frames after the context [B, T_c, *frame]: z ~ p_B(z | b_{T_c}) at the last context frame, then
        z <- z' ~ p_T(z' | z) ``horizon // jump`` times, each a jump of ``jump`` frames, decoded to the mean of p_D
        (probabilities for a Bernoulli). Returns [n_samples, B, horizon // jump, *frame], the frames at
        T_c - 1 + jump, T_c - 1 + 2 jump, ... Horizon 0 returns [n_samples, B, 1, *frame], the reconstruction of
        the last context frame from z ~ p_B(z | b_{T_c})."""
        d = self.config.max_jump
        if not 1 <= jump or (self.config.jump_input and jump > d):
            raise ValueError(f"jump={jump}: this model was trained on jumps 1..{d}")
        if horizon < 0 or (horizon and horizon < jump):
            raise ValueError(f"horizon={horizon} holds no jump of {jump} frames")
        z = self.p_B(self.belief(x_context)[:, -1]).sample((n_samples,))
        if horizon == 0:
            return self.p_D(z).mean.unsqueeze(2)
        frames = []
        for _ in range(horizon // jump):
            z = self.p_T(torch.cat([z, *self._jump(jump, z)], -1)).sample()
            frames.append(self.p_D(z).mean)
        return torch.stack(frames, 2)

    @torch.no_grad()
    def figures(self, batch: Batch) -> dict[str, Figure]:
        """Rollouts from the first half of each sequence: true frames above three sampled rollouts (images), or
        the observed and true positions beside rollouts of one sequence (vectors)."""
        x = batch["x"][:4]
        context = x.shape[1] // 2
        horizon = x.shape[1] - context
        figures: dict[str, Figure] = {}
        jumps = [1] + ([self.config.max_jump] if self.config.jump_input and 1 < self.config.max_jump <= horizon
                       else [])
        for jump in jumps:
            name = "rollout" if jump == 1 else f"rollout_jump{jump}"
            pred = self.rollout(x[:, :context], horizon, jump, n_samples=3)
            if len(self.frame_shape) == 3:
                figures[name] = rollout_grid(x, context, pred, jump)
            else:
                state = batch.get("state")
                figures[name] = rollout_curve(x[0, :, 0], context, pred[:, 0, :, 0], jump,
                                              None if state is None else state[0, :, 0])
        return figures


def rollout_grid(x: Tensor, context: int, pred: Tensor, jump: int = 1) -> ImageGrid:
    """Per sequence, a row of its true frames from the last context frame on, then one row per sampled rollout
    (the last context frame, then the predicted frames where a jump lands, blank between)."""
    s, b, steps = pred.shape[:3]
    truth = x[:, context - 1 : context + steps * jump]
    rows = []
    for i in range(b):
        rows.append(truth[i])
        for k in range(s):
            row = torch.ones_like(truth[i])
            row[0] = x[i, context - 1]
            row[jump :: jump] = pred[k, i]
            rows.append(row)
    return ImageGrid(torch.cat(rows), nrow=truth.shape[1])


def rollout_curve(observed: Tensor, context: int, pred: Tensor, jump: int = 1, truth: Tensor | None = None) -> Curve:
    """One sequence's observed values (and true state where known) over time, and sampled rollouts [S, steps]
    drawn from the last context frame, at the frames their jumps land on (NaN elsewhere)."""
    t_len = observed.shape[0]
    series = {"observed": observed.tolist()}
    if truth is not None:
        series["true position"] = truth.tolist()
    for k, p in enumerate(pred):
        values = [math.nan] * t_len
        for j, v in enumerate(p.tolist()):
            if context - 1 + (j + 1) * jump < t_len:
                values[context - 1 + (j + 1) * jump] = v
        series[f"rollout {k}"] = values
    return Curve(list(range(t_len)), series, xlabel=f"frame (context: 0..{context - 1})", ylabel="position")
