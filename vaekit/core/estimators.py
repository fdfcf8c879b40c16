"""The importance-weighted bound, written once for every model (Burda, Grosse & Salakhutdinov 2016).

    L_k(x) = E_{z_1..z_k ~ q(z|x)} [ log (1/k) sum_i p(x, z_i) / q(z_i|x) ]          (Burda et al., eq. 8)

L_1 is the ELBO, L_k <= L_{k+1} <= log p(x), and L_k -> log p(x) as k -> infinity, so the test NLL is
reported as -L_5000. A model only supplies ``log_importance_weights(batch, k)``; this module does the rest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

import torch
from torch import Tensor


class ImportanceWeighted(Protocol):
    def log_importance_weights(self, batch: Mapping[str, Tensor], k: int) -> Tensor: ...


def log_mean_exp(log_w: Tensor, dim: int = 0) -> Tensor:
    """log (1/k) sum_i exp(log_w_i), stable for any magnitude (the max is factored out by logsumexp)."""
    return torch.logsumexp(log_w, dim=dim) - math.log(log_w.shape[dim])


def iwae_bound(log_w: Tensor) -> Tensor:
    """L_k per example from log-weights of shape [k, B]."""
    return log_mean_exp(log_w, dim=0)


@torch.no_grad()
def importance_weighted_bound(
    model: ImportanceWeighted, batch: Mapping[str, Tensor], k: int, chunk_size: int = 50
) -> Tensor:
    """L_k(x) for each example of ``batch`` with k importance samples, drawn ``chunk_size`` at a time.

    Memory is bounded by one chunk (chunk_size x B decoder outputs) for any k: the running log-sum-exp
    combines chunks exactly. Returns one value per example; -mean is the NLL estimate in nats.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    total: Tensor | None = None
    remaining = k
    while remaining > 0:
        n = min(chunk_size, remaining)
        log_w = model.log_importance_weights(batch, n)
        # Half-precision weights (mixed precision) are summed in float32; float64 stays float64.
        lse = torch.logsumexp(log_w.float() if log_w.dtype in (torch.float16, torch.bfloat16) else log_w, dim=0)
        total = lse if total is None else torch.logaddexp(total, lse)
        remaining -= n
    assert total is not None
    return total - math.log(k)
