"""Where a number came from: the code (commit, dirty or not), the machine, the device, the library versions and
the wall time of each training session, written to ``RUN/run.json`` so a results record can cite them.

A run resumed three times has four sessions; each names its own commit, so a record can tell a run trained on
one commit from one whose code changed between resumes."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

import vaekit

SOURCE = Path(vaekit.__file__).resolve().parent.parent  # the checkout vaekit runs from


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(SOURCE), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@cache
def code() -> dict[str, Any]:
    """The commit vaekit runs from and whether its tracked files differ from it (None outside a git checkout)."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", "vaekit", "configs", "pyproject.toml")
    return {"commit": commit, "dirty": bool(status) if status is not None else None,
            "vaekit_version": getattr(vaekit, "__version__", None)}


@cache
def machine() -> dict[str, Any]:
    """CPU model and cores, the OS, Python and the libraries whose versions change numbers."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import lightning
    import numpy

    versions = {"python": platform.python_version(), "torch": torch.__version__, "lightning": lightning.__version__,
                "numpy": numpy.__version__}
    try:
        import sklearn

        versions["scikit-learn"] = sklearn.__version__
    except ImportError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "os": platform.platform(), **versions}


def device(accelerator: torch.device | str) -> dict[str, Any]:
    """The training device in words: ``cpu (N threads)`` or the CUDA device's name, with CUDA's version."""
    dev = torch.device(accelerator)
    if dev.type == "cuda":
        return {"type": "cuda", "name": torch.cuda.get_device_name(dev), "cuda": torch.version.cuda}
    return {"type": dev.type, "name": f"{dev.type} ({torch.get_num_threads()} threads)"}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "run.json"
    return json.loads(path.read_text()) if path.exists() else None


class Provenance(Callback):
    """Appends this training session to ``run.json``: command line, code, machine, device, start and end, the
    steps and epochs it went from and to. Rewritten atomically at the start and the end of the session (and
    after each epoch, so a killed session still shows how far it came)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / "run.json"
        self.session: dict[str, Any] = {}
        self.start = 0.0

    def _write(self, trainer: L.Trainer) -> None:
        if not trainer.is_global_zero:
            return
        self.session.update(end=now(), wall_s=round(time.perf_counter() - self.start, 1),
                            to_step=trainer.global_step, to_epoch=trainer.current_epoch)
        record = read(self.path.parent) or {"sessions": []}
        sessions = [s for s in record["sessions"] if s.get("start") != self.session["start"]]
        record["sessions"] = [*sessions, self.session]
        record["wall_s"] = round(sum(s.get("wall_s", 0.0) for s in record["sessions"]), 1)
        record["steps"], record["epochs"] = trainer.global_step, trainer.current_epoch
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(self.path)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()
        self.session = {"command": " ".join(["vaekit", *sys.argv[1:]]) if Path(sys.argv[0]).name in (
                            "vaekit", "cli.py", "__main__.py") else " ".join(sys.argv),
                        "start": now(), **code(), "machine": machine(), "device": device(pl_module.device),
                        "world_size": trainer.world_size, "precision": str(trainer.precision),
                        "from_step": trainer.global_step, "from_epoch": trainer.current_epoch}
        self._write(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer)
