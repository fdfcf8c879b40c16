"""A run folder read for the report: its recipe, its CSV log as series, its evaluations, its model if it loads."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from torch import nn

Series = dict[str, tuple[list[float], list[float]]]
KL_COLUMN = re.compile(r"^(train|val)/kl_(\d+)$")


@dataclass
class Run:
    """What a run directory holds, read once: the model (None if it cannot be loaded, with ``load_error``), its
    config, the logged columns (name -> (steps, values)), evaluations and metrics over steps."""

    path: Path
    name: str
    config_text: str
    model: nn.Module | None = None
    cfg: Any = None
    load_error: str = ""
    log: Series = field(default_factory=dict)
    evals: dict[str, dict[str, Any]] = field(default_factory=dict)
    metric_steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.path.name})" if self.name != self.path.name else self.name

    @property
    def model_name(self) -> str:
        return self.cfg.model_name if self.cfg is not None else "?"


def read_log(path: Path) -> Series:
    """logs/metrics.csv as column -> (steps, values), each column keeping only the rows that hold a value."""
    out: Series = {}
    if not path.exists():
        return out
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                step = float(row.get("step") or "nan")
            except ValueError:
                continue
            for key, value in row.items():
                if key in ("step", "epoch") or not value:
                    continue
                try:
                    v = float(value)
                except ValueError:
                    continue
                xs, ys = out.setdefault(key, ([], []))
                xs.append(step)
                ys.append(v)
    return out


def read_run(path: str | Path) -> Run:
    """A run directory (or its weights file) read for the report; a model that fails to load is reported, not
    fatal, so the curves of a broken or unfinished run still show."""
    from vaekit.run.io import load_run

    path = Path(path)
    folder = path if path.is_dir() else (path.parent.parent if path.parent.name == "checkpoints" else path.parent)
    if not folder.exists():
        raise FileNotFoundError(f"{path}: no such run directory")
    cfg_file = folder / "config.yaml"
    run = Run(folder, folder.name, cfg_file.read_text() if cfg_file.exists() else "")
    try:
        run.model, run.cfg, _ = load_run(path)
        run.name = run.cfg.name or folder.name
        if not run.config_text:
            from vaekit.run.config import plain

            run.config_text = yaml.safe_dump(plain(run.cfg.to_dict()), sort_keys=False)
    except Exception as e:  # a report of a half-written or foreign run still shows its logs
        run.load_error = f"{type(e).__name__}: {e}"
    run.log = read_log(folder / "logs" / "metrics.csv")
    for f in sorted(folder.glob("eval_*.json")):
        try:
            run.evals[f.stem] = json.loads(f.read_text())
        except (OSError, ValueError) as e:
            run.evals[f.stem] = {"error": f"unreadable ({e})"}
    for f in sorted((folder / "metrics").glob("step*.json")):
        try:
            run.metric_steps.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            continue
    return run


# -- building blocks -----------------------------------------------------------------------------------------------
