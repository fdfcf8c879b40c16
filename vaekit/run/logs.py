"""The loggers a recipe names (``train.loggers``); the CSV log keeps its history when a run resumes."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from vaekit.run.config import ConfigError


class _HistoryWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv. A resumed run keeps the rows up to its checkpoint's
    step instead (rows logged after it, by the interrupted run, are dropped: the resumed run logs them again)."""

    def __init__(self, log_dir: str, keep_until_step: int | None) -> None:
        self.keep_until_step = keep_until_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if self.keep_until_step is None or not path.is_file():
            return super()._check_log_dir_exists()
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = [r for r in reader if r.get("step") and int(r["step"]) <= self.keep_until_step]
            keys = list(reader.fieldnames or [])
        tmp = path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
        self.metrics_keys = keys  # later rows append under this header (a new key rewrites it, rows kept)


class _ResumableCSVLogger(CSVLogger):
    def __init__(self, run_dir: Path, keep_until_step: int | None) -> None:
        super().__init__(str(run_dir), name="logs", version="")
        self._keep_until_step = keep_until_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _HistoryWriter(self.log_dir, self._keep_until_step)
        return self._experiment


def make_loggers(run_dir: Path, names: list[str], resume_step: int | None = None) -> list[Logger]:
    """``resume_step``: the step of the checkpoint a run resumes from (its CSV history is kept up to there)."""
    loggers: list[Logger] = []
    for name in dict.fromkeys(names):
        try:
            if name == "csv":
                loggers.append(_ResumableCSVLogger(run_dir, resume_step))
            elif name == "tensorboard":
                import tensorboard  # noqa: F401
                from lightning.pytorch.loggers import TensorBoardLogger

                loggers.append(TensorBoardLogger(str(run_dir), name="logs", version="tb"))
            elif name == "mlflow":
                import mlflow  # noqa: F401
                from lightning.pytorch.loggers import MLFlowLogger

                loggers.append(MLFlowLogger(experiment_name=run_dir.name, tracking_uri=f"file:{run_dir / 'mlruns'}"))
            elif name == "wandb":
                import wandb  # noqa: F401
                from lightning.pytorch.loggers import WandbLogger

                loggers.append(WandbLogger(name=run_dir.name, save_dir=str(run_dir)))
        except ImportError:
            raise ConfigError(f"train.loggers: {name} is not installed (pip install {name})") from None
    return loggers
