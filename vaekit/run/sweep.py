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

Override values may name ``{root}`` (the sweep directory) and ``{group}``, e.g. a CVAE's
``train.init.baseline: "{root}/{group}/regressor"``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from vaekit.run.config import ConfigError, load_config, read_yaml


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def _overrides(d: dict[str, Any], **names: str) -> list[str]:
    return [f"{k}={json.dumps(v.format(**names) if isinstance(v, str) else v)}" for k, v in d.items()]


def plan(spec: dict[str, Any], root: Path) -> list[dict[str, Any]]:
    """Every (group, run) to train: its directory and its override list (validated now, not mid-sweep)."""
    same_as = spec.get("same_as", {})
    jobs = []
    for group, g_over in spec.get("groups", {"all": {}}).items():
        for run, r_over in spec["runs"].items():
            if run in same_as:
                continue
            if not isinstance(g_over or {}, dict) or not isinstance(r_over or {}, dict):
                raise ConfigError(f"sweep {group!r} / {run!r}: overrides must be a mapping of key: value")
            names = {"root": str(root), "group": group}
            overrides = _overrides(g_over or {}, **names) + _overrides(r_over or {}, **names)
            load_config(spec["base"], overrides)  # raises ConfigError naming the bad key
            jobs.append({"group": group, "run": run, "dir": root / group / slug(run), "overrides": overrides,
                         "first": run in spec.get("depends", {}).values()})
    return jobs


def _run_one(job: dict[str, Any], base_file: Path, log: Path) -> float:
    """Train (unless a finished run is there) and evaluate (unless already evaluated) in subprocesses."""
    start = time.perf_counter()
    d: Path = job["dir"]
    vaekit = [sys.executable, "-m", "vaekit.cli"]
    steps = []
    if not (d / "trained").exists():
        # --resume auto: a run cut short (Ctrl-C, a crash) goes on from its checkpoint
        steps.append(([*vaekit, "train", str(base_file), *job["overrides"], "--out", str(d), "--resume", "auto"],
                      d / "trained"))
    if not list(d.glob("eval_k*.json")):
        steps.append(([*vaekit, "evaluate", str(d), "--quiet"], None))
    with open(log, "a") as f:
        for cmd, marker in steps:
            f.write(f"$ {' '.join(cmd)}\n")
            f.flush()
            subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True)
            if marker is not None:
                marker.write_text("finished\n")
    return time.perf_counter() - start


def table(spec: dict[str, Any], root: Path) -> tuple[str, list[dict[str, Any]]]:
    same_as, ref = spec.get("same_as", {}), spec.get("reference", {})
    rows, lines = [], []
    lines.append("| group | run | test NLL, ours | paper's NLL | ELBO, ours | active units | images | k |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for group in spec.get("groups", {"all": {}}):
        for run in spec["runs"]:
            d = root / group / slug(same_as.get(run, run))
            found = sorted(d.glob("eval_k*.json"))
            paper = ref.get(group, {}).get(run)
            row = {"group": group, "run": run, "paper_nll": paper}
            if found:
                r = json.loads(found[-1].read_text())
                row.update(nll=r.get("nll"), elbo=r.get("elbo"), active_units=r.get("active_units", {}),
                           n_images=r.get("n_examples", r.get("n_images")), k=r.get("k", r.get("nll_estimator")))
            rows.append(row)
            fmt = lambda v: f"{v:.2f}" if isinstance(v, float) else "—"  # noqa: E731
            au = "/".join(str(v) for v in row.get("active_units", {}).values()) or "—"
            lines.append(f"| {group} | {run} | {fmt(row.get('nll'))} | {fmt(row['paper_nll'])} | "
                         f"{fmt(row.get('elbo'))} | {au} | {row.get('n_images', '—')} | {row.get('k', '—')} |")
    return "\n".join(lines), rows


def sweep(path: str | Path, jobs: int = 1, out: str | Path | None = None, only_table: bool = False) -> str:
    spec = read_yaml(Path(path))
    if not isinstance(spec, dict) or "base" not in spec or not isinstance(spec.get("runs"), dict):
        raise ConfigError(f"{path}: a sweep needs 'base' and 'runs' sections (a mapping of run names)")
    if not isinstance(spec.get("groups", {}), dict):
        raise ConfigError(f"{path}: 'groups' must be a mapping of group names to overrides")
    root = Path(out or Path("runs") / spec.get("name", Path(path).stem))
    todo = plan(spec, root)  # every run's overrides checked before the sweep folder is made
    root.mkdir(parents=True, exist_ok=True)
    base_file = root / "base.yaml"
    base_file.write_text(yaml.safe_dump(spec["base"], sort_keys=False))
    if not only_table:
        log = root / "sweep.log"
        print(f"vaekit: sweep of {len(todo)} runs, {jobs} at a time; log in {log}")
        for stage in ([j for j in todo if j["first"]], [j for j in todo if not j["first"]]):
            with ThreadPoolExecutor(jobs) as pool:
                futures = {pool.submit(_run_one, j, base_file, log): j for j in stage}
                for fut, job in futures.items():
                    try:
                        print(f"  {job['group']} / {job['run']}: {fut.result():.0f} s", flush=True)
                    except subprocess.CalledProcessError as e:
                        print(f"  {job['group']} / {job['run']}: FAILED ({e.returncode}); see {log}", flush=True)
    md, rows = table(spec, root)
    (root / "table.md").write_text(md + "\n")
    (root / "table.json").write_text(json.dumps(rows, indent=2))
    return md
