"""Faults a long run must survive: SIGKILL mid-epoch, SIGKILL while a checkpoint is being written, a NaN or Inf
in a loss term or a gradient, an unwritable run directory or a full disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vaekit.cli import main
from vaekit.run.config import load_config
from vaekit.run.fit import fit
from vaekit.run.io import load

TINY = [
    "model.hidden=[32]", "model.latent_dim=4", "trainer.limit_train_batches=5", "trainer.limit_val_batches=2",
    "train.progress_bar=false", "train.log_every_n_steps=1", "data.batch_size=32", "train.epochs=3",
    "train.checkpoint_every_n_steps=2",
]

# A real training process (one thread, as the resumed and the uninterrupted runs), killed with SIGKILL by itself
# at a chosen point: at the end of step STOP, or halfway through writing the checkpoint of step TORN.
SCRIPT = """
import os, signal, sys
import torch
torch.set_num_threads(1)
from lightning.pytorch.callbacks import Callback
import lightning.fabric.plugins.io.torch_io as torch_io
from vaekit.run.config import load_config
from vaekit.run.fit import fit

run, overrides, resume = sys.argv[1], sys.argv[2].split(";"), sys.argv[5]
stop, torn = int(sys.argv[3]), int(sys.argv[4])
save = torch_io._atomic_save

def torn_save(checkpoint, path):
    if checkpoint["global_step"] == torn:
        with open(path, "wb") as f:  # half a checkpoint reaches the disk, then the process dies
            f.write(b"PK" + os.urandom(1000))
            f.flush()
            os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    save(checkpoint, path)

torch_io._atomic_save = torn_save

class Kill(Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == stop:
            os.kill(os.getpid(), signal.SIGKILL)

fit(load_config({"model": "vae", "name": "r"}, overrides), run, resume=resume or None, callbacks=[Kill()])
"""


def _train(run: Path, data_dir: Path, stop: int = -1, torn: int = -1, resume: str = "") -> int:
    over = ";".join([*TINY, f"data.dir={data_dir}"])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(run), over, str(stop), str(torn), resume], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, -signal.SIGKILL), done.stderr[-2000:]
    return done.returncode


def _step(ckpt: Path) -> int:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_auto_ends_with_the_same_weights(tmp_path: Path, data_dir: Path) -> None:
    assert _train(tmp_path / "full", data_dir) == 0
    assert _train(tmp_path / "cut", data_dir, stop=7) == -signal.SIGKILL  # step 7 of 15, in the second epoch
    assert _step(tmp_path / "cut/checkpoints/last.ckpt") == 6  # the last checkpoint before the kill
    assert _train(tmp_path / "cut", data_dir, resume="auto") == 0
    full = load_file(str(tmp_path / "full/model.safetensors"))
    resumed = load_file(str(tmp_path / "cut/model.safetensors"))
    assert _step(tmp_path / "cut/checkpoints/last.ckpt") == 15
    for k, v in full.items():  # same process set-up, same data order and noise: the same weights, bit for bit
        assert torch.equal(resumed[k], v), k


@pytest.mark.slow
def test_sigkill_while_writing_a_checkpoint_leaves_the_previous_one(tmp_path: Path, data_dir: Path) -> None:
    assert _train(tmp_path / "cut", data_dir, torn=8) == -signal.SIGKILL
    assert _step(tmp_path / "cut/checkpoints/last.ckpt") == 6  # whole and readable; the torn file was a temporary
    assert _train(tmp_path / "cut", data_dir, resume="auto") == 0
    assert _step(tmp_path / "cut/checkpoints/last.ckpt") == 15
    assert not list((tmp_path / "cut/checkpoints").glob(".*.tmp"))


class _NaNAt:
    """Wraps model.loss so that at one training step a loss term (as a bad batch would make it) or a gradient is
    NaN."""

    def __init__(self, model: torch.nn.Module, step: int, term: str) -> None:
        self.model, self.step, self.term, self.calls = model, step, term, 0
        self.inner = model.loss

    def __call__(self, batch: dict) -> object:
        out = self.inner(batch)
        if self.model.training:
            self.calls += 1
            if self.calls == self.step + 1:
                if self.term == "grad":  # the loss stays finite; d/dw sqrt(0 * w) = 0 / (2 sqrt(0)) is NaN
                    w = next(self.model.parameters())
                    out.loss = out.loss + torch.sqrt(w.flatten()[0] * 0)
                else:
                    out.terms[self.term] = out.terms[self.term] * float("nan")
                    out.loss = out.loss * float("nan")
        return out


def _fit_with_fault(tmp_path: Path, data_dir: Path, term: str, mode: str) -> tuple:
    from lightning.pytorch.callbacks import Callback

    class Inject(Callback):
        def on_fit_start(self, trainer, module) -> None:  # noqa: ANN001
            module.model.loss = _NaNAt(module.model, 7, term)

    cfg = load_config({"model": "vae", "name": "r"}, [*TINY, f"data.dir={data_dir}", f"train.nonfinite={mode}"])
    return fit(cfg, tmp_path, callbacks=[Inject()])


@pytest.mark.parametrize("term", ["kl", "grad"])
def test_a_nonfinite_step_stops_naming_the_step_and_term(tmp_path: Path, data_dir: Path, term: str) -> None:
    with pytest.raises(FloatingPointError, match="step 7: " + ("loss term 'kl' is NaN" if term == "kl" else
                                                               "the gradient of .* is (NaN|infinite)")):
        _fit_with_fault(tmp_path, data_dir, term, "stop")
    assert _step(tmp_path / "checkpoints/last.ckpt") == 6  # the last good checkpoint, untouched
    assert all(torch.isfinite(v).all() for v in load(tmp_path / "checkpoints/last.ckpt").state_dict().values())


@pytest.mark.parametrize("term", ["kl", "grad"])
def test_skip_leaves_the_batch_out_and_counts_it(tmp_path: Path, data_dir: Path, term: str) -> None:
    module, trainer = _fit_with_fault(tmp_path, data_dir, term, "skip")
    assert module.skipped_batches == 1
    assert all(torch.isfinite(v).all() for v in module.model.state_dict().values())
    assert _step(tmp_path / "checkpoints/last.ckpt") == trainer.global_step
    assert torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)["skipped_batches"] == 1
    assert "train/skipped_batches" in (tmp_path / "logs/metrics.csv").read_text()


def test_an_unwritable_run_directory_fails_before_training(tmp_path: Path, data_dir: Path, capsys) -> None:  # noqa: ANN001
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "run"):
        assert main(["train", "vae", *TINY, "--data-dir", str(data_dir), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert str(blocker) in err and "\n" not in err, err


def test_a_full_disk_fails_before_training(tmp_path: Path, data_dir: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=10 * 2**20))
    assert main(["train", "vae", *TINY, "--data-dir", str(data_dir), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "only 10 MiB free" in err and "\n" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()
