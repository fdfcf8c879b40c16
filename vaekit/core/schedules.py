"""Values that change over training: KL warm-up beta(t), capacity C(t), a fade-in alpha(t), an active level.

A schedule is a small config dataclass (it sits in the model's config) with ``value(step, epoch)``. The model
keeps the current value in a buffer, so checkpoints, ``vaekit.load`` and a resume carry it; the training
module calls ``model.on_train_step(step, epoch)`` before every step and knows nothing else about it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from annotated_types import Ge


@dataclass
class Ramp:
    """Linear from ``start`` to ``end`` over ``length`` steps (or epochs) beginning at ``begin``; constant
    before and after. ``Ramp()`` is the constant 1; ``Ramp(0, 1, length=10, unit="epoch")`` is Sonderby et al.'s
    KL warm-up over 10 epochs."""

    start: float = 1.0
    end: float = 1.0
    begin: Annotated[int, Ge(0)] = 0
    length: Annotated[int, Ge(0)] = 0
    unit: Literal["step", "epoch"] = "step"

    @property
    def constant(self) -> bool:
        return self.start == self.end

    def value(self, step: int, epoch: int) -> float:
        t = step if self.unit == "step" else epoch
        if t < self.begin:
            return self.start
        if t >= self.begin + self.length:
            return self.end
        return self.start + (self.end - self.start) * (t - self.begin) / self.length


def burda_stage(epoch: int) -> int:
    """Burda et al. (2016), section 5: training runs in stages i = 0, 1, 2, ..., stage i for 3^i passes over the
    data, so epochs [(3^i - 1) / 2, (3^(i+1) - 1) / 2) (0-based) are stage i; eight stages make 3,280 epochs."""
    i, end = 0, 1
    while epoch >= end:
        i += 1
        end += 3**i
    return i


def burda_lr_factor(epoch: int) -> float:
    """The learning rate of stage i relative to the first: 10^(-i/7) (Burda et al.: 0.001 * 10^(-i/7))."""
    return 10.0 ** (-burda_stage(epoch) / 7)
