"""Opening a model file never runs code: a pickle that would write a file when loaded is refused, by
vaekit.load, by --resume and by every CLI verb that opens a model, and the file is not written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import vaekit
from vaekit.cli import main


class _Payload:
    """Unpickling this calls Path.touch on the marker: code running at load time."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def _evil_checkpoint(folder: Path) -> tuple[Path, Path]:
    marker = folder / "pwned"
    ckpt = folder / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "hyper_parameters": {"config": _Payload(marker)}}, ckpt)
    return ckpt, marker


def test_the_payload_really_runs_code_when_unpickled(tmp_path: Path) -> None:
    ckpt, marker = _evil_checkpoint(tmp_path)
    torch.load(ckpt, weights_only=False)  # what an unsafe loader would do
    assert marker.exists()


def test_pickled_checkpoints_are_refused_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, marker = _evil_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="not a vaekit checkpoint, truncated, or unsafe to load"):
        vaekit.load(ckpt)
    calls = [["train", "vae", "--resume", str(ckpt), "--out", str(tmp_path / "run")],
             ["evaluate", str(ckpt)], ["sample", str(ckpt)], ["reconstruct", str(ckpt)], ["traverse", str(ckpt)]]
    for argv in calls:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "unsafe to load" in err and "\n" not in err.strip(), (argv, err)
    assert not marker.exists()


def test_a_run_writes_only_inside_its_directory(tmp_path: Path, data_dir: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Training, evaluating, sampling and traversing touch nothing outside the run directory given (not the
    working directory: no stray lightning_logs), and the data folder is only read."""
    cwd, run = tmp_path / "cwd", tmp_path / "run"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = {p: p.stat().st_mtime_ns for p in data_dir.rglob("*")}
    tiny = ["model.hidden=[16]", "model.latent_dim=2", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
            "train.progress_bar=false", "data.batch_size=16", "train.epochs=1", "eval.limit=20", "eval.nll_samples=3"]
    assert main(["train", "vae", *tiny, "--data-dir", str(data_dir), "--out", str(run)]) == 0
    for argv in (["evaluate", str(run), "--quiet"], ["sample", str(run)], ["reconstruct", str(run)],
                 ["traverse", str(run), "--images", "20"]):
        assert main([*argv[:2], *(["--data-dir", str(data_dir)] if argv[0] != "sample" else []), *argv[2:]]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "run"] and not list(cwd.iterdir())
    assert {p: p.stat().st_mtime_ns for p in data_dir.rglob("*")} == before


def test_downloads_are_verified_before_use(tmp_path: Path) -> None:
    """A mirror serving a corrupt file is skipped; when none serves the right file nothing is left in place."""
    import gzip
    import hashlib

    from vaekit.data.files import DataError, download
    from vaekit.data.mnist import check_md5

    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir(), bad.mkdir()
    (good / "f.gz").write_bytes(gzip.compress(b"the right bytes"))
    (bad / "f.gz").write_bytes(gzip.compress(b"tampered bytes"))
    md5 = hashlib.md5(b"the right bytes").hexdigest()
    dest = tmp_path / "cache" / "f.gz"
    download([bad.as_uri() + "/f.gz", good.as_uri() + "/f.gz"], dest, check=lambda p: check_md5(p, md5))
    assert gzip.decompress(dest.read_bytes()) == b"the right bytes"
    dest.unlink()
    with pytest.raises(DataError, match="md5 of content"):
        download([bad.as_uri() + "/f.gz"], dest, check=lambda p: check_md5(p, md5))
    assert not dest.exists() and not list(dest.parent.iterdir())
