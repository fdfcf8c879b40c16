"""A sweep end to end: a regressor, then a CVAE whose prior sees it, evaluated and tabulated."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from vaekit.io import load
from vaekit.sweep import sweep

TINY = {"epochs": 1, "limit_train_batches": 3, "limit_val_batches": 1, "progress_bar": False}


def test_quadrant_sweep_trains_baseline_first_and_tabulates(tmp_path: Path, data_dir: Path) -> None:
    spec = {
        "name": "tiny",
        "base": {"model": {"name": "cvae", "hidden": [16], "latent_dim": 3},
                 "data": {"dir": str(data_dir), "batch_size": 32}, "train": TINY,
                 "eval": {"nll_samples": 4, "limit": 32}},
        "groups": {"q2": {"model.given_quadrants": 2}},
        "runs": {"regressor": {"model.name": "regressor", "model.latent_dim": None},
                 "CVAE": {"model.baseline_run": "{root}/{group}/regressor", "model.baseline_hidden": [16]}},
        "depends": {"CVAE": "regressor"},
        "reference": {"q2": {"regressor": 61.9, "CVAE": 51.0}},
    }
    spec["runs"]["regressor"].pop("model.latent_dim")
    spec["base"]["model"].pop("latent_dim")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    md = sweep(path, jobs=2, out=tmp_path / "out")
    rows = json.loads((tmp_path / "out" / "table.json").read_text())
    assert [r["run"] for r in rows] == ["regressor", "CVAE"] and all(r["nll"] > 0 for r in rows)
    assert "| q2 | CVAE |" in md and "51.00" in md
    # The CVAE carries the regressor it was trained with.
    reg, cvae = load(tmp_path / "out/q2/regressor"), load(tmp_path / "out/q2/cvae")
    for k, v in reg.state_dict().items():
        assert (cvae.state_dict()[f"baseline.{k}"] == v).all()
    assert list((tmp_path / "out/q2/cvae/figures").glob("completions_*.png"))
