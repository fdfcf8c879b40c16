"""Active units (Burda et al. 2016, section 5.2): a latent dimension u is active if

    A_u = Cov_x( E_{u ~ q(u|x)}[u] ) > 0.01,

i.e. its posterior mean moves with the input. Collapsed units copy the prior whatever x is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

Representation = Callable[[Any], dict[str, Tensor]]  # a batch mapping -> posterior means per latent layer


@torch.no_grad()
def unit_variances(represent: Representation, batches: Iterable[Any]) -> dict[str, Tensor]:
    """Var over the data of each unit's posterior mean, per latent layer (one pass, float64 sums)."""
    sums: dict[str, Tensor] = {}
    squares: dict[str, Tensor] = {}
    n = 0
    for batch in batches:
        for name, mean in represent(batch).items():
            m = mean.double()
            sums[name] = sums.get(name, 0) + m.sum(0)
            squares[name] = squares.get(name, 0) + (m * m).sum(0)
        n += m.shape[0]
    return {k: squares[k] / n - (sums[k] / n) ** 2 for k in sums}


def active_units(represent: Representation, batches: Iterable[Any], threshold: float = 1e-2) -> dict[str, int]:
    """Number of active units per latent layer, with Burda et al.'s threshold 0.01."""
    return {k: int((v > threshold).sum()) for k, v in unit_variances(represent, batches).items()}
