"""pro-VLAE (Li, Murkute, Gyawali & Wang, ICLR 2020, "Progressive Learning and Disentanglement of Hierarchical
Representations") and, with ``progressive: false``, the VLAE it grows (Zhao, Song & Ermon 2017): a variational
ladder autoencoder whose levels are learnt one at a time, from the most abstract (top) down.

Model (the paper's Sec. 3, the authors' ``model_ladder_progress.py``). Levels l = 1 (next to x) .. L (the top):

    h_l = f_l(h_{l-1}),  h_0 = x                                  bottom-up features, conv 4x4 s2 each
    q(z_l|x) = N(mu_l(h_l), diag sigma_l^2(h_l))                   conv 4x4 s2 + fc 256 + linear, per level
    g_L = t_L(z_L),  g_l = t_l([u_l(z_l), g_{l+1}])               top-down: z_L through fc to a 4x4 map; each
    p(x|z_1..z_L) = p(x|g_1)                                      lower z_l through fc to a map of its level's
                                                                  size, concatenated with g_{l+1}, one deconv

with p(z_l) = N(0, I) for every level: q factorises over the levels given x and the prior is a standard normal
over all L * d latents, so the model is a single-latent VAE with a structured decoder (``LatentVariableModel``:
importance weights, samples, traversals as for any VAE). Every layer but the last is (conv | dense) -> ELU ->
batch norm, the authors' order; 32 channels, fc 256; p(x|.) is the data's likelihood (authors: Bernoulli
cross-entropy on every set; vaekit refuses a Bernoulli on 8-bit 3D Shapes, so that recipe uses the discretized
logistic, which weighs the KL against a different reconstruction scale).

Objective at progressive step s, levels A_s = {L - s, .., L} active (the top first, one more level per step):

    loss = -E_q[log p(x|z_{A_s})] + beta sum_{l in A_s} KL(q(z_l|x) || p(z_l))
                                  + gamma sum_{l not in A_s} KL(q(z_l|x) || N(0, I))

the beta-VLAE objective on the active levels (beta = 8 on 3D Shapes) and the "pre-trained KL" penalty (gamma =
``pretrain_kl``, authors 0.5): levels not yet in use are kept at the prior, so each enters the model carrying
little information. Fade-in: a level that becomes active at step t_l enters with

    alpha_l(t) = min(1, (t - t_l) / T_fade)   (authors: T_fade = 5,000 iterations)

multiplying both what the encoder reads for it and its decoder contribution (u_l(z_l) -> alpha_l u_l(z_l)); an
inactive level's decoder contribution is multiplied by 0 (its encoder is trained by the penalty above), so a
fading level at alpha = 0 changes nothing the decoder draws. The encoder's gain therefore drops from 1
(inactive) to 0 at t_l and ramps back to 1: q(z_l|x) re-enters from the prior.

Where the encoder's gain goes matters. The authors multiply h_l, the ladder's input; their "batch norm" is a
fixed affine map (below), so the gain reaches q. Here the ladder normalises (Conv -> ELU -> BatchNorm), and
batch norm divides a gain on its input out: a level would enter at full strength one step after t_l. So the gain
multiplies the ladder's last, unnormalised output, the posterior's natural parameters (mu_l, log sigma_l^2)
-> alpha_l (mu_l, log sigma_l^2): at alpha = 0, q(z_l|x) = N(0, I), the prior, for every x, and it moves away
from it in proportion to alpha. The
logged ``elbo`` is the bound of the model as it is, rec - sum over all levels of KL_l (an inactive level's z is
unused by the decoder, so its KL only loosens the bound), the monitored term; ``kl_1`` .. ``kl_L`` per level,
``alpha_1`` .. ``alpha_L`` and ``levels_active`` show the schedule.

The schedule state (which levels are active, each alpha) lives in buffers that ``on_train_step(step, epoch)``
sets from the config, so checkpoints, ``vaekit.load`` and ``--resume`` carry it; a progressive run is one vaekit
run (the authors run ``main.py`` once per progressive step, restarting the iteration count, so their fade-in
counts from each step's start: the same as here).

The authors' code differs from the paper in ways worth knowing: ``tf.layers.batch_normalization`` is called
without ``training=True``, so their "batch norm" normalises by the initial moving statistics (0, 1) and is a
learnt per-channel affine map; vaekit's is batch norm. Their 3D Shapes script runs without fade-in (no
``-fadein`` flag), their dSprites and CelebA scripts with it.

Representation (disentanglement metrics): the posterior means of all levels, concatenated z_1 first ([B, L*d]).
Traversals: latent j of the code is latent j mod d of level z_{j // d + 1}; ``latent_names`` labels them so.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from annotated_types import Ge
from torch import Tensor, nn
from torch.distributions import Distribution

from vaekit.core.likelihoods import LIKELIHOODS, diag_gaussian, kl_per_dimension
from vaekit.core.nets import ACTIVATIONS, activation, fold
from vaekit.models.base import Batch, LatentVariableModel, LossOutput
from vaekit.models.registry import register


@dataclass
class ProVLAEConfig:
    """pro-VLAE with the authors' 3D Shapes settings as defaults (beta 8, 3 latents per level, gamma 0.5, fade-in
    over 5,000 steps, a new level every 15 epochs of 4,800 batches of 100 = 72,000 steps)."""

    input_shape: tuple[int, int, int] = (1, 64, 64)  # filled from the data set when a recipe leaves it out
    levels: Annotated[int, Ge(1)] = 3  # L
    latents_per_level: Annotated[int, Ge(1)] = 3  # d, the size of each z_l
    channels: Annotated[int, Ge(1)] = 32
    fc: Annotated[int, Ge(1)] = 256
    activation: str = "elu"
    batch_norm: bool = True
    likelihood: Literal["bernoulli", "gaussian", "discretized_logistic"] = "bernoulli"
    beta: Annotated[float, Ge(0)] = 8.0  # on the KL of the active levels
    pretrain_kl: Annotated[float, Ge(0)] = 0.5  # gamma, on the KL of the levels not yet active
    progressive: bool = True  # false: the VLAE, every level active from step 0, no fade-in
    progressive_steps: tuple[Annotated[int, Ge(1)], ...] = ()  # steps at which levels L-1, L-2, .., 1 become active
    steps_per_level: Annotated[int, Ge(1)] = 72_000  # used when progressive_steps is empty: t_l = (L - l) * this
    fade_in_length: Annotated[int, Ge(0)] = 5000  # T_fade in steps; 0: a new level enters at full strength

    def __post_init__(self) -> None:
        if len(self.input_shape) != 3:
            raise ValueError(f"input_shape must be (C, H, W), got {self.input_shape}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of: {', '.join(ACTIVATIONS)}")
        if self.progressive_steps:
            if len(self.progressive_steps) != self.levels - 1:
                raise ValueError(f"progressive_steps needs one step per level after the top: {self.levels - 1}, got "
                                 f"{len(self.progressive_steps)}")
            if any(b <= a for a, b in zip(self.progressive_steps, self.progressive_steps[1:], strict=False)):
                raise ValueError(f"progressive_steps must increase, got {list(self.progressive_steps)}")

    def level_starts(self) -> list[int]:
        """t_l, the step at which level l becomes active, for l = 1 .. L (list index l - 1): 0 for the top."""
        if not self.progressive:
            return [0] * self.levels
        steps = self.progressive_steps or tuple(k * self.steps_per_level for k in range(1, self.levels))
        return [*reversed(steps), 0]


def _layer(layer: nn.Module, act: str, norm: nn.Module) -> nn.Sequential:
    """The authors' unit: layer -> activation -> batch norm."""
    return nn.Sequential(layer, activation(act), norm)


@register("provlae", ProVLAEConfig)
class ProVLAE(LatentVariableModel):
    """pro-VLAE (Li et al. 2020): a variational ladder autoencoder learnt progressively, top level first."""

    def __init__(self, config: ProVLAEConfig) -> None:
        super().__init__()
        self.config = config
        self.input_shape = tuple(config.input_shape)
        c, h, w = self.input_shape
        n_levels, d, ch, fc = config.levels, config.latents_per_level, config.channels, config.fc
        act = config.activation
        self.n_levels, self.latents_per_level, self.latent_dim = n_levels, d, n_levels * d
        likelihood = LIKELIHOODS[config.likelihood]
        self._likelihood = likelihood.build
        bn2 = (lambda n: nn.BatchNorm2d(n)) if config.batch_norm else (lambda n: nn.Identity())
        bn1 = (lambda n: nn.BatchNorm1d(n)) if config.batch_norm else (lambda n: nn.Identity())
        # Level l (index l - 1) reads h_l at (H, W) / 2^l and its ladder conv halves that again; the decoder's map
        # for z_l has that last size, (H, W) / 2^(l + 1), so concatenation with g_{l+1} lines up. Sides that are
        # no multiple of 2^(L + 1) (28 for L = 3) are zero-padded at the bottom and right up to one, and the
        # output cropped back (p(x|z) scores only the real pixels).
        side = 2 ** (n_levels + 1)
        self.padded = (side * math.ceil(h / side), side * math.ceil(w / side))
        sizes = [(self.padded[0] // 2 ** (i + 2), self.padded[1] // 2 ** (i + 2)) for i in range(n_levels)]
        self.stages = nn.ModuleList(_layer(nn.Conv2d(c if i == 0 else ch, ch, 4, 2, 1), act, bn2(ch))
                                    for i in range(n_levels))  # h_l = f_l(h_{l-1})
        self.ladders = nn.ModuleList(nn.Sequential(  # (mu_l, log sigma_l^2) from h_l
            _layer(nn.Conv2d(ch, ch, 4, 2, 1), act, bn2(ch)), nn.Flatten(),
            _layer(nn.Linear(ch * hs * ws, fc), act, bn1(fc)), nn.Linear(fc, 2 * d)) for hs, ws in sizes)
        self.z_maps = nn.ModuleList(nn.Sequential(  # u_l(z_l): fc, fc to the level's feature map
            _layer(nn.Linear(d, fc), act, bn1(fc)), _layer(nn.Linear(fc, ch * hs * ws), act, bn1(ch * hs * ws)),
            nn.Unflatten(1, (ch, hs, ws))) for hs, ws in sizes)
        self.ups = nn.ModuleList(_layer(nn.ConvTranspose2d(ch if i == n_levels - 1 else 2 * ch, ch, 4, 2, 1), act,
                                        bn2(ch)) for i in range(n_levels))  # t_l: doubles H and W
        self.out = nn.ConvTranspose2d(ch, likelihood.n_params * c, 4, 2, 1)  # p(x|g_1)'s parameters, no activation
        # The schedule's state, per level (index l - 1): carried by checkpoints and weights.
        self._starts = config.level_starts()
        self.register_buffer("active", torch.zeros(n_levels))
        self.register_buffer("alpha", torch.zeros(n_levels))
        self.on_train_step(0, 0)

    # -- the schedule --------------------------------------------------------------------------------------------
    def on_train_step(self, step: int, epoch: int) -> None:
        """Level l is active from t_l on; alpha_l ramps 0 -> 1 over ``fade_in_length`` steps from t_l (1 for the
        levels present from step 0, 0 while inactive)."""
        super().on_train_step(step, epoch)
        fade = self.config.fade_in_length
        active = [float(step >= start) for start in self._starts]
        alpha = [0.0 if step < start else 1.0 if start == 0 or fade == 0 else min(1.0, (step - start) / fade)
                 for start in self._starts]
        # one copy per buffer a step (not one small write per level), whatever device the model is on
        self.active.copy_(torch.tensor(active))
        self.alpha.copy_(torch.tensor(alpha))

    def check_budget(self, total_steps: int) -> None:
        """A fade-in longer than the whole training is refused; a run that stops (``trainer.max_steps``) before
        its last level is in is allowed, with a warning: it may be resumed with a larger budget."""
        if self.config.progressive and self.config.fade_in_length > total_steps:
            raise ValueError(f"model.fade_in_length={self.config.fade_in_length} is longer than the whole training "
                             f"({total_steps} steps)")
        whole = self.monitor_from_step()
        if whole > total_steps:
            warnings.warn(f"pro-VLAE: the last level is fully in at step {whole}, after this run stops at step "
                          f"{total_steps}; resume it with a larger budget to grow the whole ladder", stacklevel=2)

    def monitor_from_step(self) -> int:
        """The best weights are chosen once every level is in at full strength: before that the ELBO belongs to a
        smaller model."""
        last = max(self._starts)
        return last + self.config.fade_in_length if last else 0

    # -- distributions -------------------------------------------------------------------------------------------
    def encode(self, x: Tensor) -> Distribution:
        """q(z|x) = prod_l q(z_l|x), one diagonal Gaussian over the concatenated code [z_1, .., z_L]."""
        gain = torch.where(self.active > 0, self.alpha, torch.ones_like(self.alpha))  # fade-in of q(z_l|x)
        ph, pw = self.padded
        h, params = F.pad(x, (0, pw - x.shape[-1], 0, ph - x.shape[-2])), []
        for stage, ladder, g in zip(self.stages, self.ladders, gain, strict=True):
            h = stage(h)
            params.append(ladder(h) * g)  # after the ladder's batch norms, which would divide a gain out
        # Distribution parameters in float32: under bf16 autocast the layers run in bf16, the ELBO's terms don't.
        mean, log_var = torch.stack(params, dim=-2).float().chunk(2, dim=-1)  # [B, L, d] each
        return diag_gaussian(mean.flatten(-2), log_var.flatten(-2))

    def decoder_params(self, z: Tensor) -> Tensor:
        """p(x|z)'s raw parameters for codes [N, L*d]: top-down, each level's map scaled by its alpha."""
        zs = z.unflatten(-1, (self.n_levels, self.latents_per_level))
        g = None
        for i in reversed(range(self.n_levels)):
            u = self.z_maps[i](zs[:, i]) * self.alpha[i]  # 0 while inactive, alpha_l while fading in
            g = self.ups[i](u if g is None else torch.cat([u, g], dim=1))
        return self.out(g)[..., : self.input_shape[1], : self.input_shape[2]]

    def decode(self, z: Tensor) -> Distribution:
        return self._likelihood(fold(self.decoder_params, z, 1).float(), 3)  # k x B folded for the conv layers

    # -- objective -----------------------------------------------------------------------------------------------
    def kl_levels(self, q: Distribution) -> Tensor:
        """KL(q(z_l|x) || N(0, I)) per level, [B, L]."""
        return kl_per_dimension(q).unflatten(-1, (self.n_levels, self.latents_per_level)).sum(-1)

    def loss(self, batch: Batch) -> LossOutput:
        """-E_q[log p(x|z)] + beta sum_active KL_l + gamma sum_inactive KL_l; the ELBO is logged as it is."""
        x = batch["x"]
        q = self.encode(x)
        rec = self.decode(q.rsample()).log_prob(x)
        kls = self.kl_levels(q)
        cfg = self.config
        weight = cfg.beta * self.active + cfg.pretrain_kl * (1 - self.active)  # [L], no host sync
        kl = kls.sum(-1)
        terms = {"elbo": (rec - kl).detach(), "rec": rec.detach(), "kl": kl.detach()}
        terms.update({f"kl_{i}": kls[:, i - 1].detach() for i in range(1, self.n_levels + 1)})
        terms.update({f"alpha_{i}": self.alpha[i - 1].expand_as(rec) for i in range(1, self.n_levels + 1)})
        terms["levels_active"] = self.active.sum().expand_as(rec)
        return LossOutput(loss=-(rec - (kls * weight).sum(-1)).mean(), terms=terms)

    # -- use -----------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def latent_means(self, batch: Batch) -> dict[str, Tensor]:
        """{"z1": E_q[z_1], .., "zL": E_q[z_L]}: active units per level."""
        mean = self.encode(batch["x"]).mean.unflatten(-1, (self.n_levels, self.latents_per_level))
        return {f"z{i + 1}": mean[:, i] for i in range(self.n_levels)}

    def latent_names(self) -> list[str]:
        """Names of the code's latents in order, by level: "z1.0" .. "zL.(d-1)" (z1 next to x, zL the top)."""
        return [f"z{i + 1}.{j}" for i in range(self.n_levels) for j in range(self.latents_per_level)]
