"""Sweeps: one YAML names a base recipe, groups and runs; each group x run is trained and evaluated in its
own process (``--jobs`` at a time), finished runs are skipped, and a table is written with the paper's
numbers beside ours (markdown and JSON).

    name: iwae_table
    base: {model: {...}, data: {...}, train: {...}, eval: {...}}
    groups: {one_layer: {model.latent_dims: [50]}, ...}       # overrides per group (table sections)
    runs: {"VAE k=5": {model.objective: vae, model.k: 5}, ...}  # overrides per run (table rows)
    same_as: {"IWAE k=1": "VAE k=1"}                           # rows that are the same model, trained once
    depends: {CVAE: regressor}                                 # train these runs after those (per group)
    reference: {one_layer: {"VAE k=5": 86.47}, ...}            # the paper's test NLL (nats)

    seeds: [0, 1, 2]                                          # every run once per seed (train.seed)
    weights: last                                              # evaluate the last weights (default: best)
    results: results/iwae_table.json                           # the record of the whole sweep (below)
    metric: {key: nll, better: lower, unit: nats}              # the number each row reports (an eval key)
    metric: {key: a.b, keys: {"row": a.c.-1}, digits: 4}       # ... or, for a row, another key (e.g. a row
                                                               # ``same_as`` another: two numbers of one run)
    compare: {"IWAE k=5": "VAE k=5"}                           # claims: row A beats row B, in every group
    readme: {experiment: "...", reference: "..."}              # its row in the README's Results table
    evaluate: [python, -m, vaekit.views.speech_eval, "{dir}", --split, val, --out, "{dir}/eval_val.json"]
    evaluation: eval_val.json                                  # the file each row reads (default eval_k*.json)
    select: {final: [...], evaluation: eval_test.json}         # choose the best row on those (validation)
                                                               # numbers, then run ``final`` on it alone

Override values may name ``{root}`` (the sweep directory), ``{group}`` and ``{seed}``, e.g. a CVAE's
``train.init.baseline: "{root}/{group}/regressor/seed{seed}"``. With ``seeds``, a run's folder is
``ROOT/GROUP/RUN/seedS``.

The record (``results:``) holds what a reader needs to trust or remake each number: the command, the commit
and machine of every training session (each run's ``run.json``), torch's version, the seeds, the budget and
wall time, the data split, every evaluation setting, each seed's value with mean and range, and each claim of
``compare`` judged on the ranges: ``better`` only where they do not overlap, else ``tie``
(``vaekit.views.claims`` turns records into the README's Results table).

Sweeps outlive sessions: run folders (``runs/``) are not kept, the record is. A run whose folder is gone and
whose evaluation the record holds is kept from the record, not retrained, while its recipe is the same
(``digests``: the base recipe, its overrides and the evaluation, hashed per run); change any of those, or delete
the record, and it is trained again. So a grid longer than a session is finished over several sessions.
"""

from __future__ import annotations

import json
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from vaekit.run import provenance
from vaekit.run.config import ConfigError, read_yaml
from vaekit.run.sweep_plan import (
    RECORD_VERSION,
    digest,
    evaluation_file,
    held,
    kept,
    plan,
    run_dir,
    seeds_of,
    states,
    with_base,
)


def _command(template: list[str], d: Path) -> list[str]:
    """A recipe's command with ``{dir}`` filled in; ``python`` is this interpreter, ``vaekit`` this vaekit."""
    cmd = [str(a).replace("{dir}", str(d)) for a in template]
    head = {"python": [sys.executable], "vaekit": [sys.executable, "-m", "vaekit.cli"]}.get(cmd[0], cmd[:1])
    return [*head, *cmd[1:]]


def _logged(cmd: list[str], log: Path) -> None:
    with open(log, "a") as f:
        f.write(f"$ {shlex.join(cmd)}\n")
        f.flush()
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True)


def _run_one(job: dict[str, Any], base_file: Path, log: Path, weights: str, spec: dict[str, Any]) -> float:
    """Train (unless a finished run is there) and evaluate (unless already evaluated) in subprocesses."""
    start = time.perf_counter()
    d: Path = job["dir"]
    vaekit = [sys.executable, "-m", "vaekit.cli"]
    steps = []
    if not (d / "trained").exists():
        # --resume auto: a run cut short (Ctrl-C, a crash) goes on from its checkpoint
        steps.append(([*vaekit, "train", str(base_file), *job["overrides"], "--out", str(d), "--resume", "auto"],
                      d / "trained"))
    if evaluation_file(d, spec.get("evaluation", "eval_k*.json")) is None:
        if spec.get("evaluate"):
            steps.append((_command(spec["evaluate"], d), None))
        else:
            target = d / "model.safetensors" if weights == "last" else d
            steps.append(([*vaekit, "evaluate", str(target), "--quiet"], None))
    for cmd, marker in steps:
        _logged(cmd, log)
        if marker is not None:
            marker.write_text("finished\n")
    return time.perf_counter() - start


def _curves(d: Path) -> dict[str, Any] | None:
    """The metrics a run scored while it trained (``train.metrics``, RUN/metrics/stepN.json), with the settings
    they were made with: often reduced sample sizes, so they are curves, never final scores."""
    points = [json.loads(p.read_text()) for p in sorted((d / "metrics").glob("step*.json"))]
    if not points:
        return None
    cfg = read_yaml(d / "config.yaml") if (d / "config.yaml").exists() else {}
    train = cfg.get("train") or {}
    from vaekit.run.evaluate import effective_metric_settings

    return {"label": "during training, curves only (not final scores)",
            "metric_settings": effective_metric_settings(train.get("metrics") or [], train.get("metric_settings")),
            "points": points}


def _spread(values: list[float]) -> dict[str, Any]:
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values), "n": len(values),
            "values": values} if values else {"n": 0, "values": []}


def lookup(result: Any, key: str) -> Any:
    """A dotted key into an evaluation (``nll``, ``metrics.mig.score``); an integer part indexes a list
    (``model.jump5.position_mse.-1``: the last frame ahead)."""
    for part in key.split("."):
        if isinstance(result, list) and part.lstrip("-").isdigit() and -len(result) <= int(part) < len(result):
            result = result[int(part)]
        elif isinstance(result, dict) and part in result:
            result = result[part]
        else:
            return None
    return result


def table(spec: dict[str, Any], root: Path, keep: dict[str, dict[str, Any]] | None = None,
          ) -> tuple[str, list[dict[str, Any]]]:
    """One row per (group, run): each seed's evaluation and, over the seeds, the metric's mean and range. A run
    whose folder is gone reads its entry in ``keep`` (runs kept from the record), if it is there; a folder that
    is there is the run, evaluated or not."""
    keep = keep or {}
    same_as, ref = spec.get("same_as", {}), spec.get("reference", {})
    key = spec.get("metric", {}).get("key", "nll")
    row_keys = spec.get("metric", {}).get("keys", {})  # a row that reads another number of the same evaluation
    seeds = seeds_of(spec)
    rows, lines = [], []
    lines.append(f"| group | run | {key}, ours (mean, min-max over seeds) | paper | ELBO, ours | active units | "
                 "test examples | k | seeds |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    fmt = lambda v: f"{v:.2f}" if isinstance(v, float) else "—"  # noqa: E731
    for group in spec.get("groups", {"all": {}}):
        for run in spec["runs"]:
            row: dict[str, Any] = {"group": group, "run": run, "paper": ref.get(group, {}).get(run)}
            if spec.get("reference") is not None:
                row["paper_nll"] = row["paper"]  # the name older tables used
            per_seed = []
            for seed in seeds or [None]:
                d = run_dir(root, group, same_as.get(run, run), seed)
                found = evaluation_file(d, spec.get("evaluation", "eval_k*.json"))
                old = held(keep, root, d)
                if found or old:
                    r = json.loads(found.read_text()) if found else old["entry"]["result"]
                    per_seed.append({"seed": seed, "value": lookup(r, row_keys.get(run, key)),
                                     "elbo": r.get("elbo"),
                                     "active_units": r.get("active_units", {}),
                                     "n_examples": r.get("n_examples", r.get("n_images")),
                                     "k": r.get("k", r.get("nll_estimator")),
                                     "evaluation": str(found) if found else old["entry"]["evaluation"],
                                     "result": r,  # the record stands alone: run folders are not kept
                                     "curves": _curves(found.parent) if found else old["entry"].get("curves"),
                                     **({} if found else {"kept_from_record": True})})
            values = [p["value"] for p in per_seed if isinstance(p["value"], (int, float))]
            row.update(seeds=per_seed, value=_spread(values))
            # more numbers of the same evaluations, each with its spread over the seeds (``also: [keys]``)
            row["also"] = {k: _spread([v for p in per_seed if isinstance(v := lookup(p["result"], k), (int, float))])
                           for k in spec.get("also", [])}
            if per_seed:  # the flat fields of one-seed tables: the first seed's, the metric's mean
                first = per_seed[0]
                row.update(elbo=first["elbo"], active_units=first["active_units"], n_images=first["n_examples"],
                           k=first["k"], **{key.replace(".", "_"): row["value"].get("mean")})
            rows.append(row)
            s = row["value"]
            cell = (f"{s['mean']:.2f}" + (f" ({s['min']:.2f}-{s['max']:.2f})" if s["n"] > 1 else "")
                    if s["n"] else "—")
            au = "/".join(str(v) for v in row.get("active_units", {}).values()) or "—"
            lines.append(f"| {group} | {run} | {cell} | {fmt(row['paper'])} | {fmt(row.get('elbo'))} | {au} | "
                         f"{row.get('n_images', '—')} | {row.get('k', '—')} | {s['n']} |")
    return "\n".join(lines), rows


def judge(a: dict[str, Any], b: dict[str, Any], better: str) -> str:
    """``better`` where a's range over seeds lies wholly on the better side of b's; ``tie`` where they overlap (a
    margin inside the seed spread); ``untested`` with fewer than two seeds a side; ``worse`` the other way."""
    if a.get("n", 0) == 0 or b.get("n", 0) == 0:
        return "missing"
    if a["n"] < 2 or b["n"] < 2:
        return "untested"
    lo = better == "lower"
    if (a["max"] < b["min"]) if lo else (a["min"] > b["max"]):
        return "better"
    if (a["min"] > b["max"]) if lo else (a["max"] < b["min"]):
        return "worse"
    return "tie"


def selected(spec: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row whose mean (over seeds) of the metric is best: the choice made on the sweep's own evaluations,
    which a recipe with ``select`` computes on validation data."""
    scored = [r for r in rows if r["value"].get("n")]
    if not scored:
        return None
    sign = -1 if spec.get("metric", {}).get("better", "lower") == "higher" else 1
    return min(scored, key=lambda r: sign * r["value"]["mean"])


def _sessions(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for j in jobs:
        rec = provenance.read(j["dir"]) or {}
        for s in rec.get("sessions", []):
            out.append({"run": str(j["dir"]), **s})
    return out


def _selection(spec: dict[str, Any], rows: list[dict[str, Any]], keep: dict[str, dict[str, Any]],
               ) -> dict[str, Any]:
    chosen = selected(spec, rows)
    if chosen is None:
        return {"chosen": None}
    finals = []
    for seed_row in chosen["seeds"]:
        if seed_row.get("kept_from_record"):  # its final measure was made with it, in an earlier session
            rel = str(run_dir(Path(), chosen["group"], spec.get("same_as", {}).get(chosen["run"], chosen["run"]),
                              seed_row["seed"]))
            finals.append((keep.get(rel) or {}).get("final") or {"seed": seed_row["seed"], "evaluation": None,
                                                                 "result": None})
            continue
        found = evaluation_file(Path(seed_row["evaluation"]).parent, spec["select"]["evaluation"])
        finals.append({"seed": seed_row["seed"], "evaluation": str(found) if found else None,
                       "result": json.loads(found.read_text()) if found else None})
    return {"chosen": {"group": chosen["group"], "run": chosen["run"]}, "on": spec.get("evaluation"),
            "by": spec.get("metric"), "final_command": spec["select"]["final"], "final": finals}


def record(spec: dict[str, Any], recipe: Path, root: Path, rows: list[dict[str, Any]], jobs_flag: int,
           keep: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The results file of a sweep: every field a reader needs to trust or remake its numbers. Runs kept from
    the earlier record bring their sessions and budgets with them."""
    keep = keep or {}
    todo = plan(spec, root)
    pattern = spec.get("evaluation", "eval_k*.json")
    from_record = {str(j["dir"].relative_to(root)) for j in todo if held(keep, root, j["dir"])}
    sessions = _sessions([j for j in todo if str(j["dir"].relative_to(root)) not in from_record])
    sessions += [s for rel in sorted(from_record) for s in keep[rel]["sessions"]]
    key = spec.get("metric", {}).get("key", "nll")
    better = spec.get("metric", {}).get("better", "lower")
    commits = sorted({f"{s.get('commit')}{'+dirty' if s.get('dirty') else ''}" for s in sessions})
    budgets = {}
    for j in todo:
        if str(j["dir"].relative_to(root)) in from_record:
            budgets[str(j["dir"].relative_to(root))] = keep[str(j["dir"].relative_to(root))]["budget"]
            continue
        rec = provenance.read(j["dir"]) or {}
        cfg = read_yaml(j["dir"] / "config.yaml") if (j["dir"] / "config.yaml").exists() else {}
        budgets[str(j["dir"].relative_to(root))] = {
            "epochs": rec.get("epochs"), "steps": rec.get("steps"), "wall_s": rec.get("wall_s"),
            "max_epochs": (cfg.get("train") or {}).get("epochs"),
            "max_steps": (cfg.get("trainer") or {}).get("max_steps")}
    on_disk = [j["dir"] / "config.yaml" for j in todo if (j["dir"] / "config.yaml").exists()]
    first_cfg = read_yaml(on_disk[0]) if on_disk else spec["base"]
    evals = [p["result"] for r in rows for p in r["seeds"]]
    from vaekit.run.evaluate import effective_metric_settings

    ev = dict(first_cfg.get("eval") or {})
    if ev.get("metrics"):
        ev["metric_settings"] = effective_metric_settings(ev["metrics"], ev.get("metric_settings"))
    comparisons = []
    for a, b in (spec.get("compare") or {}).items():
        for group in spec.get("groups", {"all": {}}):
            ra = next(r for r in rows if r["group"] == group and r["run"] == a)
            rb = next(r for r in rows if r["group"] == group and r["run"] == b)
            comparisons.append({"group": group, "a": a, "b": b, "verdict": judge(ra["value"], rb["value"], better),
                                "a_spread": {k: ra["value"].get(k) for k in ("mean", "min", "max", "n")},
                                "b_spread": {k: rb["value"].get(k) for k in ("mean", "min", "max", "n")}})
    planned = seeds_of(spec) or [first_cfg.get("train", {}).get("seed", 0)]
    missing = [str(j["dir"].relative_to(root)) for j in todo
               if evaluation_file(j["dir"], pattern) is None and str(j["dir"].relative_to(root)) not in from_record]
    evaluated = {p["seed"] for r in rows for p in r["seeds"]}
    done_seeds = [s for s in planned if s in evaluated] if seeds_of(spec) else planned
    machines = {json.dumps(s.get("machine"), sort_keys=True) for s in sessions}
    devices = sorted({(s.get("device") or {}).get("name", "?") for s in sessions})
    return {
        "record_version": RECORD_VERSION,
        "experiment": spec.get("name", recipe.stem),
        "claim": spec.get("claim"),
        "readme": spec.get("readme"),
        "command": [f"vaekit sweep {recipe} --jobs {jobs_flag}"],
        "recipe": str(recipe),
        "commit": commits[0] if len(commits) == 1 else commits,
        "machine": [json.loads(m) for m in sorted(machines)],
        "device": devices,
        "torch": sorted({(s.get("machine") or {}).get("torch", "?") for s in sessions}),
        "seeds": done_seeds,
        # a sweep cut short (the session ended): what the recipe plans, and the runs not yet evaluated
        **({"seeds_planned": planned, "missing_runs": missing} if missing else {}),
        "budget": {"runs": budgets,
                   "wall_s_total": round(sum((b or {}).get("wall_s") or 0.0 for b in budgets.values()), 1)},
        "data_split": {"data": first_cfg.get("data"),
                       "test_examples": sorted({e.get("n_examples") for e in evals if e.get("n_examples")}),
                       "selection": "best validation checkpoint (model.monitor)" if spec.get("weights") != "last"
                       else "last weights (no selection)"},
        "metric": {"key": key, "better": better, "unit": spec.get("metric", {}).get("unit"),
                   **({"digits": spec["metric"]["digits"]} if "digits" in spec.get("metric", {}) else {})},
        "metric_settings": ev,
        "reference": spec.get("reference"),
        "rows": rows,
        "comparisons": comparisons,
        **({"selection": _selection(spec, rows, keep)} if spec.get("select") else {}),
        "sessions": sessions,
        # per run folder, what it was trained and evaluated from: an unchanged run is kept by the next session
        "digests": {str(j["dir"].relative_to(root)): digest(spec, j) for j in todo
                    if str(j["dir"].relative_to(root)) not in missing},
        **({"kept_from_record": sorted(from_record)} if from_record else {}),
    }


def sweep(path: str | Path, jobs: int = 1, out: str | Path | None = None, only_table: bool = False,
          status: bool = False) -> str:
    spec = read_yaml(Path(path))
    if not isinstance(spec, dict) or "base" not in spec or not isinstance(spec.get("runs"), dict):
        raise ConfigError(f"{path}: a sweep needs 'base' and 'runs' sections (a mapping of run names)")
    spec = with_base(spec)
    if not isinstance(spec.get("groups", {}), dict):
        raise ConfigError(f"{path}: 'groups' must be a mapping of group names to overrides")
    if spec.get("weights", "best") not in ("best", "last"):
        raise ConfigError(f"{path}: weights must be best or last, got {spec['weights']!r}")
    root = Path(out or Path("runs") / spec.get("name", Path(path).stem))
    todo = plan(spec, root)  # every run's overrides checked before the sweep folder is made
    if status:  # nothing trained, evaluated or written
        rows = states(spec, root, todo)
        width = max(len(r) for r, _ in rows)
        counts = {s: sum(1 for _, x in rows if x == s) for s in dict.fromkeys(x for _, x in rows)}
        return "\n".join([*(f"{r:<{width}}  {x}" for r, x in rows),
                          f"{len(rows)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items())])
    root.mkdir(parents=True, exist_ok=True)
    base_file = root / "base.yaml"
    base_file.write_text(yaml.safe_dump(spec["base"], sort_keys=False))
    keep = kept(spec, root, todo)
    todo = [j for j in todo if not held(keep, root, j["dir"])]
    if keep and not only_table:
        print(f"vaekit: {len(keep)} runs kept from {spec['results']} (trained in an earlier session, recipe "
              "unchanged); delete it to train them again")
    if not only_table:
        log = root / "sweep.log"
        print(f"vaekit: sweep of {len(todo)} runs, {jobs} at a time; log in {log}")
        for stage in ([j for j in todo if j["first"]], [j for j in todo if not j["first"]]):
            with ThreadPoolExecutor(jobs) as pool:
                futures = {pool.submit(_run_one, j, base_file, log, spec.get("weights", "best"), spec): j
                           for j in stage}
                for fut, job in futures.items():
                    seed = "" if job["seed"] is None else f" / seed {job['seed']}"
                    try:
                        print(f"  {job['group']} / {job['run']}{seed}: {fut.result():.0f} s", flush=True)
                    except subprocess.CalledProcessError as e:
                        print(f"  {job['group']} / {job['run']}{seed}: FAILED ({e.returncode}); see {log}",
                              flush=True)
    md, rows = table(spec, root, keep)
    if spec.get("select") and not only_table:
        chosen = selected(spec, rows)
        if chosen is not None:  # the final measure, on the chosen row alone: the test set is read once
            for seed_row in chosen["seeds"]:
                if seed_row.get("kept_from_record"):
                    continue
                d = Path(seed_row["evaluation"]).parent
                if evaluation_file(d, spec["select"]["evaluation"]) is None:
                    _logged(_command(spec["select"]["final"], d), root / "sweep.log")
    (root / "table.md").write_text(md + "\n")
    (root / "table.json").write_text(json.dumps(rows, indent=2))
    if spec.get("results"):
        rec = record(spec, Path(path), root, rows, jobs, keep)
        dest = Path(spec["results"])
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(rec, indent=2) + "\n")
        print(f"vaekit: record in {dest}")
    return md
