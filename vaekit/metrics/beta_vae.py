"""The beta-VAE disentanglement metric (Higgins et al. 2017, "beta-VAE: Learning Basic Visual Concepts with a
Constrained Variational Framework", section 3), as disentanglement_lib's ``beta_vae_sklearn`` computes it.

One training point: draw a factor k uniformly, two batches of ``batch_size`` combinations that agree on factor k
only, and take z_diff = mean_b |r(x1_b) - r(x2_b)| over the batch. A linear classifier predicts k from z_diff; a
disentangled code has (near) zero difference in the dimension of the fixed factor, which is linearly readable.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from vaekit.data.ground_truth import GroundTruthData
from vaekit.metrics.utils import RandomState, RepresentationFunction, as_generator, derive_seed, represent

# Training points generated per call of the representation function (speed only: the draws are the same).
_POINTS_PER_CALL = 16


def _generate_points(
    ground_truth_data: GroundTruthData,
    representation_function: RepresentationFunction,
    batch_size: int,
    num_points: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``num_points`` (z_diff [num_points, D], fixed factor [num_points]) pairs."""
    features, labels = [], []
    for start in range(0, num_points, _POINTS_PER_CALL):
        count = min(_POINTS_PER_CALL, num_points - start)
        first, second, fixed = [], [], []
        for _ in range(count):
            k = int(rng.integers(ground_truth_data.num_factors))
            f1 = ground_truth_data.sample_factors(batch_size, rng)
            f2 = ground_truth_data.sample_factors(batch_size, rng)
            f2[:, k] = f1[:, k]  # the pair agrees on factor k, and only by chance on the others
            first.append(f1)
            second.append(f2)
            fixed.append(k)
        both = np.concatenate(first + second, axis=0)
        codes = represent(ground_truth_data, representation_function, both, batch_size=len(both))
        z1, z2 = np.split(codes, 2, axis=0)
        diff = np.abs(z1 - z2).reshape(count, batch_size, -1).mean(axis=1)
        features.append(diff)
        labels.extend(fixed)
    return np.concatenate(features, axis=0), np.asarray(labels, dtype=np.int64)


def beta_vae(
    ground_truth_data: GroundTruthData,
    representation_function: RepresentationFunction,
    random_state: RandomState,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
) -> dict[str, float]:
    """Train and eval accuracy of a logistic regression predicting the fixed factor from z_diff.

    Defaults: disentanglement_lib ``unsupervised_study_v1/metric_configs/beta_vae_sklearn.gin``. The classifier is
    scikit-learn's LogisticRegression with its default settings, as disentanglement_lib's.
    """
    rng = as_generator(random_state)
    train_x, train_y = _generate_points(ground_truth_data, representation_function, batch_size, num_train, rng)
    model = LogisticRegression(random_state=derive_seed(rng))
    model.fit(train_x, train_y)
    eval_x, eval_y = _generate_points(ground_truth_data, representation_function, batch_size, num_eval, rng)
    return {
        "train_accuracy": float(np.mean(model.predict(train_x) == train_y)),
        "eval_accuracy": float(np.mean(model.predict(eval_x) == eval_y)),
    }
