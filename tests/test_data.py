"""MNIST loading, validation errors, binarization and batch serving."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import pytest
import torch

from vaekit.data import DataError, build_data, mnist
from vaekit.data.batches import EpochBatches, TensorExamples, bernoulli_thresholds, draw_binary, loader
from vaekit.data.mnist import MNISTConfig


def test_mnist_shapes_counts_and_labels(mnist: dict[str, torch.Tensor]) -> None:
    assert mnist["train_images"].shape == (60000, 1, 28, 28)
    assert mnist["test_images"].shape == (10000, 1, 28, 28)
    assert mnist["train_images"].dtype == torch.uint8
    assert mnist["train_labels"].bincount().tolist()[:1] == [5923]  # the well-known count of zeros
    assert set(mnist["test_labels"].unique().tolist()) == set(range(10))


def test_splits_hold_out_validation_and_fix_the_test_binarization(data_dir: Path) -> None:
    a = build_data(MNISTConfig(dir=str(data_dir), val_size=5000))
    b = build_data(MNISTConfig(dir=str(data_dir), val_size=5000))
    assert (len(a.train), len(a.val), len(a.test)) == (55000, 5000, 10000)
    assert a.input_shape == (1, 28, 28) and a.defaults["n_classes"] == 10 and a.observation == "binary"
    assert torch.equal(a.test.data, b.test.data)  # fixed-seed binarized test set
    assert set(a.test.data.unique().tolist()) == {0, 255}
    idx = list(range(256))
    x1, x2 = a.train.__getitems__(idx)["x"], a.train.__getitems__(idx)["x"]
    assert set(x1.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(x1, x2)  # dynamic binarization: a fresh draw each time
    # ... whose mean is the grey level (the Bernoulli parameter).
    grey = a.train.data[idx].float() / 255
    torch.testing.assert_close(torch.stack([a.train.__getitems__(idx)["x"] for _ in range(200)]).mean(0).mean(),
                               grey.mean(), atol=2e-3, rtol=0)


def test_binary_draws_have_the_grey_level_as_probability() -> None:
    """Every 8-bit level v fires with probability 257 v / 65536 (= v / 255 to 1.6e-5); v = 0 never fires."""
    levels = torch.arange(256, dtype=torch.uint8).repeat(4000)  # 4,000 draws per level
    torch.manual_seed(0)
    x = draw_binary(bernoulli_thresholds(levels)).view(4000, 256)
    p = torch.arange(256) * 257 / 65536
    freq = x.mean(0).double()
    assert freq[0] == 0
    assert ((freq - p).abs() <= 5 * (p * (1 - p) / 4000).sqrt() + 1e-9).all()  # five standard errors
    torch.manual_seed(0)
    assert torch.equal(draw_binary(bernoulli_thresholds(levels)).view(4000, 256), x)  # seeded: reproducible


def test_loader_serves_whole_batches() -> None:
    data = TensorExamples(torch.randint(0, 256, (50, 1, 4, 4), dtype=torch.uint8), torch.arange(50))
    batches = list(loader(data, 16, shuffle=True))
    assert [b["x"].shape[0] for b in batches] == [16, 16, 16, 2]
    assert sorted(torch.cat([b["y"] for b in batches]).tolist()) == list(range(50))


def _epoch(data: TensorExamples, seed: int, epoch: int, skip: int = 0) -> list[dict[str, torch.Tensor]]:
    dl = loader(data, 8, shuffle=True, seed=seed)
    dl.batch_sampler.set_epoch(epoch)
    if skip:
        dl.batch_sampler.skip(epoch, skip)
    return list(dl)


def test_batches_are_a_function_of_seed_epoch_and_position() -> None:
    """Order and binarization come from (seed, epoch, batch) alone: the global RNG does not move them, a new
    epoch changes them, and skipping n batches (a resume) serves exactly the rest."""
    data = TensorExamples(torch.randint(0, 256, (40, 1, 4, 4), dtype=torch.uint8), torch.arange(40), "dynamic")
    torch.manual_seed(1)
    a = _epoch(data, seed=3, epoch=2)
    torch.manual_seed(99)
    torch.rand(100)  # the global generator elsewhere in its stream
    b = _epoch(data, seed=3, epoch=2)
    assert all(torch.equal(x["x"], y["x"]) and torch.equal(x["y"], y["y"]) for x, y in zip(a, b, strict=True))
    c = _epoch(data, seed=3, epoch=3)
    assert not torch.equal(a[0]["y"], c[0]["y"])
    rest = _epoch(data, seed=3, epoch=2, skip=2)
    assert len(rest) == len(a) - 2
    assert all(torch.equal(x["x"], y["x"]) for x, y in zip(a[2:], rest, strict=True))
    assert _epoch(data, seed=3, epoch=2)[0]["y"].tolist() == a[0]["y"].tolist()  # the skip was used once


def test_global_batches_split_between_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under DDP each process takes its share of every global batch: none seen twice, none dropped."""
    import vaekit.data.batches as batches

    seen = []
    for rank in (0, 1):
        monkeypatch.setattr(batches, "_world", lambda r=rank: (r, 2))
        sampler = EpochBatches(37, 8, shuffle=True, seed=0)
        sampler.set_epoch(1)
        mine = list(sampler)
        assert len(mine) == len(sampler) == 3  # the same number of steps on both
        seen += [i for b in mine for i in b]
    assert sorted(seen) == list(range(37))


def test_dequantized_values_lie_in_their_bins() -> None:
    levels = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).repeat(20, 1, 1, 1)
    x = TensorExamples(levels, None, "dequantized").head(20)["x"]
    k = levels.float()
    assert bool(((x >= k / 256) & (x < (k + 1) / 256)).all())
    assert abs(float((x * 256 - k).mean()) - 0.5) < 0.02  # u ~ U(0, 1)


def _copy_mnist(src: Path, dst: Path) -> Path:
    folder = dst / "mnist"
    shutil.copytree(src / "mnist", folder)
    return folder


def _write_idx(path: Path, payload: bytes) -> None:
    with gzip.open(path, "wb") as f:
        f.write(payload)


def test_corrupt_magic_number_names_the_file(tmp_path: Path, data_dir: Path) -> None:
    folder = _copy_mnist(data_dir, tmp_path)
    bad = folder / "t10k-labels-idx1-ubyte.gz"
    _write_idx(bad, struct.pack(">4BI", 0, 0, 9, 1, 10000) + bytes(10000))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: bad IDX magic number"):
        mnist.read_idx(bad, (10000,))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: md5"):
        mnist.load(tmp_path)  # the checksum catches it first in a normal load


def test_truncated_file_raises_clear_error(tmp_path: Path, data_dir: Path) -> None:
    folder = _copy_mnist(data_dir, tmp_path)
    path = folder / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(path, "rb") as f:
        raw = f.read()
    _write_idx(path, raw[:5000])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: truncated: 4992 data bytes, header promises"):
        mnist.read_idx(path, (10000,))
    # A gzip stream cut mid-way is caught too.
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz"):
        mnist.load(tmp_path)


def test_wrong_shape_and_missing_file(tmp_path: Path, data_dir: Path) -> None:
    folder = _copy_mnist(data_dir, tmp_path)
    with pytest.raises(DataError, match=r"header says shape \(10000,\), expected \(60000,\)"):
        mnist.read_idx(folder / "t10k-labels-idx1-ubyte.gz", (60000,))
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: file not found"):
        mnist.load(tmp_path)


def test_audio_clips_are_padded_and_measured() -> None:
    from vaekit.data.batches import AudioClips

    clips = [torch.ones(3), torch.full((5,), 2.0), torch.full((1,), -1.0)]
    batch = list(loader(AudioClips(clips, torch.tensor([0, 1, 2])), 3, shuffle=False))[0]
    assert batch["x"].tolist() == [[1, 1, 1, 0, 0], [2, 2, 2, 2, 2], [-1, 0, 0, 0, 0]]
    assert batch["lengths"].tolist() == [3, 5, 1] and batch["y"].tolist() == [0, 1, 2]


def test_one_writer_for_every_figure_type(tmp_path: Path) -> None:
    import json
    import wave

    from PIL import Image

    from vaekit.core.drawing import write_figure
    from vaekit.core.figures import AudioClip, Curve, ImageGrid, Table

    png = write_figure(ImageGrid(torch.rand(6, 1, 8, 8), nrow=3), tmp_path / "grid")
    assert Image.open(png).size == (2 * (3 * 10 + 2), 2 * (2 * 10 + 2))  # 3 x 2 tiles of 8 px, 2 px gaps, x2
    t = torch.arange(800) / 8000
    wav = write_figure(AudioClip(0.5 * torch.sin(2 * torch.pi * 440 * t), 8000), tmp_path / "tone")
    with wave.open(str(wav)) as w:
        assert (w.getframerate(), w.getnframes(), w.getsampwidth()) == (8000, 800, 2)
    chart = write_figure(Curve([1, 2, 3], {"nll": [3.0, 2.0, 1.5]}, "epoch", "nats"), tmp_path / "curve")
    assert chart.suffix == ".png" and Image.open(chart).size[0] > 100
    table = write_figure(Table([{"k": 1, "nll": 90.1}, {"k": 50, "nll": 88.0}]), tmp_path / "table")
    assert json.loads(table.read_text())[1] == {"k": 50, "nll": 88.0}
    assert (tmp_path / "table.md").read_text().splitlines()[0] == "| k | nll |"
    with pytest.raises(TypeError, match="no writer for figures of type str"):
        write_figure("nope", tmp_path / "x")  # type: ignore[arg-type]


def test_a_last_global_batch_smaller_than_the_world_still_feeds_every_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import vaekit.data.batches as batches

    sizes = []
    for rank in (0, 1):
        monkeypatch.setattr(batches, "_world", lambda r=rank: (r, 2))
        sampler = EpochBatches(101, 50, shuffle=False)
        sizes.append([len(b) for b in sampler])
    assert sizes == [[50, 1], [50, 1]]  # 101 = 2 x 50 + 1: the one left over is paired with a padded example
