"""Training engineering: one LightningModule for any registered model, and ``fit`` to run a recipe.

The research code (model, loss, schedules) lives in ``vaekit.models`` and never imports Lightning; this module
adds the optimizer, logging, checkpoints, resumption, figures and devices (the ``trainer:`` section goes to
``lightning.Trainer`` as it is, so DDP on several GPUs or nodes, clipping and accumulation need no code here).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.profilers import PassThroughProfiler
from torch import nn

from vaekit.config import ConfigError, RunConfig, TrainConfig, from_dict, model_config, plain, resolved_model
from vaekit.data import EpochBatches, build_data, loader
from vaekit.figures import write_figure
from vaekit.io import check_writable, load, run_footprint, save_weights, write_config
from vaekit.likelihoods import check_likelihood
from vaekit.models.base import Ability, has
from vaekit.registry import build

warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*LeafSpec.*")
warnings.filterwarnings("ignore", ".*resuming from a checkpoint that ended before the epoch ended.*")


def _to(t: torch.Tensor, device: torch.device, fmt: torch.memory_format | None) -> torch.Tensor:
    t = t.to(device, non_blocking=True)
    return t.contiguous(memory_format=fmt) if fmt is not None and t.dim() == 4 else t


def _what(t: torch.Tensor) -> str:
    return "NaN" if torch.isnan(t).any() else "infinite"


class VAEModule(L.LightningModule):
    """Adam on ``model.loss``; logs every named term of the LossOutput under train/ and val/."""

    def __init__(self, model: nn.Module, config: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.config = config
        # A plain dict, so Lightning's .ckpt loads with weights_only=True and carries no pickled classes.
        self.save_hyperparameters({"config": config})
        self.train_cfg: TrainConfig = from_dict(TrainConfig, config["train"], "train")
        self.skipped_batches = 0  # batches left out for a NaN/Inf (train.nonfinite=skip); kept in checkpoints

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets _current_fx_name around every hook, ~40 times a step; nn.Module.__setattr__ checks
        # each value against parameters, buffers and submodules first (~100 us a step on a 2-core CPU).
        # tests/test_lightning_internals.py fails if Lightning stops using this attribute.
        if name == "_current_fx_name":
            self.__dict__[name] = value
        else:
            super().__setattr__(name, value)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # Our batches are flat dicts of tensors: one comprehension instead of Lightning's generic tree walk.
        if isinstance(batch, dict):
            fmt = torch.channels_last if self.train_cfg.channels_last else None
            return {k: _to(v, device, fmt) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self.model.on_train_step(self.global_step, self.current_epoch)  # schedules: warm-up, capacity, fade-in

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        out = self.model.loss(batch)
        if not torch.isfinite(out.loss):
            bad = next((k for k, v in out.terms.items() if not torch.isfinite(v).all()), "loss")
            value = out.terms[bad] if bad in out.terms else out.loss
            return self._nonfinite(f"loss term {bad!r} is {_what(value)}")
        # Logging every step costs more than a small model's step; log on the steps Lightning writes a row for
        # (after optimizer step s, it writes when (s + 1) % n == 0), so each row holds its own step's values.
        if (self.global_step + 1) % self.train_cfg.log_every_n_steps == 0:
            self.log_dict({f"train/{k}": v.float().mean() for k, v in out.terms.items()}, prog_bar=False)
            self.log("train/loss", out.loss.detach(), prog_bar=True)
            if self.skipped_batches:
                self.log("train/skipped_batches", float(self.skipped_batches))
        return out.loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.trainer.precision == "16-mixed":
            return  # float16's gradient scaler expects overflows and skips those steps itself
        grads = {n: p.grad for n, p in self.model.named_parameters() if p.grad is not None}
        if not grads or torch.isfinite(torch.stack(torch._foreach_norm(list(grads.values())))).all():
            return
        name = next(n for n, g in grads.items() if not torch.isfinite(g).all())
        self._nonfinite(f"the gradient of {name} is {_what(grads[name])}")
        for p in self.model.parameters():  # skip: Adam leaves parameters without a gradient untouched
            p.grad = None

    def _nonfinite(self, what: str) -> None:
        """Stop with a message naming the step and the term, or (train.nonfinite=skip) count and skip the batch."""
        if self.train_cfg.nonfinite == "stop":
            raise FloatingPointError(f"step {self.global_step}: {what}; training stopped, the last checkpoint is "
                                     "unchanged (train.nonfinite=skip leaves such batches out instead)")
        self.skipped_batches += 1
        self.print(f"vaekit: step {self.global_step}: {what}; batch skipped ({self.skipped_batches} so far)")
        self.log("train/skipped_batches", float(self.skipped_batches))
        return None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["skipped_batches"] = self.skipped_batches

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.skipped_batches = int(checkpoint.get("skipped_batches", 0))

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        out = self.model.loss(batch)
        n = batch["x"].shape[0]
        self.log_dict({f"val/{k}": v.float().mean() for k, v in out.terms.items()}, batch_size=n, sync_dist=True,
                      prog_bar=False)
        self.log("val/loss", out.loss, batch_size=n, sync_dist=True, prog_bar=True)

    def _fused(self) -> bool | None:
        # The fused Adam kernel (CPU and CUDA) does one pass per tensor instead of ~10 ops: on a 2-core CPU it
        # makes the optimizer step 5x faster, a third of a small VAE's step time. Same update rule.
        return True if self.device.type in ("cpu", "cuda") else None

    def configure_optimizers(self) -> Any:
        t = self.train_cfg
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay, fused=self._fused())
        if t.lr_decay == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(t.epochs, 1), eta_min=t.lr * 0.05)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        return opt


class _NoProfiler(PassThroughProfiler):
    """Lightning wraps each of the ~30 hook calls of a step in ``profiler.profile``, a generator context manager
    even when nothing is profiled; a shared null context does the same in a tenth of the time."""

    _null = contextlib.nullcontext()

    def profile(self, action_name: str) -> contextlib.nullcontext:  # type: ignore[override]
        return self._null


class _Checkpoint(ModelCheckpoint):
    """ModelCheckpoint whose ``state_key`` (built with repr() of its settings, read at every hook call of
    every step to name the profiler action) is computed once."""

    def _should_skip_saving_checkpoint(self, trainer: L.Trainer) -> bool:
        return super()._should_skip_saving_checkpoint(trainer) or \
            trainer.global_step < trainer.lightning_module.model.monitor_from_step()

    @property
    def state_key(self) -> str:
        if "_state_key" not in self.__dict__:
            self.__dict__["_state_key"] = super().state_key
        return self.__dict__["_state_key"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file, then renames it over the old one: a run killed while
    writing leaves the previous checkpoint whole."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # torn writes of processes killed mid-save
            pid = stale.name.split(".")[-2]
            if pid.isdigit() and not _alive(int(pid)):
                stale.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Resumable(Callback):
    """``checkpoints/last.ckpt`` every N steps and at the end of every epoch, holding what a resume needs beyond
    Lightning's own state: torch's global RNG (the model's noise) and how far into the epoch the run got.

    The data order and every data draw are functions of (seed, epoch, batch) (vaekit.data.batches), so telling
    the sampler where to start and restoring the RNG before the next step replays the uninterrupted run."""

    def __init__(self, path: Path, every_n_steps: int, sampler: EpochBatches) -> None:
        self.path, self.every, self.sampler = path, every_n_steps, sampler
        self.position = (0, 0)  # (epoch, batches done in it) as of the last save
        self._pending_rng: dict[str, Any] | None = None
        self._mid_epoch = False

    def on_train_batch_end(self, trainer: L.Trainer, module: VAEModule, outputs: Any, batch: Any, idx: int) -> None:
        done = idx + 1
        stepped = done % trainer.accumulate_grad_batches == 0  # never save halfway through an accumulation
        if self.every and stepped and trainer.global_step % self.every == 0 and done < trainer.num_training_batches:
            self.position = (trainer.current_epoch, done)
            trainer.save_checkpoint(self.path, weights_only=False)  # the full state: optimizer, loops

    def on_train_epoch_end(self, trainer: L.Trainer, module: VAEModule) -> None:
        # Also when max_time or max_steps cut the epoch short: Lightning then counts the epoch as done, and a
        # resume with a larger budget starts the next one (the rest of the cut epoch is not served).
        self.position = (trainer.current_epoch + 1, 0)
        trainer.save_checkpoint(self.path, weights_only=False)

    def _restore_rng(self) -> None:
        if self._pending_rng is not None:
            torch.set_rng_state(self._pending_rng["cpu"])
            if "cuda" in self._pending_rng and torch.cuda.is_available():
                for i, state in enumerate(self._pending_rng["cuda"][: torch.cuda.device_count()]):
                    torch.cuda.set_rng_state(state, i)
            self._pending_rng = None

    # The RNG is restored where the original run stood when it saved: at the start of the next epoch for an
    # end-of-epoch checkpoint, else before the next step.
    def on_train_epoch_start(self, trainer: L.Trainer, module: VAEModule) -> None:
        if not self._mid_epoch:
            self._restore_rng()

    def on_train_batch_start(self, trainer: L.Trainer, module: VAEModule, batch: Any, idx: int) -> None:
        self._restore_rng()

    def state_dict(self) -> dict[str, Any]:
        rng: dict[str, Any] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"rng": rng, "epoch": self.position[0], "batches": self.position[1]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pending_rng = state["rng"]
        self._mid_epoch = bool(state["batches"])
        if state["batches"]:
            self.sampler.skip(state["epoch"], state["batches"])


class ExportWeights(Callback):
    """Writes model.safetensors after every validation, best.safetensors when the monitored term (the model's
    true ELBO or bound, never an annealed loss) improves, and snapshots/epochNNNN.safetensors at the epochs
    asked for (for curves of test NLL against epochs)."""

    def __init__(self, run_dir: Path, monitor: tuple[str, str], snapshot_epochs: list[int] | None = None) -> None:
        self.run_dir, self.key, self.sign = run_dir, f"val/{monitor[0]}", 1.0 if monitor[1] == "min" else -1.0
        self.best = float("inf")
        self.snapshots = set(snapshot_epochs or [])

    def on_train_epoch_end(self, trainer: L.Trainer, module: VAEModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch in self.snapshots and trainer.is_global_zero:
            (self.run_dir / "snapshots").mkdir(exist_ok=True)
            save_weights(module.model, self.run_dir / "snapshots" / f"epoch{epoch:04d}.safetensors")

    def on_validation_end(self, trainer: L.Trainer, module: VAEModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        save_weights(module.model, self.run_dir / "model.safetensors")
        value = trainer.callback_metrics.get(self.key)
        if trainer.global_step < module.model.monitor_from_step():
            return  # e.g. a progressive model before its last level is in: not comparable with what follows
        if value is not None and self.sign * float(value) < self.best:
            self.best = self.sign * float(value)
            save_weights(module.model, self.run_dir / "best.safetensors")

    def on_train_end(self, trainer: L.Trainer, module: VAEModule) -> None:
        if trainer.is_global_zero:
            save_weights(module.model, self.run_dir / "model.safetensors")

    def state_dict(self) -> dict[str, float]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.best = state["best"]


class Figures(Callback):
    """What ``model.figures(batch)`` draws (prior samples, reconstructions, completions, ...) on a fixed
    validation batch, every n epochs, written by the one figure writer."""

    def __init__(self, run_dir: Path, fixed: dict[str, torch.Tensor], every: int = 1) -> None:
        self.dir, self.fixed, self.every = run_dir / "figures", fixed, every

    def on_validation_epoch_end(self, trainer: L.Trainer, module: VAEModule) -> None:
        epoch = trainer.current_epoch + 1
        model = module.model
        if trainer.sanity_checking or not trainer.is_global_zero or epoch % self.every or not has(model,
                                                                                                  Ability.FIGURES):
            return
        was_training = model.training
        model.eval()
        batch = {k: v.to(module.device) for k, v in self.fixed.items()}
        # The same prior draws every epoch, so the figures show progress; drawn under a forked generator so the
        # training run's own random stream (the model's noise) goes on untouched.
        with torch.random.fork_rng(devices=[module.device] if module.device.type == "cuda" else []):
            torch.manual_seed(0)
            for name, figure in model.figures(batch).items():
                write_figure(figure, self.dir / f"{name}_epoch{epoch:04d}")
        model.train(was_training)


class MetricsDuringTraining(Callback):
    """Disentanglement metrics every N steps on the data set's known factors (so curves over training show when
    and whether orderings between models appear), written to metrics/stepNNNNNNN.json and the loggers."""

    def __init__(self, run_dir: Path, names: list[str], every: int, ground_truth: Any, seed: int,
                 settings: dict[str, dict[str, Any]]) -> None:
        self.dir, self.names, self.every, self.ground_truth, self.seed = run_dir / "metrics", names, every, \
            ground_truth, seed
        self.settings = settings
        self.last = -1

    def on_train_batch_end(self, trainer: L.Trainer, module: VAEModule, outputs: Any, batch: Any, idx: int) -> None:
        step = trainer.global_step
        if not trainer.is_global_zero or not self.every or step % self.every or step == 0 or step == self.last:
            return  # (under gradient accumulation several batches share a step: score it once)
        self.last = step
        from vaekit.evaluate import disentanglement

        model = module.model
        was_training = model.training
        with torch.random.fork_rng(devices=[]):
            scores, _ = disentanglement(model, self.ground_truth, self.names, self.seed, settings=self.settings)
        model.train(was_training)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / f"step{step:07d}.json").write_text(json.dumps({"step": step, **scores}, indent=2))
        flat = {f"metrics/{n}/{k}": float(v) for n, d in scores.items() for k, v in d.items()
                if isinstance(v, (int, float)) and k != "seconds"}
        for logger in trainer.loggers:
            logger.log_metrics(flat, step=step)


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


def _loggers(run_dir: Path, names: list[str], resume_step: int | None = None) -> list[Logger]:
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
            print(f"vaekit: no checkpoint in {run_dir / 'checkpoints'} yet; starting from scratch")
            return None
        print(f"vaekit: resuming from {path}")
    else:
        path = Path(resume)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such checkpoint")
    try:  # tensors and plain values only: a pickled class or code is refused before Lightning sees the file
        step = int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["global_step"])
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"{path}: not a vaekit checkpoint, or unsafe to load ({first[:200]})") from None
    return path, step


def _total_steps(cfg: RunConfig, batches_per_epoch: int) -> int:
    """The optimizer steps a run will take, from epochs, batch limits, accumulation and max_steps."""
    limit = cfg.trainer.limit_train_batches
    per_epoch = int(batches_per_epoch * limit) if isinstance(limit, float) else min(batches_per_epoch, limit)
    total = cfg.train.epochs * -(-per_epoch // cfg.trainer.accumulate_grad_batches)  # a last partial one steps too
    return min(total, cfg.trainer.max_steps) if cfg.trainer.max_steps >= 0 else total


def fit(
    cfg: RunConfig, run_dir: str | Path, resume: str | Path | None = None, callbacks: list[Callback] | None = None
) -> tuple[VAEModule, L.Trainer]:
    """Train ``cfg`` into ``run_dir`` (config, logs, checkpoints, figures, safetensors weights).

    ``resume``: a checkpoint, or ``"auto"`` for the run directory's newest one. ``callbacks`` run before
    vaekit's own (checkpoints, weight export, figures, progress bar) in each hook."""
    run_dir = Path(run_dir)
    t = cfg.train
    if t.threads:
        torch.set_num_threads(t.threads)
    ckpt_path, resume_step = resolve_resume(resume, run_dir) or (None, None)
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
    train_loader = loader(splits.train, cfg.data.batch_size, shuffle=True, seed=t.seed, drop_last=cfg.data.drop_last)
    total_steps = _total_steps(cfg, len(train_loader))
    model.check_budget(total_steps)  # e.g. a fade-in that would outlast the training
    check_writable(run_dir, run_footprint(model))
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
        from vaekit.evaluate import check_metric_settings

        check_metric_settings(t.metric_settings)
        if splits.ground_truth is None:
            raise ConfigError(f"train.metrics: data set {cfg.data.name!r} has no known factors to score against")
        callbacks.append(MetricsDuringTraining(run_dir, t.metrics, t.metrics_every_n_steps, splits.ground_truth,
                                               cfg.eval.metrics_seed, t.metric_settings))
    if t.progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=25))
    limits = {**_trainer_args(cfg), "max_epochs": t.epochs}
    if cfg.trainer.max_steps >= 0:
        # Lightning restarts a run with max_steps set without resyncing its epoch counters: each resume from an
        # end-of-epoch checkpoint counts that epoch twice against max_epochs (a 12,000-step run stopped at 11,000).
        # Both limits in steps, then, and the steps decide.
        limits.update(max_steps=total_steps, max_epochs=-1)
    trainer = L.Trainer(
        **limits, logger=_loggers(run_dir, t.loggers, resume_step),
        callbacks=callbacks,
        log_every_n_steps=t.log_every_n_steps, enable_progress_bar=t.progress_bar, enable_model_summary=False,
        default_root_dir=str(run_dir), num_sanity_val_steps=0, use_distributed_sampler=False,
        plugins=[AtomicCheckpointIO()], profiler=_NoProfiler() if t.profiler == "none" else t.profiler,
    )
    trainer.fit(
        module,
        train_dataloaders=train_loader,
        val_dataloaders=loader(splits.val, 1000, shuffle=False, seed=t.seed + 1) if validate else None,
        ckpt_path=str(ckpt_path) if ckpt_path else None,
        weights_only=True,
    )
    return module, trainer
