"""The FactorVAE disentanglement metric (Kim & Mnih 2018, "Disentangling by Factorising", section 4), as
disentanglement_lib's ``factor_vae_score`` computes it.

Each code dimension is scaled by its standard deviation over the data (estimated on ``num_variance_estimate``
points); dimensions whose std is below ``prune_threshold`` are collapsed and dropped. One vote: fix a random
factor k across a batch, find the active dimension d with the least scaled variance within the batch, and count
(k, d). The classifier is the majority vote, d -> argmax_k votes[k, d]; accuracy is the share of votes it gets
right. A disentangled code has exactly one still dimension per fixed factor.
"""

from __future__ import annotations

import numpy as np

from vaekit.data.ground_truth import GroundTruthData
from vaekit.metrics.utils import EVAL_BATCH_SIZE, RandomState, RepresentationFunction, as_generator, represent

_POINTS_PER_CALL = 16  # votes computed per call of the representation function (speed only)


def _global_variances(
    ground_truth_data: GroundTruthData,
    representation_function: RepresentationFunction,
    num_points: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Variance (ddof=1, as disentanglement_lib) of each code dimension over ``num_points`` uniform draws."""
    factors = ground_truth_data.sample_factors(num_points, rng)
    codes = represent(ground_truth_data, representation_function, factors, batch_size=EVAL_BATCH_SIZE)
    return np.var(codes, axis=0, ddof=1)


def _votes(
    ground_truth_data: GroundTruthData,
    representation_function: RepresentationFunction,
    batch_size: int,
    num_points: int,
    rng: np.random.Generator,
    global_variances: np.ndarray,
    active: np.ndarray,
) -> np.ndarray:
    """Vote counts [num_factors, num_codes] of ``num_points`` fixed-factor batches."""
    votes = np.zeros((ground_truth_data.num_factors, len(global_variances)), dtype=np.int64)
    active_index = np.flatnonzero(active)
    for start in range(0, num_points, _POINTS_PER_CALL):
        count = min(_POINTS_PER_CALL, num_points - start)
        batches, fixed = [], []
        for _ in range(count):
            k = int(rng.integers(ground_truth_data.num_factors))
            factors = ground_truth_data.sample_factors(batch_size, rng)
            factors[:, k] = factors[0, k]  # the whole batch shares one value of factor k
            batches.append(factors)
            fixed.append(k)
        stacked = np.concatenate(batches)
        codes = represent(ground_truth_data, representation_function, stacked, batch_size=len(stacked))
        codes = codes.reshape(count, batch_size, -1)
        local = np.var(codes, axis=1, ddof=1)[:, active_index] / global_variances[active_index]
        # Ties (e.g. two still dimensions) go to the lowest index, as np.argmin does in disentanglement_lib.
        winners = active_index[np.argmin(local, axis=1)]
        np.add.at(votes, (np.asarray(fixed), winners), 1)
    return votes


def factor_vae(
    ground_truth_data: GroundTruthData,
    representation_function: RepresentationFunction,
    random_state: RandomState,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_variance_estimate: int = 10000,
    prune_threshold: float = 0.05,
) -> dict[str, float]:
    """Train and eval accuracy of the majority-vote classifier, and the number of active (unpruned) dimensions.

    Defaults: disentanglement_lib ``unsupervised_study_v1/metric_configs/factor_vae_metric.gin`` (batch_size 64,
    num_train 10000, num_eval 5000, num_variance_estimate 10000, prune_dims.threshold 0.05). With no active
    dimension both accuracies are 0, as disentanglement_lib returns.
    """
    rng = as_generator(random_state)
    global_variances = _global_variances(ground_truth_data, representation_function, num_variance_estimate, rng)
    # A dimension with zero variance is never active, even with prune_threshold=0 (it would divide by zero).
    active = (np.sqrt(global_variances) >= prune_threshold) & (global_variances > 0)
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}
    train_votes = _votes(
        ground_truth_data, representation_function, batch_size, num_train, rng, global_variances, active
    )
    classifier = np.argmax(train_votes, axis=0)  # the factor each dimension votes for most often
    columns = np.arange(train_votes.shape[1])
    eval_votes = _votes(ground_truth_data, representation_function, batch_size, num_eval, rng, global_variances, active)
    return {
        "train_accuracy": float(train_votes[classifier, columns].sum() / train_votes.sum()),
        "eval_accuracy": float(eval_votes[classifier, columns].sum() / eval_votes.sum()),
        # disentanglement_lib reports len(mask), i.e. all dimensions; this is the count of active ones.
        "num_active_dims": float(active.sum()),
    }
