"""A run is never silently lost or corrupted: one writer per run folder, no overwrite without asking, a resume that
fails changes nothing, Ctrl-C leaves a checkpoint that resumes exactly, and damaged weights are named."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file

from vaekit.cli import main
from vaekit.run.callbacks import Interrupted
from vaekit.run.config import load_config
from vaekit.run.fit import fit
from vaekit.run.io import load

TINY = ["model.hidden=[16]", "model.latent_dim=3", "trainer.limit_train_batches=5", "trainer.limit_val_batches=1",
        "train.progress_bar=false", "train.log_every_n_steps=1", "data.batch_size=16", "train.epochs=2",
        "train.checkpoint_every_n_steps=2"]


def _train(run: Path, data_dir: Path, *extra: str) -> int:
    return main(["train", "vae", *TINY, "--data-dir", str(data_dir), "--out", str(run), *extra])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def trained(tmp_path: Path, data_dir: Path) -> Path:
    run = tmp_path / "run"
    assert _train(run, data_dir) == 0
    return run


def test_retraining_a_run_needs_resume_or_overwrite(trained: Path, data_dir: Path, capsys) -> None:  # noqa: ANN001
    before = _snapshot(trained)
    capsys.readouterr()
    assert _train(trained, data_dir) == 2
    line = _one_line(capsys.readouterr().err)
    assert "holds a run" in line and "--resume auto" in line and "--overwrite" in line
    assert _snapshot(trained) == before  # not a byte changed
    (trained / "eval_k5_n10.json").write_text("{}")  # an evaluation of the old weights goes with them
    (trained / "notes.txt").write_text("mine")  # a file the user put there stays
    assert _train(trained, data_dir, "model.latent_dim=2", "--overwrite") == 0
    assert yaml.safe_load((trained / "config.yaml").read_text())["model"]["latent_dim"] == 2
    assert load(trained).latent_dim == 2
    assert not (trained / "eval_k5_n10.json").exists() and (trained / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("change", [["model.latent_dim=5"], ["model.hidden=[8]"], ["data.val_size=5000"]])
def test_a_failed_resume_leaves_the_folder_byte_identical(trained: Path, data_dir: Path, change: list[str],
                                                          capsys) -> None:  # noqa: ANN001
    before = _snapshot(trained)
    capsys.readouterr()
    assert _train(trained, data_dir, *change, "--resume", "auto") == 2
    line = _one_line(capsys.readouterr().err)
    assert change[0].split("=")[0] in line, line  # names the setting that differs from the run's
    assert _snapshot(trained) == before
    load(trained)  # and the run still loads


def test_a_second_training_into_a_busy_folder_is_refused(tmp_path: Path, data_dir: Path, capsys) -> None:  # noqa: ANN001
    run = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "vaekit.cli", "train", "vae", *TINY, "train.epochs=30", "--data-dir", str(data_dir),
         "--out", str(run)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while not (run / ".vaekit.lock").exists() or not (run / ".vaekit.lock").read_text():
            assert first.poll() is None and time.time() < deadline, first.stdout.read() if first.stdout else ""
            time.sleep(0.05)
        # a conv_vae into the same folder, also with --overwrite: refused before anything is written
        for extra in ([], ["--overwrite"]):
            assert main(["train", "conv_vae", "model.latent_dim=3", "--data-dir", str(data_dir), "--out", str(run),
                         *extra]) == 2
            line = _one_line(capsys.readouterr().err)
            assert "is in use by pid" in line and f"{first.pid}" in line, line
    finally:
        out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out[-2000:]
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["name"] == "vae"
    assert type(load(run)).__name__ == "VAE"
    assert (run / ".vaekit.lock").read_text() == ""  # the holder's name goes when the hold does


class _SignalAt(Callback):
    """Sends this process a signal at the end of one step (as a Ctrl-C at that moment would)."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, *args) -> None:  # noqa: ANN001, ANN002
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_a_checkpoint_that_resumes_to_the_same_weights(tmp_path: Path, data_dir: Path,
                                                                      signum: int) -> None:
    over = [*TINY, f"data.dir={data_dir}", "train.checkpoint_every_n_steps=1000", "train.epochs=3"]
    cfg = lambda: load_config({"model": "vae", "name": "r"}, over)  # noqa: E731
    fit(cfg(), tmp_path / "full")
    with pytest.raises(Interrupted, match=f"stopped by {signal.Signals(signum).name} at step 7"):
        fit(cfg(), tmp_path / "cut", callbacks=[_SignalAt(7, signum)])  # step 7 of 15, in the second epoch
    ckpt = torch.load(tmp_path / "cut/checkpoints/last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 7  # not the end of epoch 1 (step 5): nothing done is lost
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are given back
    fit(cfg(), tmp_path / "cut", resume="auto")
    full = load_file(str(tmp_path / "full/model.safetensors"))
    resumed = load_file(str(tmp_path / "cut/model.safetensors"))
    for k, v in full.items():
        assert torch.equal(resumed[k], v), k


@pytest.mark.slow
def test_ctrl_c_on_the_command_line_prints_the_command_that_resumes(tmp_path: Path, data_dir: Path) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "vaekit.cli", "train", "vae", *TINY, "train.epochs=200",
           "train.checkpoint_every_n_steps=1", "--data-dir", str(data_dir), "--out", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "checkpoints" / "last.ckpt").exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err[-2000:]
    assert "stopped by SIGINT at step" in out and "resume with:" in out, out
    resume = out.strip().splitlines()[-1].strip()
    assert resume.startswith("vaekit train vae") and resume.endswith("--resume auto")
    step = torch.load(run / "checkpoints/last.ckpt", weights_only=True)["global_step"]
    assert 0 < step < 1000


def test_damaged_weights_are_named_by_every_verb(trained: Path, capsys, tmp_path: Path) -> None:  # noqa: ANN001
    assert main(["check", str(trained)]) == 0
    assert "is whole" in capsys.readouterr().out
    if shutil.which("sha256sum"):  # the record is the standard tool's format
        assert subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=trained,
                              capture_output=True).returncode == 0
    assert {p.stat().st_mode & 0o777 for p in trained.glob("*.safetensors")} == {0o666 & ~_umask()}
    model = trained / "model.safetensors"
    model.write_bytes(model.read_bytes()[:-100])  # truncated: best.safetensors is what the verbs read
    assert main(["sample", str(trained), "-n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert "model.safetensors: damaged or truncated" in _one_line(capsys.readouterr().err)
    assert main(["check", str(trained)]) == 2
    out, err = capsys.readouterr()
    assert "model.safetensors" in _one_line(err) and "damaged" in out
    best = trained / "best.safetensors"
    data = bytearray(best.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit: the file still parses, its checksum does not match
    best.write_bytes(bytes(data))
    assert main(["sample", str(trained), "-n", "4", "--out", str(tmp_path / "t.png")]) == 2
    assert "best.safetensors: damaged or truncated" in capsys.readouterr().err
    with pytest.raises(Exception, match="best.safetensors: damaged"):
        load(trained)
    assert not (tmp_path / "t.png").exists()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_truncated_checkpoint_is_named_in_one_whole_line(trained: Path, data_dir: Path, capsys) -> None:  # noqa: ANN001
    ckpt = trained / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:5000])
    assert _train(trained, data_dir, "--resume", "auto") == 2
    line = _one_line(capsys.readouterr().err)
    assert "last.ckpt: damaged or truncated" in line
    (trained / "SHA256SUMS").unlink()  # a run from before checksums: torch's own reader names the file
    assert _train(trained, data_dir, "--resume", "auto") == 2
    line = _one_line(capsys.readouterr().err)
    assert "last.ckpt: not a vaekit checkpoint, truncated, or unsafe to load (" in line and line.endswith(")")


def test_a_training_that_fails_early_leaves_no_empty_folder(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    empty = tmp_path / "nothing_here"
    empty.mkdir()
    assert main(["train", "vae", "--data-dir", str(empty), "--out", str(tmp_path / "new")]) == 2
    assert "error" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(("text", "expect"), [("", "the recipe is empty"), ("model: vae\nmodel: conv_vae\n",
                                                                            "key 'model' appears twice (line 2)"),
                                              ("train:\n  lr: 1\n  lr: 2\n", "key 'lr' appears twice (line 3)")])
def test_empty_recipes_and_duplicate_keys_are_refused(tmp_path: Path, text: str, expect: str,
                                                      capsys) -> None:  # noqa: ANN001
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    assert main(["train", str(recipe), "--out", str(tmp_path / "run")]) == 2
    assert expect in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()
