"""A noisy harmonic oscillator observed through noisy positions: the 1D sequences of TD-VAE's jumpy-prediction
experiment (Gregor et al. 2019).

Each sequence has its own angular frequency omega (radians per frame), amplitude and phase. The state
s_t = (position p_t, velocity v_t) turns by the exact rotation of a unit-mass oscillator over one frame, and the
velocity takes a Gaussian kick each frame (process noise, so the future is uncertain and a belief has to say how
much); the model sees only the position, with Gaussian observation noise:

    p_{t+1} = p_t cos(omega) + (v_t / omega) sin(omega)
    v_{t+1} = -p_t omega sin(omega) + v_t cos(omega) + sigma_v eps_t,     eps_t ~ N(0, 1)
    x_t     = p_t + sigma_x eta_t,                                          eta_t ~ N(0, 1)

The paper names the set-up but its exact constants were not available here, so these are chosen (and
configurable): omega in [0.4, 0.6] (periods of 10-16 frames, so 20 frames hold 1.25-2 periods), amplitude in
[0.5, 1], sigma_v = 0.02, sigma_x = 0.1. ``process_noise=0 obs_noise=0`` gives the noise-free oscillator.

Every sequence is drawn once from ``data.seed`` (train, validation and test from their own streams), so the set
is a function of its config; batches carry the true state, so predictions can be scored against the
oscillator rather than against its noisy observations:

    {"x": [B, T, 1] observed positions, "state": [B, T, 2] true (position, velocity),
     "omega": [B], "obs_noise": [B], "process_noise": [B]}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import torch
from annotated_types import Ge, Gt
from torch import Tensor

from vaekit.data.batches import BatchServing, batch_seed, index_on
from vaekit.data.registry import DataConfig, Splits, register_data


@dataclass
class OscillatorConfig(DataConfig):
    name: str = "oscillator"
    batch_size: Annotated[int, Ge(1)] = 64
    seq_len: Annotated[int, Ge(2)] = 20
    n_train: Annotated[int, Ge(1)] = 20000
    n_val: Annotated[int, Ge(0)] = 1000
    n_test: Annotated[int, Ge(1)] = 1000
    omega_min: Annotated[float, Gt(0)] = 0.4  # radians per frame
    omega_max: Annotated[float, Gt(0)] = 0.6
    amplitude_min: Annotated[float, Ge(0)] = 0.5
    amplitude_max: Annotated[float, Ge(0)] = 1.0
    process_noise: Annotated[float, Ge(0)] = 0.02  # sigma_v: std of the velocity kick per frame
    obs_noise: Annotated[float, Ge(0)] = 0.1  # sigma_x: std of the observed position's noise
    seed: int = 0  # the generating stream; train / val / test draw from (seed, 0 / 1 / 2)

    def __post_init__(self) -> None:
        if self.omega_max < self.omega_min or self.amplitude_max < self.amplitude_min:
            raise ValueError("omega_max and amplitude_max must be >= their minimum")


def simulate(n: int, cfg: OscillatorConfig, generator: torch.Generator) -> dict[str, Tensor]:
    """``n`` sequences of the oscillator above, drawn from ``generator`` (float32 tensors, see the module doc)."""
    def uniform(lo: float, hi: float) -> Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)

    omega = uniform(cfg.omega_min, cfg.omega_max)
    amp, phase = uniform(cfg.amplitude_min, cfg.amplitude_max), uniform(0.0, 2 * math.pi)
    kicks = cfg.process_noise * torch.randn(n, cfg.seq_len, generator=generator, dtype=torch.float64)
    eta = torch.randn(n, cfg.seq_len, generator=generator, dtype=torch.float64)
    p, v = amp * torch.cos(phase), -amp * omega * torch.sin(phase)
    cos, sin = torch.cos(omega), torch.sin(omega)
    states = []
    for t in range(cfg.seq_len):
        states.append(torch.stack([p, v], -1))
        p, v = p * cos + v / omega * sin, -p * omega * sin + v * cos + kicks[:, t]  # exact rotation, then the kick
    state = torch.stack(states, 1)  # [n, T, 2], float64 while integrating
    x = state[..., :1] + cfg.obs_noise * eta.unsqueeze(-1)
    full = lambda value: torch.full((n,), value, dtype=torch.float32)
    return {"x": x.float(), "state": state.float(), "omega": omega.float(), "obs_noise": full(cfg.obs_noise),
            "process_noise": full(cfg.process_noise)}


class SequenceExamples(BatchServing):
    """Fixed examples held as tensors of equal length (``x`` and whatever describes it), served by index slices."""

    def __init__(self, tensors: dict[str, Tensor]) -> None:
        lengths = {len(v) for v in tensors.values()}
        if "x" not in tensors or len(lengths) != 1:
            raise ValueError("sequence examples need an 'x' tensor and the same number of rows in every tensor")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors["x"])

    def to(self, device: torch.device | str) -> SequenceExamples:
        """The same sequences held on ``device``: batches are index slices there (no draws to make)."""
        return SequenceExamples({k: v.to(device) for k, v in self.tensors.items()})

    def __getitems__(self, idx: list[int]) -> dict[str, Tensor]:
        index = index_on(idx, self.tensors["x"].device)
        return {k: v.index_select(0, index) for k, v in self.tensors.items()}

    def subset(self, n: int) -> SequenceExamples:
        return SequenceExamples({k: v[:n] for k, v in self.tensors.items()})


@register_data("oscillator", OscillatorConfig)
def build_oscillator(cfg: OscillatorConfig) -> Splits:
    """Noisy harmonic oscillator, positions observed with noise, T frames (as in TD-VAE); true state in batch."""
    def split(n: int, part: int) -> SequenceExamples:
        g = torch.Generator().manual_seed(batch_seed(cfg.seed, part))
        return SequenceExamples(simulate(n, cfg, g))

    return Splits(train=split(cfg.n_train, 0), val=split(cfg.n_val, 1), test=split(cfg.n_test, 2),
                  observation="continuous",  # real values: a Gaussian density is the likelihood
                  defaults={"input_shape": (1,), "likelihood": "gaussian"})
