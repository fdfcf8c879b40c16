"""MNIST loading, validation errors, binarization and batch serving."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import pytest
import torch

from vaekit.config import DataConfig
from vaekit.data import DataError, build, mnist
from vaekit.data.batches import TensorImages, bernoulli_thresholds, draw_binary, loader


def test_mnist_shapes_counts_and_labels(mnist: dict[str, torch.Tensor]) -> None:
    assert mnist["train_images"].shape == (60000, 1, 28, 28)
    assert mnist["test_images"].shape == (10000, 1, 28, 28)
    assert mnist["train_images"].dtype == torch.uint8
    assert mnist["train_labels"].bincount().tolist()[:1] == [5923]  # the well-known count of zeros
    assert set(mnist["test_labels"].unique().tolist()) == set(range(10))


def test_splits_hold_out_validation_and_fix_the_test_binarization(data_dir: Path) -> None:
    a = build(DataConfig(dir=str(data_dir), val_size=5000))
    b = build(DataConfig(dir=str(data_dir), val_size=5000))
    assert (len(a.train), len(a.val), len(a.test)) == (55000, 5000, 10000)
    assert a.input_shape == (1, 28, 28)
    assert torch.equal(a.test.images, b.test.images)  # fixed-seed binarized test set
    assert set(a.test.images.unique().tolist()) == {0, 255}
    idx = list(range(256))
    x1, x2 = a.train.__getitems__(idx)["x"], a.train.__getitems__(idx)["x"]
    assert set(x1.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(x1, x2)  # dynamic binarization: a fresh draw each time
    # ... whose mean is the grey level (the Bernoulli parameter).
    grey = a.train.images[idx].float() / 255
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
    data = TensorImages(torch.randint(0, 256, (50, 1, 4, 4), dtype=torch.uint8), torch.arange(50))
    batches = list(loader(data, 16, shuffle=True))
    assert [b["x"].shape[0] for b in batches] == [16, 16, 16, 2]
    assert sorted(torch.cat([b["y"] for b in batches]).tolist()) == list(range(50))


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
