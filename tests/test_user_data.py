"""The user-data sets (images, arrays, idx), built through the registry from small files made here."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import TypeAdapter, ValidationError

from vaekit.data.files import DataError
from vaekit.data.registry import build_data, get_data

RED, BLUE = (230, 20, 10), (10, 20, 230)


def _config(name: str, **kw):
    return get_data(name).config(**kw)


def _class_folder(root: Path, n: int = 20) -> Path:
    """root/cat: reddish 20x30 PNGs, root/dog: bluish 30x20 JPEGs (upper-case suffix), n of each."""
    for cls, colour, suffix, size in (("cat", RED, ".png", (30, 20)), ("dog", BLUE, ".JPG", (20, 30))):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", size, colour).save(root / cls / f"{i:02d}{suffix}")
    return root


# --- images -------------------------------------------------------------------------------------------------


def test_image_folder_splits_labels_and_values(tmp_path: Path) -> None:
    folder = _class_folder(tmp_path / "pets")
    (folder / "cat" / "._00.png").write_bytes(b"macOS resource fork, not an image")  # hidden: skipped
    cfg = _config("images", dir=str(folder), size=(16, 16), channels=3, batch_size=8, test_fraction=0.25,
                  binarize="none")
    splits = build_data(cfg)
    assert splits.input_shape == (3, 16, 16)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (27, 3, 10)  # 40 = 30 + 10, 10% of 30 val
    assert splits.defaults["n_classes"] == 2
    assert splits.observation == "discrete8"
    batch = splits.test.__getitems__(list(range(10)))
    x, y = batch["x"], batch["y"]
    assert x.shape == (10, 3, 16, 16) and set(y.tolist()) <= {0, 1}
    # Labels follow the sorted subfolder names (cat = 0, dog = 1) and the pixels follow the label.
    mean_rgb = x.mean(dim=(2, 3)) * 255
    expect = torch.tensor([RED if c == 0 else BLUE for c in y.tolist()], dtype=torch.float32)
    assert torch.allclose(mean_rgb, expect, atol=4)
    # Grey levels are served as k / 255.
    assert torch.equal(x * 255, (x * 255).round())
    # Every image lands in exactly one split, all labels are there.
    ys = torch.cat([s.__getitems__(list(range(len(s))))["y"] for s in (splits.train, splits.val, splits.test)])
    assert ys.bincount().tolist() == [20, 20]
    # The same folder and seed give the same split.
    again = build_data(cfg).test.__getitems__(list(range(10)))
    assert torch.equal(again["x"], x) and torch.equal(again["y"], y)


def test_image_folder_resizes_the_short_side_then_centre_crops(tmp_path: Path) -> None:
    folder = tmp_path / "flat"
    folder.mkdir()
    # Wide images: black left and right thirds, white centre. Resizing the short side to 8 and centre
    # cropping keeps only the white middle; squashing the whole width would keep the black.
    a = np.zeros((16, 48), dtype=np.uint8)
    a[:, 16:32] = 255
    for i in range(6):
        Image.fromarray(a).save(folder / f"{i}.png")
    cfg = _config("images", dir=str(folder), size=(8, 8), channels=1, batch_size=4, test_fraction=0.5,
                  binarize="none")
    splits = build_data(cfg)
    assert splits.input_shape == (1, 8, 8)
    assert "n_classes" not in splits.defaults
    assert (len(splits.train), len(splits.val), len(splits.test)) == (2, 1, 3)
    batch = splits.train.__getitems__([0, 1])
    assert "y" not in batch
    assert batch["x"].shape == (2, 1, 8, 8)
    assert batch["x"].min() > 0.9  # the white middle only
    reference = np.asarray(Image.fromarray(a).resize((24, 8), Image.Resampling.LANCZOS))[:, 8:16]
    assert torch.equal((batch["x"] * 255).round().to(torch.uint8), torch.from_numpy(reference).expand(2, 1, 8, 8))


def test_dynamic_binarization_serves_zeros_and_ones(tmp_path: Path) -> None:
    folder = tmp_path / "grey"
    folder.mkdir()
    for i in range(10):
        Image.new("L", (8, 8), 128).save(folder / f"{i}.png")
    splits = build_data(_config("images", dir=str(folder), size=(8, 8), batch_size=4))
    x = splits.train.__getitems__(list(range(len(splits.train))))["x"]
    assert set(x.unique().tolist()) == {0.0, 1.0}
    assert 0.3 < x.mean().item() < 0.7  # p = 128 / 255


def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    folder = _class_folder(tmp_path / "pets", n=2)
    bad = folder / "dog" / "broken.png"
    bad.write_bytes(np.random.default_rng(0).bytes(200))
    with pytest.raises(DataError, match="broken.png: not a readable image") as e:
        build_data(_config("images", dir=str(folder), size=(8, 8)))
    assert str(bad) in str(e.value) and "\n" not in str(e.value)


def test_empty_or_missing_image_folder(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="empty: no .png / .jpg / .jpeg images"):
        build_data(_config("images", dir=str(tmp_path / "empty")))
    with pytest.raises(DataError, match=r"data.dir \(--data-dir\) must name"):
        build_data(_config("images"))
    with pytest.raises(DataError, match="nowhere: not found"):
        build_data(_config("images", dir=str(tmp_path / "nowhere")))


def test_images_beside_class_folders_are_refused(tmp_path: Path) -> None:
    folder = _class_folder(tmp_path / "pets", n=2)
    Image.new("L", (8, 8)).save(folder / "stray.png")
    with pytest.raises(DataError, match="stray.png: image in the top folder beside class subfolders"):
        build_data(_config("images", dir=str(folder), size=(8, 8)))


def test_config_constraints_are_checked_by_pydantic() -> None:
    adapter = TypeAdapter(get_data("images").config)
    assert adapter.validate_python({"dir": "d", "size": [12, 10], "channels": 3}).size == (12, 10)
    for bad in ({"test_fraction": 1.0}, {"channels": 2}, {"size": [0, 8]}, {"val_fraction": -0.1}):
        with pytest.raises(ValidationError):
            adapter.validate_python(bad)
    assert TypeAdapter(get_data("idx").config).validate_python({"md5": {"a": "b"}}).md5 == {"a": "b"}


# --- arrays -------------------------------------------------------------------------------------------------


def test_npz_float_channels_last_with_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((30, 6, 5, 3)).astype(np.float32)  # [N, H, W, C], floats in [0, 1]
    y = np.arange(30) % 4
    path = tmp_path / "data.npz"
    np.savez(path, images=x, labels=y)
    splits = build_data(_config("arrays", dir=str(path), binarize="none", batch_size=8, test_fraction=0.2))
    assert splits.input_shape == (3, 6, 5)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (22, 2, 6)
    assert splits.defaults["n_classes"] == 4
    # Served values are the quantized floats, channels moved first; each row matched to its source by label.
    test = splits.test.__getitems__(list(range(6)))
    for xi, yi in zip(test["x"], test["y"], strict=True):
        src = np.rint(x[y == yi.item()].transpose(0, 3, 1, 2) * 255) / 255
        assert any(np.allclose(xi.numpy(), s, atol=1e-6) for s in src)


def test_folder_with_one_npy_uint8_channels_first_and_dequantized(tmp_path: Path) -> None:
    x = np.arange(12 * 1 * 4 * 4, dtype=np.int64).reshape(12, 1, 4, 4) % 256  # int64 holding 0..255 is fine
    np.save(tmp_path / "only.npy", x)
    splits = build_data(_config("arrays", dir=str(tmp_path), binarize="none", dequantize="uniform", val_size=2))
    assert splits.input_shape == (1, 4, 4) and splits.observation == "dequantized"
    assert (len(splits.train), len(splits.val), len(splits.test)) == (9, 2, 1)
    served = splits.train.__getitems__([0, 1])["x"]
    levels = (served * 256).floor()  # (k + u) / 256
    assert served.shape == (2, 1, 4, 4) and ((served > 0) & (served < 1)).all()
    assert set(levels.flatten().tolist()) <= set(range(192))


def test_npz_explicit_test_split_and_bool(tmp_path: Path) -> None:
    xtr = np.zeros((10, 5, 5), dtype=bool)
    xtr[:, 2] = True
    path = tmp_path / "split.npz"
    np.savez(path, x_train=xtr, x_test=np.ones((4, 5, 5), dtype=bool), y_train=np.arange(10) % 2,
             y_test=np.array([[0], [1], [2], [1]]))  # Keras-style [N, 1] labels
    splits = build_data(_config("arrays", dir=str(path), binarize="none"))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (9, 1, 4)
    assert splits.defaults["n_classes"] == 3
    test = splits.test.__getitems__([0, 1, 2, 3])
    assert torch.equal(test["x"], torch.ones(4, 1, 5, 5)) and test["y"].tolist() == [0, 1, 2, 1]
    row = splits.train.__getitems__([0])["x"][0, 0]
    assert row[2].tolist() == [1.0] * 5 and row.sum().item() == 5


class _WritesMarker:
    """Unpickling this calls open(marker, "w"): the file appears only if the pickle was run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.mark.parametrize("suffix", [".npz", ".npy"])
def test_pickled_arrays_are_refused_not_run(tmp_path: Path, suffix: str) -> None:
    marker = tmp_path / "pwned"
    evil = np.empty(3, dtype=object)
    evil[:] = [_WritesMarker(marker)] * 3
    path = tmp_path / f"evil{suffix}"
    if suffix == ".npz":
        np.savez(path, x=evil)
    else:
        np.save(path, evil, allow_pickle=True)
    with pytest.raises(DataError, match="holds pickled Python objects") as e:
        build_data(_config("arrays", dir=str(path)))
    assert str(path) in str(e.value)
    assert not marker.exists()
    # The file is really armed: loading it the unsafe way writes the marker.
    loaded = np.load(path, allow_pickle=True)
    _ = loaded["x"] if suffix == ".npz" else loaded
    assert marker.exists()


@pytest.mark.parametrize(("arrays", "message"), [
    ({"x": np.zeros((5, 8), np.uint8)}, r"\['x'\]: shape \(5, 8\): expected \[N, H, W\]"),
    ({"x": np.full((5, 4, 4), 1.5)}, r"float values span \[1.5, 1.5\]; expected \[0, 1\]"),
    ({"x": np.full((5, 4, 4), np.nan)}, "NaN"),
    ({"x": np.zeros((5, 4, 4, 4), np.uint8)}, "no channel axis of 1 or 3"),
    ({"x": np.zeros((5, 4, 4), np.uint8), "y": np.zeros(4, np.int64)}, r"\['y'\]: 4 labels for 5 images"),
    ({"x": np.zeros((5, 4, 4), np.uint8), "y": np.zeros(5)}, "labels must be integers"),
    ({"x": np.zeros((5, 4, 4), np.uint8), "label": np.zeros(5, np.int64)}, "unexpected key 'label'"),
    ({"x_train": np.zeros((5, 4, 4), np.uint8)}, "no 'x_test'"),
])
def test_bad_arrays_name_the_file_and_the_problem(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message) as e:
        build_data(_config("arrays", dir=str(path)))
    assert str(e.value).startswith(str(path))


def test_arrays_folder_must_hold_exactly_one_file(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((4, 3, 3), np.uint8))
    np.save(tmp_path / "b.npy", np.zeros((4, 3, 3), np.uint8))
    with pytest.raises(DataError, match=r"2 .npy / .npz files \(a.npy, b.npy\)"):
        build_data(_config("arrays", dir=str(tmp_path)))


# --- idx ----------------------------------------------------------------------------------------------------


def _idx_bytes(a: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    return header + a.astype(np.uint8).tobytes()


def _idx_set(folder: Path, n_train: int = 30, n_test: int = 10) -> dict[str, np.ndarray]:
    """A 12x12 IDX set; the training files gzipped, the test files plain (both are accepted)."""
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 12, 12), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(n_train) % 3).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 12, 12), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 5).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        (gzip.open if name.endswith(".gz") else open)(folder / name, "wb").write(_idx_bytes(a))
    return arrays


def test_idx_set_shapes_labels_and_values(tmp_path: Path) -> None:
    arrays = _idx_set(tmp_path / "set")
    splits = build_data(_config("idx", dir=str(tmp_path / "set"), binarize="none", batch_size=8))
    assert splits.input_shape == (1, 12, 12)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (27, 3, 10)
    assert splits.defaults["n_classes"] == 5  # max label of either split + 1
    test = splits.test.__getitems__(list(range(10)))
    assert torch.equal((test["x"] * 255).round().to(torch.uint8)[:, 0],
                       torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))
    assert test["y"].tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    binary = build_data(_config("idx", dir=str(tmp_path / "set"))).train.__getitems__([0, 1])["x"]
    assert binary.shape == (2, 1, 12, 12) and set(binary.unique().tolist()) == {0.0, 1.0}


def test_idx4_colour_images(tmp_path: Path) -> None:
    folder = tmp_path / "rgb"
    _idx_set(folder)
    img = np.zeros((30, 6, 7, 3), np.uint8)
    img[..., 2] = 200  # blue, channels last
    (folder / "train-images-idx3-ubyte.gz").unlink()
    (folder / "train-images-idx3-ubyte").write_bytes(_idx_bytes(img))
    (folder / "t10k-images-idx3-ubyte").write_bytes(_idx_bytes(img[:10]))
    splits = build_data(_config("idx", dir=str(folder), binarize="none"))
    assert splits.input_shape == (3, 6, 7)
    x = splits.test.__getitems__([0])["x"][0]
    assert x[2].eq(200 / 255).all() and x[:2].eq(0).all()


def test_idx_md5_checked_and_mismatch_names_the_file(tmp_path: Path) -> None:
    arrays = _idx_set(tmp_path / "set")
    md5 = {name: hashlib.md5(_idx_bytes(a)).hexdigest() for name, a in arrays.items()}
    assert len(build_data(_config("idx", dir=str(tmp_path / "set"), md5=md5)).test) == 10
    md5["t10k-labels-idx1-ubyte"] = "0" * 32
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: md5 of content is [0-9a-f]{32}, expected 0{32}"):
        build_data(_config("idx", dir=str(tmp_path / "set"), md5=md5))
    md5["train-images-idx3-ubyte.gz"] = "f" * 32  # the uncompressed content of a .gz is what is summed
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: md5 of content"):
        build_data(_config("idx", dir=str(tmp_path / "set"), md5=md5))
    with pytest.raises(DataError, match="unknown file 'train-images'"):
        build_data(_config("idx", dir=str(tmp_path / "set"), md5={"train-images": "0" * 32}))


def test_truncated_or_missing_idx_file_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    _idx_set(folder)
    path = folder / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: truncated: 1433 data bytes, header promises 1440"):
        build_data(_config("idx", dir=str(folder)))
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: file not found \(nor train-labels-idx1-ubyte.gz\)"):
        build_data(_config("idx", dir=str(folder)))


def test_idx_label_count_must_match(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    _idx_set(folder)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(9, np.uint8)))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: 9 labels for the 10 images"):
        build_data(_config("idx", dir=str(folder)))


def test_sixteen_bit_greyscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    folder = tmp_path / "deep"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8), 128 * 257, dtype=np.uint16)).save(folder / f"{i}.png")
    splits = build_data(_config("images", dir=str(folder), size=(8, 8), binarize="none"))
    assert torch.equal(splits.test.__getitems__([0])["x"] * 255, torch.full((1, 1, 8, 8), 128.0))
