"""Pieces shared by the disentanglement metrics, after disentanglement_lib's ``evaluation/metrics/utils.py``.

Conventions (differ from disentanglement_lib, which stores codes as [num_codes, num_points]): codes are
[num_points, num_codes] and factors [num_points, num_factors], the numpy/scikit-learn layout.

Every metric takes a ``random_state`` (a ``numpy.random.Generator`` or an int seed); all of its random choices
(factor sampling, classifier seeds) are drawn from that one generator, so a metric is a deterministic function of
(data, representation, random_state). A Generator passed in is advanced, as disentanglement_lib's RandomState is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.metrics import mutual_info_score

from vaekit.data.ground_truth import GroundTruthData

RandomState = np.random.Generator | int
# Observations [n, C, H, W] -> representation [n, D], as a torch tensor or anything numpy can read.
RepresentationFunction = Callable[[torch.Tensor], Any]

# disentanglement_lib's histogram discretizer, discretizer.num_bins = 20 in every metric gin config.
NUM_BINS = 20
# Observations per call of the representation function when a metric needs many points at once
# (factor_vae's _compute_variances uses eval_batch_size=64; the value only changes speed, not the result).
EVAL_BATCH_SIZE = 64


def as_generator(random_state: RandomState) -> np.random.Generator:
    """A Generator from a Generator (returned as is) or an int seed."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, int | np.integer):
        return np.random.default_rng(int(random_state))
    raise TypeError(f"random_state must be a numpy Generator or an int, not {type(random_state).__name__}")


def derive_seed(rng: np.random.Generator) -> int:
    """An int seed for a scikit-learn estimator, drawn from the metric's generator (so it is reproducible)."""
    return int(rng.integers(0, 2**31 - 1))


def to_numpy(representation: Any) -> np.ndarray:
    """A representation as a float64 array [n, D] (torch tensors are detached and moved to the CPU)."""
    if isinstance(representation, torch.Tensor):
        representation = representation.detach().cpu().double().numpy()
    out = np.asarray(representation, dtype=np.float64)
    if out.ndim == 1:  # a one-dimensional code
        out = out[:, None]
    if out.ndim != 2:
        raise ValueError(f"a representation must be [n, D], got shape {out.shape}")
    return out


@torch.no_grad()
def represent(
    ground_truth_data: GroundTruthData,
    representation_function: RepresentationFunction,
    factors: np.ndarray,
    batch_size: int = EVAL_BATCH_SIZE,
) -> np.ndarray:
    """The codes [n, D] of the observations of ``factors`` [n, F], computed ``batch_size`` at a time."""
    chunks = []
    for start in range(0, len(factors), batch_size):
        observations = ground_truth_data.observations(factors[start : start + batch_size])
        chunks.append(to_numpy(representation_function(observations)))
    return np.concatenate(chunks, axis=0)


def generate_batch_factor_code(
    ground_truth_data: GroundTruthData,
    representation_function: RepresentationFunction,
    num_points: int,
    random_state: RandomState,
    batch_size: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """``num_points`` factor combinations drawn uniformly, ``batch_size`` at a time, and their codes.

    Returns (codes [num_points, D], factors [num_points, F]). batch_size=16 is disentanglement_lib's default for
    mig, dci and sap_score; factors are drawn per batch, so it is part of what a seed means.
    """
    rng = as_generator(random_state)
    codes, factors = [], []
    for start in range(0, num_points, batch_size):
        batch = ground_truth_data.sample_factors(min(batch_size, num_points - start), rng)
        factors.append(batch)
        codes.append(represent(ground_truth_data, representation_function, batch, batch_size=len(batch)))
    return np.concatenate(codes, axis=0), np.concatenate(factors, axis=0)


def histogram_discretize(codes: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
    """Each code dimension cut into ``num_bins`` equal-width bins over its observed range, [n, D] int.

    As disentanglement_lib's ``_histogram_discretize``: np.digitize against the left edges of np.histogram's bins,
    so the labels run 1..num_bins (the maximum falls into the last bin) and a constant dimension gets one label.
    """
    codes = np.asarray(codes, dtype=np.float64)
    out = np.empty(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram(codes[:, j], bins=num_bins)[1]
        out[:, j] = np.digitize(codes[:, j], edges[:-1])
    return out


def discrete_mutual_info(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """I(code_j; factor_k) in nats between discrete codes [n, D] and factors [n, F], as a [D, F] matrix."""
    return np.array(
        [
            [mutual_info_score(factors[:, k], codes[:, j]) for k in range(factors.shape[1])]
            for j in range(codes.shape[1])
        ]
    ).reshape(codes.shape[1], factors.shape[1])


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """H(factor_k) in nats of each column of ``factors`` [n, F] (the plug-in estimate, I(v; v))."""
    return np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])
