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
    with pytest.raises(ValueError, match="not a vaekit checkpoint, or unsafe to load"):
        vaekit.load(ckpt)
    calls = [["train", "vae", "--resume", str(ckpt), "--out", str(tmp_path / "run")],
             ["evaluate", str(ckpt)], ["sample", str(ckpt)], ["reconstruct", str(ckpt)], ["traverse", str(ckpt)]]
    for argv in calls:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "unsafe to load" in err and "\n" not in err.strip(), (argv, err)
    assert not marker.exists()
