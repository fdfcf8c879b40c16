"""A sweep end to end: a regressor, then a CVAE whose prior sees it, evaluated and tabulated."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from vaekit.data import build_data
from vaekit.run.io import load, load_run
from vaekit.run.sweep import sweep

TINY = {"epochs": 1, "progress_bar": False}
LIMITS = {"limit_train_batches": 3, "limit_val_batches": 1}


def test_quadrant_sweep_trains_baseline_first_and_tabulates(tmp_path: Path, data_dir: Path) -> None:
    spec = {
        "name": "tiny",
        "base": {"model": {"name": "cvae_quadrants", "hidden": [16], "latent_dim": 3, "baseline_hidden": [16]},
                 "data": {"dir": str(data_dir), "batch_size": 32}, "train": TINY, "trainer": LIMITS,
                 "eval": {"nll_samples": 4, "limit": 32}},
        "groups": {"q2": {"model.given_quadrants": 2}},
        "runs": {"regressor": {"model": {"name": "regressor", "hidden": [16], "given_quadrants": 2}},
                 "CVAE": {"train.init.baseline": "{root}/{group}/regressor"}},
        "depends": {"CVAE": "regressor"},
        "reference": {"q2": {"regressor": 61.9, "CVAE": 51.0}},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    md = sweep(path, jobs=2, out=tmp_path / "out")
    rows = json.loads((tmp_path / "out" / "table.json").read_text())
    assert [r["run"] for r in rows] == ["regressor", "CVAE"]
    # The regressor's row is its exact NCLL on the 32 test images, recomputed here from its weights.
    regressor, cfg, _ = load_run(tmp_path / "out/q2/regressor")
    test = build_data(cfg.data).test.head(32)
    with torch.no_grad():
        ncll = -float(regressor.log_likelihood(test).mean())
    assert abs(rows[0]["nll"] - ncll) < 1e-3 and rows[0]["elbo"] is None
    cvae_eval = json.loads(next((tmp_path / "out/q2/cvae").glob("eval_k4*.json")).read_text())
    assert rows[1]["nll"] == cvae_eval["nll"] and f"| q2 | CVAE | {cvae_eval['nll']:.2f} |" in md
    # The CVAE carries the regressor it was trained with.
    reg, cvae = load(tmp_path / "out/q2/regressor"), load(tmp_path / "out/q2/cvae")
    for k, v in reg.state_dict().items():
        assert (cvae.state_dict()[f"baseline.{k}"] == v).all()
    assert list((tmp_path / "out/q2/cvae/figures").glob("completions_*.png"))
