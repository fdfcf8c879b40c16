"""Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs", eq. 6) with
disentanglement_lib's histogram estimator, and MIG-sup (Li et al. 2020, "Progressive Learning and Disentanglement
of Hierarchical Representations", section 4), its transpose.

Estimator (disentanglement_lib ``mig``): ``num_train`` uniform draws; each code dimension is discretized into 20
equal-width bins over its range; I(z_j; v_k) is the plug-in mutual information of the discrete pair and H(v_k)
the plug-in entropy of the factor, both in nats. With I the [D, F] matrix:

    MIG     = 1/F sum_k (I(z_{j1(k)}; v_k) - I(z_{j2(k)}; v_k)) / H(v_k),  j1, j2 the top two codes of factor k
    MIG-sup = 1/|A| sum_{j in A} (Ĩ(z_j; v_{k1(j)}) - Ĩ(z_j; v_{k2(j)})),  Ĩ = I / H(v_k), k1, k2 the top two
              factors of code j, A the active codes (variance > 0.01, as in Li et al.'s code).

MIG penalises a factor captured by two codes (its gap closes); MIG-sup penalises a code that captures two factors.
"""

from __future__ import annotations

import numpy as np

from vaekit.data.ground_truth import GroundTruthData
from vaekit.metrics.utils import (
    NUM_BINS,
    RandomState,
    RepresentationFunction,
    discrete_entropy,
    discrete_mutual_info,
    generate_batch_factor_code,
    histogram_discretize,
)


def _top_two_gap(matrix: np.ndarray) -> np.ndarray:
    """Largest minus second largest entry of each column ([rows, cols] -> [cols]); one row: its entry minus 0."""
    ordered = np.sort(matrix, axis=0)[::-1]
    second = ordered[1] if len(ordered) > 1 else np.zeros_like(ordered[0])
    return ordered[0] - second


def mutual_info_matrix(
    codes: np.ndarray, factors: np.ndarray, num_bins: int = NUM_BINS
) -> tuple[np.ndarray, np.ndarray]:
    """(I [D, F] between histogram-discretized codes and factors, H(v_k) [F]), in nats."""
    mi = discrete_mutual_info(histogram_discretize(codes, num_bins), factors)
    return mi, discrete_entropy(factors)


def mig(
    ground_truth_data: GroundTruthData,
    representation_function: RepresentationFunction,
    random_state: RandomState,
    num_train: int = 10000,
    batch_size: int = 16,
    num_bins: int = NUM_BINS,
) -> dict[str, float]:
    """MIG with the histogram estimator.

    Defaults: disentanglement_lib ``unsupervised_study_v1/metric_configs/mig.gin`` (num_train 10000, histogram
    discretizer with 20 bins) and ``compute_mig``'s batch_size=16. Key ``discrete_mig`` as disentanglement_lib's.
    """
    codes, factors = generate_batch_factor_code(
        ground_truth_data, representation_function, num_train, random_state, batch_size
    )
    mi, entropy = mutual_info_matrix(codes, factors, num_bins)
    return {"discrete_mig": float(np.mean(_top_two_gap(mi) / entropy))}


def mig_sup(
    ground_truth_data: GroundTruthData,
    representation_function: RepresentationFunction,
    random_state: RandomState,
    num_train: int = 10000,
    batch_size: int = 16,
    num_bins: int = NUM_BINS,
    active_threshold: float = 0.01,
) -> dict[str, float]:
    """MIG-sup (Li et al. 2020) on the same histogram estimate as :func:`mig`.

    Each MI is normalised by its own factor's entropy before the top two factors of a code are compared, and the
    mean runs over active codes only (variance of the code over the sample > ``active_threshold``), both as in Li
    et al.'s ``metric_MIG.py``; their MI estimate is Chen et al.'s stochastic one, this one the histogram's.
    No active code gives 0.
    """
    codes, factors = generate_batch_factor_code(
        ground_truth_data, representation_function, num_train, random_state, batch_size
    )
    mi, entropy = mutual_info_matrix(codes, factors, num_bins)
    active = np.var(codes, axis=0) > active_threshold
    if not active.any():
        return {"discrete_mig_sup": 0.0, "num_active_dims": 0.0}
    gaps = _top_two_gap((mi / entropy[None, :])[active].T)  # [F, |A|]: the gap between factors, per code
    return {"discrete_mig_sup": float(np.mean(gaps)), "num_active_dims": float(active.sum())}
