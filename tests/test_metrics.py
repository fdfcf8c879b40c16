"""The disentanglement metrics on a synthetic ground truth whose codes we write by hand: the true factors score
(near) the top, a constant code scores 0 or chance, duplicated / merged / rotated factors score lower where each
metric is meant to notice, and every metric is a deterministic function of its random_state."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from vaekit.data.ground_truth import GroundTruthData
from vaekit.metrics import METRICS, beta_vae, dci, factor_vae, mig, mig_sup, sap
from vaekit.metrics.dci import completeness_score, disentanglement_score
from vaekit.metrics.sap import score_matrix
from vaekit.metrics.utils import (
    NUM_BINS,
    as_generator,
    discrete_entropy,
    discrete_mutual_info,
    generate_batch_factor_code,
    histogram_discretize,
)


class Grid(GroundTruthData):
    """Four discrete factors; the observation is the factor vector scaled to [0, 1], shaped [n, 4, 1, 1]."""

    factor_names = ("a", "b", "c", "d")
    factor_sizes = (4, 5, 6, 8)
    observation_shape = (4, 1, 1)

    def observations(self, factors: np.ndarray) -> torch.Tensor:
        f = torch.as_tensor(np.asarray(factors), dtype=torch.float32)
        return (f / (torch.tensor(self.factor_sizes) - 1)).reshape(len(f), -1, 1, 1)


DATA = Grid()
SPAN = torch.tensor(DATA.factor_sizes, dtype=torch.float32) - 1
CHANCE = 1 / DATA.num_factors


def values(x: torch.Tensor) -> torch.Tensor:
    """The integer factor values back from an observation, [n, 4]."""
    return x.reshape(len(x), -1) * SPAN


# Codes. Each is a deterministic function of the observation, so a metric's randomness is its random_state's alone.
def true_code(x: torch.Tensor) -> torch.Tensor:
    v = values(x)
    # A tiny deterministic jitter (|.| <= 0.01, far below a histogram bin) so that no dimension is exactly discrete.
    return v + 0.01 * torch.sin(37.0 * (v @ torch.tensor([1.0, 2.0, 3.0, 4.0]))[:, None] + torch.arange(4.0))


def constant_code(x: torch.Tensor) -> torch.Tensor:
    return torch.zeros(len(x), 4)


def duplicate_code(x: torch.Tensor) -> torch.Tensor:
    """Factor a in two dimensions: MIG's gap for a closes."""
    v = true_code(x)
    return torch.cat([v[:, :1], v], dim=1)


def merged_code(x: torch.Tensor) -> torch.Tensor:
    """Factors a and b packed into one dimension (a * 5 + b, invertible): MIG-sup's gap for it closes."""
    v = values(x)
    return torch.stack([v[:, 0] * 5 + v[:, 1], v[:, 2], v[:, 3]], dim=1)


def rotated_code(x: torch.Tensor) -> torch.Tensor:
    """Factors a and b (centred, scaled to [-1/2, 1/2]) rotated by 45 degrees; c and d left pure."""
    v = values(x)
    a, b = (v[:, 0] - SPAN[0] / 2) / SPAN[0], (v[:, 1] - SPAN[1] / 2) / SPAN[1]
    r = 0.5**0.5
    return torch.stack([r * (a - b), r * (a + b), v[:, 2], v[:, 3]], dim=1)


# Small samples (disentanglement_lib's defaults take minutes); every estimate below is well inside its margin.
SMALL = {
    "beta_vae": {"num_train": 400, "num_eval": 200},
    "factor_vae": {"num_train": 400, "num_eval": 200, "num_variance_estimate": 1000},
    "mig": {"num_train": 2000},
    "mig_sup": {"num_train": 2000},
    "dci": {"num_train": 500, "num_test": 250},
    "sap": {"num_train": 800, "num_test": 400},
}
_cache: dict[tuple[str, str, int], dict[str, float]] = {}


def score(metric: str, code, seed: int = 0) -> dict[str, float]:
    key = (metric, code.__name__, seed)
    if key not in _cache:
        _cache[key] = METRICS[metric](DATA, code, seed, **SMALL[metric])
    return _cache[key]


# --- the true factors score at the top -----------------------------------------------------------------------------


def test_true_factors_score_near_one() -> None:
    assert score("mig", true_code)["discrete_mig"] > 0.98
    assert score("mig_sup", true_code)["discrete_mig_sup"] > 0.98
    d = score("dci", true_code)
    assert d["disentanglement"] > 0.95 and d["completeness"] > 0.95
    assert d["informativeness_train"] > 0.99 and d["informativeness_test"] > 0.99
    for metric in ("beta_vae", "factor_vae"):
        s = score(metric, true_code)
        assert s["train_accuracy"] > 0.98 and s["eval_accuracy"] > 0.98, (metric, s)
    assert score("factor_vae", true_code)["num_active_dims"] == 4


def test_sap_true_factors_at_the_attainable_maximum() -> None:
    # Continuous scoring (R^2 of z_j for v_k): the true code's diagonal is 1 and the rest ~0, so SAP ~ 1.
    assert sap(DATA, true_code, 0, num_train=800, num_test=400, continuous_factors=True)["SAP_score"] > 0.98
    # Discrete scoring (disentanglement_lib's default): a one-feature LinearSVC(C=0.01), one-vs-rest, cannot
    # separate the middle values of a 4-8 valued factor, so even the true code sits far below 1 (~0.4 here).
    # What it can do: each factor is best predicted by its own dimension, every other code scores lower.
    rng = np.random.default_rng(0)
    train = generate_batch_factor_code(DATA, true_code, 800, rng)
    test = generate_batch_factor_code(DATA, true_code, 400, rng)
    s = score_matrix(*train, *test, continuous_factors=False, rng=rng)
    assert list(np.argmax(s, axis=0)) == [0, 1, 2, 3]
    best = score("sap", true_code)["SAP_score"]
    assert best > 0.3
    for code in (constant_code, duplicate_code, merged_code, rotated_code):
        assert score("sap", code)["SAP_score"] < best, code.__name__


# --- a constant code scores 0 (or chance) --------------------------------------------------------------------------


def test_constant_code_scores_zero_or_chance() -> None:
    assert score("mig", constant_code)["discrete_mig"] == pytest.approx(0.0, abs=1e-12)
    assert score("mig_sup", constant_code) == {"discrete_mig_sup": 0.0, "num_active_dims": 0.0}
    assert score("sap", constant_code)["SAP_score"] == pytest.approx(0.0, abs=1e-12)
    d = score("dci", constant_code)
    # Every importance is 0 -> each code's distribution over factors is uniform -> D = C = 0.
    assert d["disentanglement"] == pytest.approx(0.0, abs=1e-6)
    assert d["completeness"] == pytest.approx(0.0, abs=1e-6)
    # beta-VAE: z_diff is 0 for every point, so the classifier guesses one factor: chance, 1/4.
    b = score("beta_vae", constant_code)
    assert abs(b["train_accuracy"] - CHANCE) < 0.1 and abs(b["eval_accuracy"] - CHANCE) < 0.1
    # FactorVAE: every dimension is pruned (std 0 < 0.05); disentanglement_lib then scores 0.
    assert score("factor_vae", constant_code) == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}


def test_factor_vae_uninformative_active_code_is_at_chance() -> None:
    """With dimensions that move but say nothing about the factors, the majority vote is at chance."""

    def noise(x: torch.Tensor) -> torch.Tensor:
        v = values(x)
        return torch.sin(1000.0 * (v @ torch.tensor([1.0, 7.0, 31.0, 131.0]))[:, None] * torch.arange(1.0, 5.0))

    s = factor_vae(DATA, noise, 0, **SMALL["factor_vae"])
    assert s["num_active_dims"] == 4
    assert abs(s["eval_accuracy"] - CHANCE) < 0.12


# --- duplicated, merged and mixed factors score lower --------------------------------------------------------------


def test_duplicated_factor_lowers_mig_not_mig_sup() -> None:
    pure, dup = score("mig", true_code)["discrete_mig"], score("mig", duplicate_code)["discrete_mig"]
    # Factor a's gap closes (two equally informative dimensions), the others stay: MIG ~ 3/4 of the pure one.
    assert dup < pure - 0.2
    assert dup == pytest.approx(0.75 * pure, abs=0.03)
    # Each dimension still carries a single factor, which is all MIG-sup asks.
    assert score("mig_sup", duplicate_code)["discrete_mig_sup"] > 0.98


def test_merged_factors_lower_mig_sup_not_mig() -> None:
    # One dimension holds a and b exactly (20 values in 20 bins): each factor still has one informative dimension.
    assert score("mig", merged_code)["discrete_mig"] > 0.98
    assert score("mig_sup", merged_code)["discrete_mig_sup"] < score("mig_sup", true_code)["discrete_mig_sup"] - 0.2


def test_rotated_factors_score_lower() -> None:
    assert score("mig", rotated_code)["discrete_mig"] < score("mig", true_code)["discrete_mig"] - 0.2
    assert score("dci", rotated_code)["disentanglement"] < score("dci", true_code)["disentanglement"] - 0.1
    assert score("dci", rotated_code)["completeness"] < score("dci", true_code)["completeness"] - 0.1
    assert score("sap", rotated_code)["SAP_score"] < score("sap", true_code)["SAP_score"] - 0.1
    assert score("factor_vae", rotated_code)["eval_accuracy"] < 0.95


# --- determinism ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_deterministic_given_random_state(metric: str) -> None:
    fn, settings = METRICS[metric], SMALL[metric]
    first = score(metric, rotated_code, seed=3)
    assert fn(DATA, rotated_code, 3, **settings) == first  # same int seed, same dict, bit for bit
    assert fn(DATA, rotated_code, np.random.default_rng(3), **settings) == first  # an int means default_rng(int)
    assert fn(DATA, rotated_code, 4, **settings) != first  # another seed draws another sample


def test_torch_and_numpy_representations_agree() -> None:
    as_numpy = lambda x: true_code(x).numpy()
    assert mig(DATA, as_numpy, 0, num_train=500) == mig(DATA, true_code, 0, num_train=500)
    with pytest.raises(TypeError):
        as_generator(0.5)  # type: ignore[arg-type]


# --- helpers -------------------------------------------------------------------------------------------------------


def test_histogram_discretizer_has_20_bins_by_default() -> None:
    assert NUM_BINS == 20
    for metric in (mig, mig_sup):
        assert inspect.signature(metric).parameters["num_bins"].default == 20
    codes = np.stack([np.linspace(-3.0, 5.0, 1000), np.full(1000, 2.0)], axis=1)
    labels = histogram_discretize(codes)
    # Equal-width bins over the range: labels 1..20 with 50 points each; the maximum falls into the last bin.
    assert np.array_equal(np.unique(labels[:, 0]), np.arange(1, 21))
    assert np.all(np.bincount(labels[:, 0])[1:] == 50)
    assert len(np.unique(labels[:, 1])) == 1  # a constant dimension is a single bin
    assert len(np.unique(histogram_discretize(codes, num_bins=5)[:, 0])) == 5


def test_discrete_mutual_info_and_entropy() -> None:
    rng = np.random.default_rng(0)
    factors = np.stack([np.repeat(np.arange(4), 250), rng.integers(0, 4, 1000)], axis=1)
    assert discrete_entropy(factors)[0] == pytest.approx(np.log(4))
    mi = discrete_mutual_info(factors[:, :1], factors)  # the code is factor 0 itself
    assert mi.shape == (1, 2)
    assert mi[0, 0] == pytest.approx(np.log(4)) and mi[0, 1] < 0.02


def test_dci_scores_of_importance_matrices() -> None:
    eye = np.eye(4)
    assert disentanglement_score(eye) == pytest.approx(1.0) and completeness_score(eye) == pytest.approx(1.0)
    uniform = np.ones((4, 4))
    assert disentanglement_score(uniform) == pytest.approx(0.0, abs=1e-9)
    assert completeness_score(uniform) == pytest.approx(0.0, abs=1e-9)
    zeros = np.zeros((4, 4))
    assert disentanglement_score(zeros) == pytest.approx(0.0, abs=1e-6)
    # One code for all factors: complete (each factor has one code) but not disentangled.
    one_code = np.zeros((4, 4))
    one_code[0] = 1.0
    assert completeness_score(one_code) == pytest.approx(1.0) and disentanglement_score(one_code) < 0.01


def test_registry_and_signatures() -> None:
    assert set(METRICS) == {"beta_vae", "factor_vae", "mig", "mig_sup", "dci", "sap"}
    assert METRICS["beta_vae"] is beta_vae and METRICS["dci"] is dci
    for fn in METRICS.values():
        names = list(inspect.signature(fn).parameters)
        assert names[:3] == ["ground_truth_data", "representation_function", "random_state"]


def test_a_misspelt_metric_setting_is_named() -> None:
    from vaekit.run.evaluate import check_metric_settings

    check_metric_settings({"beta_vae": {"num_train": 10, "num_eval": 5}, "mig": {"num_bins": 10}})
    with pytest.raises(ValueError, match=r"metric_settings.beta_vae.num_trian is unknown; beta_vae takes: .*num_train"):
        check_metric_settings({"beta_vae": {"num_trian": 10}})
    with pytest.raises(ValueError, match="unknown metric 'mgi'"):
        check_metric_settings({"mgi": {}})
