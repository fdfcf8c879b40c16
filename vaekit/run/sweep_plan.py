"""A sweep's runs: which there are (``plan``), where each lives, what makes it that run (``digest``), and which
of them an earlier session's record already holds (``kept``), so a sweep longer than a session is finished over
several. ``vaekit.run.sweep`` trains, evaluates and records them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from vaekit.run.config import ConfigError, load_config, read_yaml

RECORD_VERSION = 1


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def _overrides(d: dict[str, Any], **names: str) -> list[str]:
    return [f"{k}={json.dumps(v.format(**names) if isinstance(v, str) else v)}" for k, v in d.items()]


def seeds_of(spec: dict[str, Any]) -> list[int] | None:
    seeds = spec.get("seeds")
    if seeds is None:
        return None
    if not isinstance(seeds, list) or not seeds or not all(isinstance(x, int) and not isinstance(x, bool)
                                                           for x in seeds):
        raise ConfigError(f"sweep seeds: a list of integers, got {seeds!r}")
    return seeds


def run_dir(root: Path, group: str, run: str, seed: int | None) -> Path:
    d = root / group / slug(run)
    return d if seed is None else d / f"seed{seed}"


def with_base(spec: dict[str, Any]) -> dict[str, Any]:
    """``base`` is a recipe inline, or the path of one (``base: configs/beta_vae_dsprites.yaml``), so a sweep and
    the recipe people train by hand cannot drift apart."""
    if isinstance(spec.get("base"), str):
        path = Path(spec["base"])
        if not path.is_file():
            raise ConfigError(f"sweep base: {path} is no recipe file")
        spec = {**spec, "base": read_yaml(path)}
    return spec


def plan(spec: dict[str, Any], root: Path) -> list[dict[str, Any]]:
    """Every (group, run, seed) to train: its directory and its override list (validated now, not mid-sweep)."""
    spec = with_base(spec)
    same_as = spec.get("same_as", {})
    seeds = seeds_of(spec)
    jobs = []
    # seed by seed: a sweep cut short has whole tables of the first seeds, not every seed of the first rows
    for seed in seeds or [None]:
        for group, g_over in spec.get("groups", {"all": {}}).items():
            for run, r_over in spec["runs"].items():
                if run in same_as:
                    continue
                if not isinstance(g_over or {}, dict) or not isinstance(r_over or {}, dict):
                    raise ConfigError(f"sweep {group!r} / {run!r}: overrides must be a mapping of key: value")
                names = {"root": str(root), "group": group, "seed": "" if seed is None else str(seed)}
                overrides = _overrides(g_over or {}, **names) + _overrides(r_over or {}, **names)
                if seed is not None:
                    overrides.append(f"train.seed={seed}")
                load_config(spec["base"], overrides)  # raises ConfigError naming the bad key
                jobs.append({"group": group, "run": run, "seed": seed, "dir": run_dir(root, group, run, seed),
                             "overrides": overrides, "first": run in spec.get("depends", {}).values()})
    return jobs


def digest(spec: dict[str, Any], job: dict[str, Any]) -> str:
    """What makes a run that run: the base recipe, the run's overrides and how it is evaluated."""
    what = {"base": spec["base"], "overrides": job["overrides"], "weights": spec.get("weights", "best"),
            "evaluate": spec.get("evaluate"), "evaluation": spec.get("evaluation", "eval_k*.json")}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def kept(spec: dict[str, Any], root: Path, jobs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The runs of the sweep's earlier record that stand for themselves now: run folder (relative to the sweep
    directory) -> its seed entry, sessions and budget, for each run whose digest matches the recipe's today."""
    path = Path(spec["results"]) if spec.get("results") else None
    if path is None or not path.is_file():
        return {}
    rec = json.loads(path.read_text())
    if rec.get("record_version") != RECORD_VERSION:
        return {}
    same_as, old = spec.get("same_as", {}), rec.get("digests") or {}
    now = {str(j["dir"].relative_to(root)): digest(spec, j) for j in jobs}  # jobs: plan(spec, root)
    where = lambda group, run, seed: str(run_dir(Path(), group, same_as.get(run, run), seed))  # noqa: E731
    sel = rec.get("selection") or {}
    finals = {where(sel["chosen"]["group"], sel["chosen"]["run"], f.get("seed")): f
              for f in sel.get("final", [])} if sel.get("chosen") else {}
    out: dict[str, dict[str, Any]] = {}
    for row in rec.get("rows", []):
        for entry in row.get("seeds", []):
            rel = where(row["group"], row["run"], entry.get("seed"))
            if rel in now and old.get(rel) == now[rel] and rel not in out:
                out[rel] = {"entry": entry, "budget": (rec.get("budget") or {}).get("runs", {}).get(rel),
                            "final": finals.get(rel),
                            "sessions": [s for s in rec.get("sessions", [])
                                         if Path(s.get("run", "")).parts[-len(Path(rel).parts):]
                                         == Path(rel).parts]}
    # a run another run starts from (``depends``) must be on disk while that one still has to train
    for group in spec.get("groups", {"all": {}}):
        for after, first in (spec.get("depends") or {}).items():
            for seed in seeds_of(spec) or [None]:
                if where(group, after, seed) not in out:
                    out.pop(where(group, first, seed), None)
    return out


def held(keep: dict[str, dict[str, Any]], root: Path, d: Path) -> dict[str, Any] | None:
    """The record's entry that stands for run folder ``d``: only when the folder is gone (a folder that is there
    is the run, evaluated or not) and the record holds the run with today's digest (``kept``)."""
    return None if d.exists() else keep.get(str(d.relative_to(root)))


def evaluation_file(d: Path, pattern: str = "eval_k*.json") -> Path | None:
    found = sorted(d.glob(pattern))
    return found[-1] if found else None


def states(spec: dict[str, Any], root: Path, jobs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Where each run of a sweep stands, for ``vaekit sweep --status``: run folder (relative) and its state."""
    keep, pattern = kept(spec, root, jobs), spec.get("evaluation", "eval_k*.json")
    recorded = {}
    if spec.get("results") and Path(spec["results"]).is_file():
        recorded = json.loads(Path(spec["results"]).read_text()).get("digests") or {}
    out = []
    for j in jobs:
        rel, d = str(j["dir"].relative_to(root)), j["dir"]
        if held(keep, root, d):
            state = "kept from the record"
        elif d.exists():
            state = ("evaluated" if evaluation_file(d, pattern) else "trained, to evaluate" if (d / "trained").exists()
                     else "started: resumes from its checkpoint")
        elif rel in recorded:
            state = "to train (its recipe changed since the record)"
        else:
            state = "to train"
        out.append((rel, state))
    return out
