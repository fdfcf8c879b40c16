"""Separated Attribute Predictability (Kumar et al. 2018, "Variational Inference of Disentangled Latent Concepts
from Unlabeled Observations", section 3), as disentanglement_lib's ``sap_score`` computes it.

A score matrix S [D, F] says how well code dimension j alone predicts factor k:
  * discrete factors (the default): test accuracy of a LinearSVC(C=0.01, class_weight="balanced") trained on the
    single dimension z_j to classify v_k;
  * continuous factors: the R^2 of a linear regression of v_k on z_j, Cov(z_j, v_k)^2 / (Var z_j Var v_k).
SAP is the mean over factors of the gap between the two largest scores of that factor's column.
"""

from __future__ import annotations

import numpy as np
from sklearn.svm import LinearSVC

from vaekit.data.ground_truth import GroundTruthData
from vaekit.metrics.utils import (
    RandomState,
    RepresentationFunction,
    as_generator,
    derive_seed,
    generate_batch_factor_code,
)


def score_matrix(
    train_codes: np.ndarray,
    train_factors: np.ndarray,
    test_codes: np.ndarray,
    test_factors: np.ndarray,
    continuous_factors: bool,
    rng: np.random.Generator,
) -> np.ndarray:
    """S [D, F]: how well each single code dimension predicts each factor."""
    num_codes, num_factors = train_codes.shape[1], train_factors.shape[1]
    scores = np.zeros((num_codes, num_factors))
    for j in range(num_codes):
        for k in range(num_factors):
            if continuous_factors:
                cov = np.cov(train_codes[:, j], train_factors[:, k], ddof=1)
                # A constant code explains nothing (and would divide by zero).
                scores[j, k] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 else 0.0
            else:
                classifier = LinearSVC(C=0.01, class_weight="balanced", random_state=derive_seed(rng))
                classifier.fit(train_codes[:, j : j + 1], train_factors[:, k])
                scores[j, k] = np.mean(classifier.predict(test_codes[:, j : j + 1]) == test_factors[:, k])
    return scores


def sap(
    ground_truth_data: GroundTruthData,
    representation_function: RepresentationFunction,
    random_state: RandomState,
    num_train: int = 10000,
    num_test: int = 5000,
    batch_size: int = 16,
    continuous_factors: bool = False,
) -> dict[str, float]:
    """SAP score, key ``SAP_score`` as disentanglement_lib's.

    Defaults: disentanglement_lib ``unsupervised_study_v1/metric_configs/sap_score.gin`` (num_train 10000,
    num_test 5000, continuous_factors False) and ``compute_sap``'s batch_size=16. As in disentanglement_lib the
    test sample is drawn for continuous factors too, although their score uses the training sample only.
    """
    rng = as_generator(random_state)
    train_codes, train_factors = generate_batch_factor_code(
        ground_truth_data, representation_function, num_train, rng, batch_size
    )
    test_codes, test_factors = generate_batch_factor_code(
        ground_truth_data, representation_function, num_test, rng, batch_size
    )
    scores = score_matrix(train_codes, train_factors, test_codes, test_factors, continuous_factors, rng)
    ordered = np.sort(scores, axis=0)
    second = ordered[-2] if len(ordered) > 1 else np.zeros_like(ordered[-1])
    return {"SAP_score": float(np.mean(ordered[-1] - second))}
