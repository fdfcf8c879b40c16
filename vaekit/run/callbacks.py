"""What a training run writes besides the step: checkpoints (atomic, resumable mid-epoch), safetensors weights,
figures and disentanglement metrics during training, and two trims of Lightning's per-step bookkeeping."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.profilers import PassThroughProfiler

from vaekit.core.drawing import write_figure
from vaekit.data import EpochBatches
from vaekit.models.base import Ability, has
from vaekit.run.folder import replace_recorded
from vaekit.run.io import save_weights
from vaekit.run.module import VAEModule


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

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        # Saved on validation, never by train steps or time: ModelCheckpoint would check the trainer's state and
        # the monitored metric every step, then return for the same reason (tests/test_lightning_internals.py).
        if self._every_n_train_steps < 1 and self._train_time_interval is None:
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    @property
    def state_key(self) -> str:
        if "_state_key" not in self.__dict__:
            self.__dict__["_state_key"] = super().state_key
        return self.__dict__["_state_key"]


class ProgressBar(TQDMProgressBar):
    """Lightning's bar with the loss as the module last read it (a number, on the guard's steps).

    A value given to ``self.log(..., prog_bar=True)`` stays in Lightning's results as a tensor on the device, and
    Lightning turns every progress-bar tensor into a number at the end of every step: a host sync a step."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, int | str | float]:
        items = super().get_metrics(trainer, pl_module)
        loss = getattr(pl_module, "bar_loss", None)
        if loss is not None:
            items["loss"] = f"{loss:.4g}"
        return items


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file, then renames it over the old one: a run killed while
    writing leaves the previous checkpoint whole. Its checksum goes into the run's SHA256SUMS."""

    def __init__(self, run_dir: Path | None = None) -> None:
        super().__init__()
        self.run_dir = run_dir.resolve() if run_dir is not None else None

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            if self.run_dir is not None and path.resolve().is_relative_to(self.run_dir):
                replace_recorded(tmp, path, self.run_dir)
            else:
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
            self.save_mid_epoch(trainer, done)

    def save_mid_epoch(self, trainer: L.Trainer, done: int) -> None:
        """The full state (optimizer, loops) after ``done`` batches of the current epoch."""
        self.position = (trainer.current_epoch, done)
        trainer.save_checkpoint(self.path, weights_only=False)

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


class Interrupted(Exception):
    """Training stopped by a signal after a whole step, with a checkpoint that resumes it."""

    def __init__(self, signame: str, step: int, checkpoint: Path) -> None:
        super().__init__(f"stopped by {signame} at step {step}; checkpoint saved in {checkpoint}")
        self.signame, self.step, self.checkpoint = signame, step, checkpoint
        self.exit_status = 128 + int(getattr(signal, signame, signal.SIGTERM))


class StopOnSignal(Callback):
    """Ctrl-C (SIGINT) or SIGTERM while training: finish the step under way, save ``last.ckpt`` (atomically, as
    every checkpoint), then stop with ``Interrupted``. A second Ctrl-C stops at once.

    The signal only sets a flag: saving in the handler could catch the optimizer halfway through its update. At
    the last batch of an epoch the stop waits for the epoch's end, whose own checkpoint starts the next epoch."""

    def __init__(self, resumable: Resumable) -> None:
        self.resumable = resumable
        self.signame: str | None = None
        self._previous: dict[int, Any] = {}

    def _note(self, signum: int, frame: Any) -> None:
        if self.signame is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: no waiting for the step
        self.signame = signal.Signals(signum).name

    def on_train_start(self, trainer: L.Trainer, module: VAEModule) -> None:
        # After Lightning's own SIGTERM handler is in place (it would stop mid-accumulation, without saving).
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._note)

    def _requested(self, trainer: L.Trainer) -> bool:
        asked = self.signame is not None
        if trainer.world_size > 1:  # every process stops at the same step, or the others wait forever
            asked = trainer.strategy.reduce_boolean_decision(asked, all=False)
        return asked

    def on_train_batch_end(self, trainer: L.Trainer, module: VAEModule, outputs: Any, batch: Any, idx: int) -> None:
        done = idx + 1
        if done % trainer.accumulate_grad_batches or done >= trainer.num_training_batches:
            return
        if self._requested(trainer):
            self.resumable.save_mid_epoch(trainer, done)
            self._stop(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, module: VAEModule) -> None:
        if self._requested(trainer):  # Resumable has saved the epoch's end
            self._stop(trainer)

    def _stop(self, trainer: L.Trainer) -> None:
        self.on_train_end(trainer, trainer.lightning_module)
        raise Interrupted(self.signame or "SIGTERM", trainer.global_step, self.resumable.path)

    def on_train_end(self, trainer: L.Trainer, module: VAEModule) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def on_exception(self, trainer: L.Trainer, module: VAEModule, exception: BaseException) -> None:
        self.on_train_end(trainer, module)


class ExportWeights(Callback):
    """Writes model.safetensors after every validation, best.safetensors when the monitored term (the model's
    true ELBO or bound, never an annealed loss) improves, and snapshots/epochNNNN.safetensors at the epochs
    asked for (for curves of test NLL against epochs)."""

    def __init__(self, run_dir: Path, monitor: tuple[str, str], snapshot_epochs: list[int] | None = None) -> None:
        self.run_dir, self.key, self.sign = run_dir, f"val/{monitor[0]}", 1.0 if monitor[1] == "min" else -1.0
        self.best = float("inf")
        self.snapshots = set(snapshot_epochs or [])

    def on_train_epoch_end(self, trainer: L.Trainer, module: VAEModule) -> None:
        module.read_guard()  # weights only after a clean read of the non-finite guard
        epoch = trainer.current_epoch + 1
        if epoch in self.snapshots and trainer.is_global_zero:
            (self.run_dir / "snapshots").mkdir(exist_ok=True)
            save_weights(module.model, self.run_dir / "snapshots" / f"epoch{epoch:04d}.safetensors", self.run_dir)

    def on_validation_end(self, trainer: L.Trainer, module: VAEModule) -> None:
        module.read_guard()
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        save_weights(module.model, self.run_dir / "model.safetensors", self.run_dir)
        value = trainer.callback_metrics.get(self.key)
        if trainer.global_step < module.model.monitor_from_step():
            return  # e.g. a progressive model before its last level is in: not comparable with what follows
        if value is not None and self.sign * float(value) < self.best:
            self.best = self.sign * float(value)
            save_weights(module.model, self.run_dir / "best.safetensors", self.run_dir)

    def on_train_end(self, trainer: L.Trainer, module: VAEModule) -> None:
        module.read_guard()
        if trainer.is_global_zero:
            save_weights(module.model, self.run_dir / "model.safetensors", self.run_dir)

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
        from vaekit.run.evaluate import disentanglement

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
