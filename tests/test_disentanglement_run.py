"""Metrics wired into training and evaluation, on a small data set with known factors made here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vaekit.cli import main
from vaekit.data.batches import TensorExamples
from vaekit.data.ground_truth import GroundTruthData
from vaekit.data.registry import DataConfig, Splits, register_data


class Dots(GroundTruthData):
    """A bright 2x2 dot on a 16x16 canvas: factors are its row (8 values) and column (8 values)."""

    factor_names = ("row", "col")
    factor_sizes = (8, 8)
    observation_shape = (1, 16, 16)

    def observations(self, factors: np.ndarray) -> torch.Tensor:
        out = torch.zeros(len(factors), 1, 16, 16)
        for img, (r, c) in zip(out, factors, strict=True):
            img[0, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2] = 1.0
        return out


@dataclass
class DotsConfig(DataConfig):
    name: str = "dots_for_tests"


@register_data("dots_for_tests", DotsConfig)
def build_dots(cfg: DotsConfig) -> Splits:
    """Dots (tests only)."""
    gt = Dots()
    all_factors = gt.factors_of(np.arange(len(gt)))
    images = (gt.observations(all_factors) * 255).to(torch.uint8)
    return Splits(train=TensorExamples(images.repeat(4, 1, 1, 1), None, "fixed"),
                  val=TensorExamples(images, None, "fixed"), test=TensorExamples(images, None, "fixed"),
                  observation="binary", defaults={"input_shape": (1, 16, 16)}, ground_truth=gt)


def test_metrics_during_training_and_in_evaluate(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train", "beta_vae", "--data", "dots_for_tests", "--data-dir", str(tmp_path), "model.channels=[8, 8]",
            "model.fc=32", "model.latent_dim=4", "data.batch_size=32", "train.epochs=1", "train.progress_bar=false",
            "train.metrics=[mig]", "train.metrics_every_n_steps=4", "train.metric_settings={mig: {num_train: 500}}",
            "--out", str(run)]
    assert main(args) == 0
    steps = sorted(p.name for p in (run / "metrics").glob("step*.json"))
    assert steps == ["step0000004.json", "step0000008.json"]  # 256 images / 32 = 8 steps
    first = json.loads((run / "metrics" / steps[0]).read_text())
    assert 0.0 <= first["mig"]["discrete_mig"] <= 1.0
    assert "metrics/mig/discrete_mig" in (run / "logs" / "metrics.csv").read_text()
    assert main(["evaluate", str(run), "--nll-samples", "4", "--metrics", "mig,sap", "--quiet"]) == 0
    result = json.loads((run / "eval_k4.json").read_text())
    assert set(result["metrics"]) == {"mig", "sap"} and 0.0 <= result["metrics"]["sap"]["SAP_score"] <= 1.0
    assert main(["evaluate", str(run), "--metrics", "mig,nope", "--quiet"]) == 2
    assert main(["traverse", str(run), "--seeds", "2", "--images", "16", "--steps", "5"]) == 0
    assert sorted(p.name for p in (run / "traversals").iterdir()) == ["kl_per_latent.png", "traversal_seed0.png",
                                                                      "traversal_seed1.png"]
