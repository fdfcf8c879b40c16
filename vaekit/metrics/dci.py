"""Disentanglement, Completeness and Informativeness (Eastwood & Williams 2018, "A Framework for the Quantitative
Evaluation of Disentangled Representations", section 3), with disentanglement_lib's gradient boosted trees.

For each factor k a GradientBoostingClassifier predicts v_k from the whole code; its feature importances form
column k of the importance matrix R [D, F]. With P_jk = R_jk / sum_k R_jk and entropies in base F:

    D_j = 1 - H_F(P_j.),   disentanglement = sum_j rho_j D_j,   rho_j = sum_k R_jk / sum_jk R_jk   (eqs. 1-2)
    C_k = 1 - H_D(P~_.k),  completeness = sum_k (sum_j R_jk / sum_jk R_jk) C_k,  P~_jk = R_jk / sum_j R_jk

Informativeness is the classifiers' mean accuracy on the training and on a held-out test sample (disentanglement_lib
reports accuracy, not Eastwood & Williams' prediction error).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import entropy
from sklearn.ensemble import GradientBoostingClassifier

from vaekit.data.ground_truth import GroundTruthData
from vaekit.metrics.utils import (
    RandomState,
    RepresentationFunction,
    as_generator,
    derive_seed,
    generate_batch_factor_code,
)

# disentanglement_lib adds 1e-11 before taking entropies, so an all-zero row is uniform (score 0), not NaN.
_EPS = 1e-11


def importance_matrix(
    train_codes: np.ndarray,
    train_factors: np.ndarray,
    test_codes: np.ndarray,
    test_factors: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, float, float]:
    """(R [D, F] of |feature_importances_|, mean train accuracy, mean test accuracy) over the factors."""
    importance = np.zeros((train_codes.shape[1], train_factors.shape[1]))
    train_acc, test_acc = [], []
    for k in range(train_factors.shape[1]):
        # scikit-learn's defaults, as disentanglement_lib (100 stages of depth-3 trees); the seed only fixes the
        # order in which tied splits are tried.
        model = GradientBoostingClassifier(random_state=derive_seed(rng))
        model.fit(train_codes, train_factors[:, k])
        importance[:, k] = np.abs(model.feature_importances_)
        train_acc.append(np.mean(model.predict(train_codes) == train_factors[:, k]))
        test_acc.append(np.mean(model.predict(test_codes) == test_factors[:, k]))
    return importance, float(np.mean(train_acc)), float(np.mean(test_acc))


def disentanglement_score(importance: np.ndarray) -> float:
    """sum_j rho_j (1 - H_F(P_j.)) of an importance matrix [D, F]; 0 when every importance is 0."""
    per_code = 1.0 - entropy(importance.T + _EPS, base=importance.shape[1])
    # All-zero importances (a constant code): weigh codes equally; each per-code score is then 0.
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    return float(np.sum(per_code * weights.sum(axis=1) / weights.sum()))


def completeness_score(importance: np.ndarray) -> float:
    """sum_k (share of factor k) (1 - H_D(P~_.k)) of an importance matrix [D, F]; 0 when every importance is 0."""
    per_factor = 1.0 - entropy(importance + _EPS, base=importance.shape[0])
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    return float(np.sum(per_factor * weights.sum(axis=0) / weights.sum()))


def dci(
    ground_truth_data: GroundTruthData,
    representation_function: RepresentationFunction,
    random_state: RandomState,
    num_train: int = 10000,
    num_test: int = 5000,
    batch_size: int = 16,
) -> dict[str, float]:
    """DCI with gradient boosted trees.

    Defaults: disentanglement_lib ``unsupervised_study_v1/metric_configs/dci.gin`` (num_train 10000, num_test
    5000) and ``compute_dci``'s batch_size=16. Keys as disentanglement_lib's. Needs at least 2 factors and 2 codes
    (the entropies are taken in base F and base D).
    """
    rng = as_generator(random_state)
    train_codes, train_factors = generate_batch_factor_code(
        ground_truth_data, representation_function, num_train, rng, batch_size
    )
    test_codes, test_factors = generate_batch_factor_code(
        ground_truth_data, representation_function, num_test, rng, batch_size
    )
    importance, train_acc, test_acc = importance_matrix(train_codes, train_factors, test_codes, test_factors, rng)
    return {
        "informativeness_train": train_acc,
        "informativeness_test": test_acc,
        "disentanglement": disentanglement_score(importance),
        "completeness": completeness_score(importance),
    }
