"""A training step does not wait for the device: between two reads of the non-finite guard (every
``train.sync_every_n_steps`` steps) nothing in the step turns a tensor into a Python value. On the CPU this is
proven by making every such conversion raise during those steps; on a GPU by CUDA's sync debug mode."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from vaekit.run.callbacks import ProgressBar
from vaekit.run.config import load_config
from vaekit.run.fit import fit

EVERY = 5
TINY = ["model.hidden=[16]", "model.latent_dim=3", "trainer.limit_train_batches=12", "trainer.limit_val_batches=1",
        "train.progress_bar=true", "data.batch_size=32", "train.epochs=1", f"train.log_every_n_steps={EVERY}",
        f"train.sync_every_n_steps={EVERY}", f"train.checkpoint_every_n_steps={EVERY}",
        "train.deferred_guard=true"]  # on the CPU the default reads every step (a read waits for nothing there)
CONVERSIONS = ("item", "__bool__", "__float__", "__int__", "tolist", "numpy")


class SyncForbidden(RuntimeError):
    pass


class ForbidSyncsBetweenReads(Callback):
    """Forbidden from the start of each step to its end, except on the steps the guard is read (global step a
    multiple of EVERY after the optimizer step) and the last one (the epoch's end reads and writes)."""

    def __init__(self) -> None:
        self.forbidden, self.steps_checked, self.reads = False, 0, 0

    def on_train_batch_start(self, trainer, module, batch, idx) -> None:  # noqa: ANN001
        self.forbidden = True

    def on_train_batch_end(self, trainer, module, outputs, batch, idx) -> None:  # noqa: ANN001
        self.steps_checked += 1
        if trainer.global_step % EVERY == 0 or idx + 1 == trainer.num_training_batches:
            self.forbidden, self.reads = False, self.reads + 1


@pytest.fixture
def forbid(monkeypatch: pytest.MonkeyPatch) -> ForbidSyncsBetweenReads:
    guard = ForbidSyncsBetweenReads()
    for name in CONVERSIONS:
        original = getattr(torch.Tensor, name)

        def checked(self: torch.Tensor, *a: object, _original=original, _name=name, **k: object) -> object:
            if guard.forbidden:
                raise SyncForbidden(f"Tensor.{_name} during a step between two reads")
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, checked)
    return guard


def test_steps_between_reads_make_no_host_sync(tmp_path: Path, data_dir: Path,
                                               forbid: ForbidSyncsBetweenReads) -> None:
    cfg = load_config({"model": "vae", "name": "r"}, [*TINY, f"data.dir={data_dir}"])
    module, trainer = fit(cfg, tmp_path, callbacks=[forbid])
    assert trainer.global_step == 12 and forbid.steps_checked == 12 and forbid.reads == 3  # steps 5, 10, 12
    assert all(torch.isfinite(p).all() for p in module.model.parameters())
    assert "train/loss" in (tmp_path / "logs/metrics.csv").read_text()  # logging happened, on the read steps
    (bar,) = [c for c in trainer.callbacks if isinstance(c, ProgressBar)]  # the bar shows the loss last read
    assert module.bar_loss is not None and bar.get_metrics(trainer, module)["loss"] == f"{module.bar_loss:.4g}"


def test_the_per_step_guard_does_sync_so_the_test_above_can_fail(tmp_path: Path, data_dir: Path,
                                                                   forbid: ForbidSyncsBetweenReads) -> None:
    cfg = load_config({"model": "vae", "name": "r"}, [*TINY, f"data.dir={data_dir}", "train.deferred_guard=false"])
    with pytest.raises(SyncForbidden, match="Tensor.__bool__"):
        fit(cfg, tmp_path, callbacks=[forbid])


def _inject(call: int, term: str) -> type[Callback]:
    """A callback putting test_faults' NaN into the model's loss at its (call + 1)-th training call."""
    from test_faults import _NaNAt

    class Inject(Callback):
        def on_fit_start(self, trainer, module) -> None:  # noqa: ANN001
            module.model.loss = _NaNAt(module.model, call, term)

    return Inject


def test_a_skipped_step_leaves_adam_as_it_was(tmp_path: Path, data_dir: Path) -> None:
    """Adam's found_inf skips the update on the device: the step count of every parameter's state is the
    number of good steps, and the moments stay finite."""
    Inject = _inject(3, "grad")  # step 3: a finite loss whose gradient is NaN

    cfg = load_config({"model": "vae", "name": "r"}, [*TINY, f"data.dir={data_dir}", "train.nonfinite=skip"])
    module, trainer = fit(cfg, tmp_path, callbacks=[Inject()])
    assert module.skipped_batches == 1
    (opt,) = trainer.optimizers
    for state in opt.state.values():
        assert int(state["step"]) == trainer.global_step - 1
        assert torch.isfinite(state["exp_avg"]).all() and torch.isfinite(state["exp_avg_sq"]).all()


@pytest.mark.parametrize("term", ["kl", "grad"])
@pytest.mark.parametrize("mode", ["stop", "skip"])
def test_the_deferred_guard_stops_or_skips_as_the_per_step_guard_does(tmp_path: Path, data_dir: Path, term: str,
                                                                      mode: str) -> None:
    """tests/test_faults.py's NaN at step 7 (checkpoints every 2 steps), with the guard deferred: the same
    message, the same last good checkpoint, the same count of skipped batches."""
    from test_faults import TINY as FAULTS
    from test_faults import _step

    from vaekit.run.io import load

    Inject = _inject(7, term)

    cfg = load_config({"model": "vae", "name": "r"}, [*FAULTS, f"data.dir={data_dir}", f"train.nonfinite={mode}",
                                                      "train.deferred_guard=true"])
    if mode == "stop":
        with pytest.raises(FloatingPointError, match="step 7: " + ("loss term 'kl' is NaN" if term == "kl" else
                                                                   "the gradient of .* is (NaN|infinite)")):
            fit(cfg, tmp_path, callbacks=[Inject()])
        assert _step(tmp_path / "checkpoints/last.ckpt") == 6  # the last clean one: step 8's was never written
        assert all(torch.isfinite(v).all() for v in load(tmp_path / "checkpoints/last.ckpt").state_dict().values())
        return
    module, trainer = fit(cfg, tmp_path, callbacks=[Inject()])
    assert module.skipped_batches == 1 and trainer.global_step == 15
    assert all(torch.isfinite(v).all() for v in module.model.state_dict().values())
    assert torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)["skipped_batches"] == 1
    assert "train/skipped_batches" in (tmp_path / "logs/metrics.csv").read_text()


def test_on_the_cpu_the_guard_reads_every_step_unless_told(tmp_path: Path, data_dir: Path) -> None:
    cfg = load_config({"model": "vae", "name": "r"}, [*TINY[:-1], f"data.dir={data_dir}", "trainer.max_steps=1"])
    module, _ = fit(cfg, tmp_path)
    assert not module._deferred() and "_guard" not in module.__dict__
    module.train_cfg.deferred_guard = True
    assert module._deferred()


def test_a_bad_first_micro_batch_is_named_when_gradients_accumulate(tmp_path: Path, data_dir: Path) -> None:
    """With trainer.accumulate_grad_batches=2 the guard sees every micro-batch of a step, not only the last:
    a NaN loss in the first names its term (the gradients alone would only say that some gradient is NaN)."""
    Inject = _inject(6, "kl")  # the 7th call: the first micro-batch of optimizer step 3

    cfg = load_config({"model": "vae", "name": "r"},
                      [*TINY, f"data.dir={data_dir}", "trainer.accumulate_grad_batches=2"])
    with pytest.raises(FloatingPointError, match="step 3: loss term 'kl' is NaN"):
        fit(cfg, tmp_path, callbacks=[Inject()])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: CUDA's sync debug mode")
def test_on_a_gpu_cuda_sees_no_sync_between_reads(tmp_path: Path, data_dir: Path) -> None:
    class CudaSyncErrors(Callback):
        def on_train_batch_start(self, trainer, module, batch, idx) -> None:  # noqa: ANN001
            torch.cuda.set_sync_debug_mode("error")

        def on_train_batch_end(self, trainer, module, outputs, batch, idx) -> None:  # noqa: ANN001
            if trainer.global_step % EVERY == 0 or idx + 1 == trainer.num_training_batches:
                torch.cuda.set_sync_debug_mode("default")

    cfg = load_config({"model": "vae", "name": "r"}, [*TINY, f"data.dir={data_dir}", "trainer.accelerator=gpu"])
    try:
        _, trainer = fit(cfg, tmp_path, callbacks=[CudaSyncErrors()])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert trainer.global_step == 12
