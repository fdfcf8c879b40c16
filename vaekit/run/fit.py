"""``fit``: a recipe's run wired together (data, model, module, callbacks, loggers, ``lightning.Trainer``).

The ``trainer:`` section goes to ``lightning.Trainer`` as it is, so DDP on several GPUs or nodes, clipping and
accumulation need no code here; the step is ``vaekit.run.module``, what a run writes ``vaekit.run.callbacks``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from vaekit.core.errors import brief
from vaekit.core.likelihoods import check_likelihood
from vaekit.core.options import is_rank_zero, say
from vaekit.data import build_data, loader
from vaekit.data.batches import BatchServing
from vaekit.models.registry import build
from vaekit.run.callbacks import (
    AtomicCheckpointIO,
    ExportWeights,
    Figures,
    MetricsDuringTraining,
    ProgressBar,
    Resumable,
    StopOnSignal,
    _Checkpoint,
    _NoProfiler,
)
from vaekit.run.config import ConfigError, RunConfig, migrate, model_config, plain, resolved_model
from vaekit.run.folder import RunFolderError, claim, clear_run, holds_run, verify
from vaekit.run.io import check_writable, load, run_footprint, write_config
from vaekit.run.logs import make_loggers
from vaekit.run.module import VAEModule
from vaekit.run.provenance import Provenance

warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*LeafSpec.*")
warnings.filterwarnings("ignore", ".*resuming from a checkpoint that ended before the epoch ended.*")


class _NoAdverts(logging.Filter):
    """Lightning prints a tip for its cloud services at every training; vaekit's users did not ask for it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch"):
    logging.getLogger(_name).addFilter(_NoAdverts())

__all__ = ["VAEModule", "fit", "init_from_runs", "resolve_resume"]


def _trainer_args(cfg: RunConfig) -> dict[str, Any]:
    args = asdict(cfg.trainer)
    devices = args["devices"]
    args["devices"] = int(devices) if isinstance(devices, str) and devices.isdigit() else devices
    return args


def init_from_runs(model: nn.Module, init: dict[str, str]) -> None:
    """Load submodules from trained runs (``train.init: {baseline: runs/regressor}``), checking they match."""
    for name, path in init.items():
        try:
            sub = model.get_submodule(name)
        except AttributeError:
            raise ConfigError(f"train.init.{name}: the model has no submodule {name!r}") from None
        trained = load(path).state_dict()
        mine = sub.state_dict()
        if trained.keys() != mine.keys() or any(trained[k].shape != mine[k].shape for k in mine):
            raise ConfigError(f"train.init.{name}: {path} does not match the model's {name} (set its widths, "
                              f"e.g. model.baseline_hidden, to the trained run's)")
        sub.load_state_dict(trained)


def resolve_resume(resume: str | Path | None, run_dir: Path) -> tuple[Path, int] | None:
    """``auto``: the run directory's newest checkpoint, if it has one; else the path given. With its step."""
    if resume is None:
        return None
    if str(resume) == "auto":
        path = run_dir / "checkpoints" / "last.ckpt"
        if not path.exists():
            say(f"vaekit: no checkpoint in {run_dir / 'checkpoints'} yet; starting from scratch")
            return None
        say(f"vaekit: resuming from {path}")
    else:
        path = Path(resume)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such checkpoint")
    verify(path, path.parent.parent)  # checkpoints/last.ckpt against the run's SHA256SUMS
    try:  # tensors and plain values only: a pickled class or code is refused before Lightning sees the file
        step = int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])
    except Exception as e:
        raise ValueError(f"{path}: not a vaekit checkpoint, truncated, or unsafe to load "
                         f"({brief(e)})") from None
    return path, step


def check_resume(ckpt_path: Path, cfg: RunConfig, model: nn.Module) -> None:
    """Before anything in the run folder changes: the checkpoint was made by this model on this data (the
    recorded model and data sections agree with the new ones, and its weights load), else one line naming the
    first setting that differs."""
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    recorded = migrate(ckpt.get("hyper_parameters", {}).get("config", {}))
    now = plain(cfg.to_dict())
    for section in ("model", "data"):
        old, new = recorded.get(section) or {}, now.get(section) or {}
        # The data may have moved folder, and the batch may be split differently (DDP's per-device batch).
        for key in sorted(old.keys() & new.keys() - {"dir", "batch_size", "drop_last"}):
            if plain(old[key]) != new[key]:
                raise RunFolderError(f"--resume: {section}.{key} is {old[key]!r} in the run but {new[key]!r} now; "
                                     f"resume with the run's settings, or train into another --out")
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        lines = str(e).splitlines()
        raise RunFolderError(f"--resume: {ckpt_path} does not fit the model "
                             f"({lines[1].strip() if len(lines) > 1 else lines[0]})") from None


def _resident_device(cfg: RunConfig) -> torch.device | None:
    """Where an in-memory training set is held (``train.data_on_device``): the one CUDA device a single-process
    run trains on; None (batches copied from the host as they are served) on the CPU or with several devices."""
    if not cfg.train.data_on_device or not torch.cuda.is_available():
        return None
    one = str(cfg.trainer.devices) in ("1", "[0]") or (cfg.trainer.devices == "auto" and torch.cuda.device_count() == 1)
    if cfg.trainer.accelerator not in ("auto", "gpu", "cuda") or not one:
        return None
    return torch.device("cuda", 0)


def _total_steps(cfg: RunConfig, batches_per_epoch: int) -> int:
    """The optimizer steps a run will take, from epochs, batch limits, accumulation and max_steps."""
    limit = cfg.trainer.limit_train_batches
    per_epoch = int(batches_per_epoch * limit) if isinstance(limit, float) else min(batches_per_epoch, limit)
    total = cfg.train.epochs * -(-per_epoch // cfg.trainer.accumulate_grad_batches)  # a last partial one steps too
    return min(total, cfg.trainer.max_steps) if cfg.trainer.max_steps >= 0 else total


def fit(
    cfg: RunConfig, run_dir: str | Path, resume: str | Path | None = None, callbacks: list[Callback] | None = None,
    overwrite: bool = False,
) -> tuple[VAEModule, L.Trainer]:
    """Train ``cfg`` into ``run_dir`` (config, logs, checkpoints, figures, safetensors weights).

    ``resume``: a checkpoint, or ``"auto"`` for the run directory's newest one. A folder that already holds a run
    is refused unless the run is resumed or ``overwrite`` replaces it; while training, the folder is locked
    against a second writer. ``callbacks`` run before vaekit's own (checkpoints, weight export, figures,
    progress bar) in each hook."""
    run_dir = Path(run_dir)
    if not is_rank_zero():  # DDP's other processes: the first one holds the folder and has checked it
        return _fit(cfg, run_dir, resume, callbacks, overwrite=False, primary=False)
    with claim(run_dir):
        return _fit(cfg, run_dir, resume, callbacks, overwrite, primary=True)


def _fit(cfg: RunConfig, run_dir: Path, resume: str | Path | None, callbacks: list[Callback] | None,
         overwrite: bool, primary: bool) -> tuple[VAEModule, L.Trainer]:
    t = cfg.train
    if t.threads:
        torch.set_num_threads(t.threads)
    ckpt_path, resume_step = resolve_resume(resume, run_dir) or (None, None)
    if primary and ckpt_path is None and not overwrite:
        found = holds_run(run_dir)
        if resume is not None:  # --resume auto before the first checkpoint: only a bare config may be replaced
            found = [f for f in found if f != "config.yaml"]
        if found:
            raise RunFolderError(f"{run_dir} holds a run ({', '.join(found)}); pass --resume auto to continue it "
                                 f"or --overwrite to replace it")
    check_writable(run_dir)  # before the data are loaded
    L.seed_everything(t.seed, workers=True, verbose=False)
    splits = build_data(cfg.data)
    model_cfg = model_config(cfg.model, splits.defaults)
    cfg.model = resolved_model(cfg.model, splits.defaults)  # config.yaml records every default
    model = build(cfg.model_name, model_cfg)
    check_likelihood(model.observation_model(), splits.observation)
    init_from_runs(model, t.init)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_set = splits.train
    if (dev := _resident_device(cfg)) is not None and isinstance(train_set, BatchServing):
        train_set = train_set.to(dev)  # once: every batch is then an index slice on the device (if it can be)
    train_loader = loader(train_set, cfg.data.batch_size, shuffle=True, seed=t.seed, drop_last=cfg.data.drop_last)
    total_steps = _total_steps(cfg, len(train_loader))
    model.check_budget(total_steps)  # e.g. a fade-in that would outlast the training
    check_writable(run_dir, run_footprint(model))
    if ckpt_path is not None:
        check_resume(ckpt_path, cfg, model)
    if primary:  # every check passed: only now does the folder change
        if overwrite:
            clear_run(run_dir)
        write_config(cfg, run_dir)
    module = VAEModule(model, plain(cfg.to_dict()))
    term, mode = model.monitor
    best = _Checkpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=f"val/{term}", mode=mode,
                       save_top_k=1, save_last=False, auto_insert_metric_name=False, enable_version_counter=False)
    resumable = Resumable(run_dir / "checkpoints" / "last.ckpt", t.checkpoint_every_n_steps,
                          train_loader.batch_sampler)
    # Callbacks passed in run first in each hook (a timer then measures the loop, not vaekit's file writes).
    validate = len(splits.val) > 0  # no held-out set (data.val_size=0): the last weights are the weights
    callbacks = [*(callbacks or []), *([best] if validate else []), resumable,
                 ExportWeights(run_dir, model.monitor, t.snapshot_epochs),
                 *([Figures(run_dir, splits.val.head(32), t.figures_every_n_epochs)] if validate else [])]
    if t.metrics:
        from vaekit.run.evaluate import check_metric_settings

        check_metric_settings(t.metric_settings)
        if splits.ground_truth is None:
            raise ConfigError(f"train.metrics: data set {cfg.data.name!r} has no known factors to score against")
        callbacks.append(MetricsDuringTraining(run_dir, t.metrics, t.metrics_every_n_steps, splits.ground_truth,
                                               cfg.eval.metrics_seed, t.metric_settings))
    if t.progress_bar:
        callbacks.append(ProgressBar(refresh_rate=25))  # never a device value: no host sync a step
    callbacks.append(Provenance(run_dir))  # run.json: the commit, machine, device and wall time of each session
    callbacks.append(StopOnSignal(resumable))  # last: the step's other callbacks have run when it saves
    limits = {**_trainer_args(cfg), "max_epochs": t.epochs}
    if cfg.trainer.max_steps >= 0:
        # Lightning restarts a run with max_steps set without resyncing its epoch counters: each resume from an
        # end-of-epoch checkpoint counts that epoch twice against max_epochs (a 12,000-step run stopped at 11,000).
        # Both limits in steps, then, and the steps decide.
        limits.update(max_steps=total_steps, max_epochs=-1)
    trainer = L.Trainer(
        **limits, logger=make_loggers(run_dir, t.loggers, resume_step),
        callbacks=callbacks,
        log_every_n_steps=t.log_every_n_steps, enable_progress_bar=t.progress_bar, enable_model_summary=False,
        default_root_dir=str(run_dir), num_sanity_val_steps=0, use_distributed_sampler=False,
        plugins=[AtomicCheckpointIO(run_dir)], profiler=_NoProfiler() if t.profiler == "none" else t.profiler,
    )
    trainer.fit(
        module,
        train_dataloaders=train_loader,
        val_dataloaders=loader(splits.val, 1000, shuffle=False, seed=t.seed + 1) if validate else None,
        ckpt_path=str(ckpt_path) if ckpt_path else None,
        weights_only=True,
    )
    return module, trainer
