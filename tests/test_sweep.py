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


REQUIRED = ("command", "commit", "machine", "device", "torch", "seeds", "budget", "data_split", "metric_settings")


def test_seeded_sweep_writes_a_record_with_spread_and_provenance(tmp_path: Path, data_dir: Path) -> None:
    spec = {
        "name": "tiny_seeds", "seeds": [0, 1], "results": str(tmp_path / "results/tiny.json"),
        "metric": {"key": "nll", "better": "lower", "unit": "nats"}, "compare": {"wide": "narrow"},
        "base": {"model": {"name": "vae", "hidden": [8], "latent_dim": 2},
                 "data": {"dir": str(data_dir), "batch_size": 32}, "train": TINY, "trainer": LIMITS,
                 "eval": {"nll_samples": 2, "limit": 16}},
        "runs": {"narrow": {}, "wide": {"model.hidden": [16]}},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    sweep(path, jobs=2, out=tmp_path / "out")
    rec = json.loads((tmp_path / "results/tiny.json").read_text())
    assert all(rec[k] not in (None, [], {}) for k in REQUIRED), [k for k in REQUIRED if not rec[k]]
    assert rec["seeds"] == [0, 1] and rec["command"] == [f"vaekit sweep {path} --jobs 2"]
    assert len(rec["device"]) == 1 and rec["device"][0].startswith("cpu (") and len(rec["sessions"]) == 4
    narrow = next(r for r in rec["rows"] if r["run"] == "narrow")
    # each seed's value is the NLL its own evaluation file holds; the two seeds trained differently
    vals = [json.loads(Path(s["evaluation"]).read_text())["nll"] for s in narrow["seeds"]]
    assert narrow["value"]["values"] == vals and vals[0] != vals[1]
    assert narrow["value"]["min"] == min(vals) and narrow["value"]["max"] == max(vals)
    assert (tmp_path / "out/all/narrow/seed1/run.json").exists()
    seed_cfg = yaml.safe_load((tmp_path / "out/all/narrow/seed1/config.yaml").read_text())
    assert seed_cfg["train"]["seed"] == 1
    (cmp,) = rec["comparisons"]
    assert cmp["verdict"] in ("better", "worse", "tie") and cmp["a"] == "wide"
    assert "missing_runs" not in rec and "seeds_planned" not in rec

    # A sweep cut short: seed 1 of "wide" never evaluated. The record names the seeds that were made and the
    # runs that were not, and the README's cell says it is incomplete.
    from vaekit.views.claims import result_cell

    (tmp_path / "out/all/wide/seed1/eval_k2_n16.json").unlink()
    sweep(path, jobs=1, out=tmp_path / "out", only_table=True)
    rec = json.loads((tmp_path / "results/tiny.json").read_text())
    assert rec["seeds"] == [0, 1] and rec["missing_runs"] == ["all/wide/seed1"] and rec["seeds_planned"] == [0, 1]
    assert "incomplete: 1 runs of the recipe's seeds 0, 1 not yet made" in result_cell(rec)
    for d in ("narrow", "wide"):
        next((tmp_path / f"out/all/{d}/seed1").glob("eval_k*.json"), Path("/nonexistent")).unlink(missing_ok=True)
    sweep(path, jobs=1, out=tmp_path / "out", only_table=True)
    rec = json.loads((tmp_path / "results/tiny.json").read_text())
    assert rec["seeds"] == [0] and len(rec["missing_runs"]) == 2  # no evaluation of seed 1 at all: not a seed made


def test_judge_calls_a_margin_inside_the_seed_spread_a_tie() -> None:
    from vaekit.run.sweep import judge

    s = lambda lo, hi: {"n": 3, "min": lo, "max": hi, "mean": (lo + hi) / 2}  # noqa: E731
    assert judge(s(1.0, 2.0), s(3.0, 4.0), "lower") == "better"
    assert judge(s(1.0, 3.5), s(3.0, 4.0), "lower") == "tie"
    assert judge(s(3.0, 4.0), s(1.0, 2.0), "lower") == "worse"
    assert judge(s(3.0, 4.0), s(1.0, 2.0), "higher") == "better"
    assert judge({"n": 1, "min": 1.0, "max": 1.0}, s(3.0, 4.0), "lower") == "untested"
    assert judge({"n": 0}, s(3.0, 4.0), "lower") == "missing"


def test_select_chooses_on_the_sweeps_evaluation_and_runs_the_final_measure_on_the_choice_alone(
        tmp_path: Path, data_dir: Path) -> None:
    # the evaluation (here: validation) gives the wider net the higher score; the final (test) measure runs once
    score = ("import json,sys,pathlib; d=pathlib.Path(sys.argv[1]); "
             "w=json.loads((d/'config.yaml').read_text().split('hidden:')[1].split(chr(10))[1].strip('- ') or '0'); "
             "(d/sys.argv[2]).write_text(json.dumps({'score': w}))")
    spec = {
        "name": "tiny_select", "results": str(tmp_path / "results/sel.json"),
        "evaluate": ["python", "-c", score, "{dir}", "eval_val.json"], "evaluation": "eval_val.json",
        "metric": {"key": "score", "better": "higher"},
        "select": {"final": ["python", "-c", score, "{dir}", "eval_test.json"], "evaluation": "eval_test.json"},
        "base": {"model": {"name": "vae", "hidden": [8], "latent_dim": 2},
                 "data": {"dir": str(data_dir), "batch_size": 32}, "train": TINY, "trainer": LIMITS},
        "runs": {"narrow": {}, "wide": {"model.hidden": [16]}},
    }
    path = tmp_path / "sel.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    sweep(path, jobs=1, out=tmp_path / "out")
    rec = json.loads((tmp_path / "results/sel.json").read_text())
    assert [r["value"]["mean"] for r in rec["rows"]] == [8, 16]
    assert rec["selection"]["chosen"] == {"group": "all", "run": "wide"}
    assert rec["selection"]["final"][0]["result"] == {"score": 16}
    assert (tmp_path / "out/all/wide/eval_test.json").exists()
    assert not (tmp_path / "out/all/narrow/eval_test.json").exists()  # the test set is read for the choice only


def test_two_rows_read_two_numbers_of_one_trained_run(tmp_path: Path, data_dir: Path) -> None:
    # TD-VAE's claim compares two rollouts of one model: a row ``same_as`` another reads its own key
    # (``metric.keys``), and an integer part of a key indexes a list (the last frame ahead).
    from vaekit.run.sweep import lookup

    assert lookup({"a": {"b": [1.0, 2.0, 3.0]}}, "a.b.-1") == 3.0
    assert lookup({"a": {"b": [1.0]}}, "a.b.1") is None and lookup({"a": [1.0]}, "a.x") is None
    per_seed = ("import json,sys,pathlib; d=pathlib.Path(sys.argv[1]); s=int(d.name[4:]); "
                "(d/'errors.json').write_text(json.dumps({'jump1': [9, 5 + s], 'jump5': [9, 2 + s]}))")
    spec = {
        "name": "tiny_keys", "seeds": [0, 1], "results": str(tmp_path / "results/keys.json"),
        "evaluate": ["python", "-c", per_seed, "{dir}"], "evaluation": "errors.json",
        "metric": {"key": "jump1.-1", "keys": {"jumps of 5": "jump5.-1"}, "better": "lower"},
        "compare": {"jumps of 5": "steps of 1"},
        "base": {"model": {"name": "vae", "hidden": [8], "latent_dim": 2},
                 "data": {"dir": str(data_dir), "batch_size": 32}, "train": TINY, "trainer": LIMITS},
        "runs": {"steps of 1": {}, "jumps of 5": {}}, "same_as": {"jumps of 5": "steps of 1"},
    }
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    sweep(path, jobs=1, out=tmp_path / "out")
    rec = json.loads((tmp_path / "results/keys.json").read_text())
    assert [r["value"]["values"] for r in rec["rows"]] == [[5, 6], [2, 3]]
    assert not (tmp_path / "out/all/jumps_of_5").exists()  # trained once
    assert rec["comparisons"][0]["verdict"] == "better"


def test_a_sweep_resumed_in_a_new_session_keeps_recorded_runs_and_trains_only_the_rest(
        tmp_path: Path, data_dir: Path) -> None:
    # Run folders do not outlive a session; the record does. A second session with the folders gone trains only
    # what the record lacks or what the recipe changed, and keeps the rest, sessions and budgets included.
    import shutil

    spec = {
        "name": "tiny_resume", "seeds": [0, 1], "results": str(tmp_path / "results/r.json"),
        "metric": {"key": "nll", "better": "lower"},
        "base": {"model": {"name": "vae", "hidden": [8], "latent_dim": 2},
                 "data": {"dir": str(data_dir), "batch_size": 32}, "train": TINY, "trainer": LIMITS,
                 "eval": {"nll_samples": 2, "limit": 16}},
        "runs": {"narrow": {}, "wide": {"model.hidden": [16]}},
    }
    path, out = tmp_path / "r.yaml", tmp_path / "out"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    sweep(path, jobs=2, out=out)
    first = json.loads((tmp_path / "results/r.json").read_text())
    assert "kept_from_record" not in first and len(first["digests"]) == 4  # one per run made

    # a session ended before seed 1 of "wide" was evaluated, and its folders are gone
    (out / "all/wide/seed1/eval_k2_n16.json").unlink()
    sweep(path, jobs=1, out=out, only_table=True)
    shutil.rmtree(out)
    said = sweep(path, out=out, status=True)  # where each run stands, nothing trained or written
    assert "all/narrow/seed1  kept from the record" in said and "all/wide/seed1    to train" in said
    assert said.endswith("4 runs: 3 kept from the record, 1 to train") and not out.exists()
    sweep(path, jobs=1, out=out)
    rec = json.loads((tmp_path / "results/r.json").read_text())
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("all/*/seed*")) == ["all/wide/seed1"]
    assert rec["kept_from_record"] == ["all/narrow/seed0", "all/narrow/seed1", "all/wide/seed0"]
    assert "missing_runs" not in rec and rec["seeds"] == [0, 1] and len(rec["sessions"]) == 4
    narrow = lambda r: next(x for x in r["rows"] if x["run"] == "narrow")["value"]["values"]  # noqa: E731
    assert narrow(rec) == narrow(first) and all(b for b in rec["budget"]["runs"].values())

    # a changed run is not the run recorded: "wide" trains again (both seeds), "narrow" is still kept
    spec["runs"]["wide"] = {"model.hidden": [12]}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    shutil.rmtree(out)
    assert "all/wide/seed0    to train (its recipe changed since the record)" in sweep(path, out=out, status=True)
    sweep(path, jobs=2, out=out)
    rec = json.loads((tmp_path / "results/r.json").read_text())
    assert rec["kept_from_record"] == ["all/narrow/seed0", "all/narrow/seed1"]
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("all/*/seed*")) == [
        "all/wide/seed0", "all/wide/seed1"]
    assert yaml.safe_load((out / "all/wide/seed0/config.yaml").read_text())["model"]["hidden"] == [12]
