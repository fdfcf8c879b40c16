"""Property-based fuzzing (hypothesis) of what reads user input: the config parser and overrides, recipes as YAML
text, IDX files, NumPy arrays, image files, WAV files and safetensors model files. The property each time: the input is
accepted and gives a well-formed result, or it is refused with vaekit's own one-line error naming the file or
key; never a raw traceback from deeper down, never a hang.

Each test runs a bounded number of examples (FUZZ_EXAMPLES, raised with $VAEKIT_FUZZ_EXAMPLES) and counts the
inputs it actually tried; with $VAEKIT_FUZZ_REPORT set, the counts are written there as JSON."""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import save_file

from vaekit.data.arrays import load_arrays
from vaekit.data.files import DataError
from vaekit.data.idx import read_idx
from vaekit.data.images import read_image
from vaekit.run.config import ConfigError, load_config, model_config
from vaekit.run.io import load

FUZZ_EXAMPLES = int(os.environ.get("VAEKIT_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TRIED: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def _report() -> object:
    yield
    if os.environ.get("VAEKIT_FUZZ_REPORT"):
        Path(os.environ["VAEKIT_FUZZ_REPORT"]).write_text(json.dumps(TRIED, indent=2))


def _count(name: str) -> None:
    TRIED[name] = TRIED.get(name, 0) + 1


def _one_line(e: BaseException) -> str:
    msg = str(e)
    assert msg and "\n" not in msg.strip() and "Traceback" not in msg, repr(msg)
    return msg


# -- the config parser --------------------------------------------------------------------------------------------
KEYS = ["train.epochs", "train.lr", "train.seed", "train.loggers", "train.nonfinite", "train.threads",
        "train.checkpoint_every_n_steps", "data.batch_size", "data.binarize", "data.name", "model.latent_dim",
        "model.hidden", "model.likelihood", "model.kl_weight", "model.kl_weight.length", "trainer.max_steps",
        "trainer.devices", "trainer.precision", "trainer.limit_train_batches", "eval.nll_samples", "eval.limit",
        "name", "model", "train", "data", "model.name"]
SCALARS = st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
                    st.booleans(), st.none(), st.text(max_size=12),
                    st.sampled_from(["[1, 2", "{a: 1}", "!!python/object:os.system", "1e999", "-0", ".nan", "~",
                                     "[]", "{}", "bernoulli", "dynamic", "csv", "3e-4", "[32, 16]", "'5'"]))
KEY_TEXT = st.one_of(st.sampled_from(KEYS), st.text(max_size=20),
                     st.builds(lambda a, b: f"{a}.{b}", st.sampled_from(["train", "model", "data", "eval"]),
                               st.text(max_size=10)))


@FUZZ
@given(st.lists(st.tuples(KEY_TEXT, SCALARS), max_size=4))
def test_fuzz_overrides(pairs: list[tuple[str, object]]) -> None:
    _count("config overrides")
    overrides = [f"{k}={v}" for k, v in pairs]
    try:
        cfg = load_config({"model": {"name": "vae"}, "name": "fuzz"}, overrides)
        model_config(cfg.model)
    except ConfigError as e:
        _one_line(e)


@FUZZ
@given(st.one_of(st.text(max_size=300),
                 st.builds(lambda keys, vals: "\n".join(f"{k.split('.')[0]}:\n  {k.split('.')[-1]}: {v}"
                                                        for k, v in zip(keys, vals, strict=False)),
                           st.lists(st.sampled_from(KEYS), max_size=4), st.lists(SCALARS, max_size=4))))
def test_fuzz_recipe_text(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    _count("recipe YAML")
    path = tmp_path_factory.mktemp("recipe") / "r.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass") if _encodable(text) else path.write_bytes(b"\xff")
    try:
        load_config(path)
    except ConfigError as e:
        assert _one_line(e).startswith(f"{path}: ")


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


# -- file readers ---------------------------------------------------------------------------------------------------
def _idx(shape: tuple[int, ...]) -> bytes:
    data = np.arange(int(np.prod(shape)), dtype=np.uint8).tobytes()
    return bytes([0, 0, 8, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + data


def _mutate(raw: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    buf = bytearray(raw)
    for pos, val in edits:
        if buf:
            buf[pos % len(buf)] = val
    return bytes(buf[:cut] if cut is not None else buf)


EDITS = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6)
CUT = st.one_of(st.none(), st.integers(0, 4000))


@FUZZ
@given(st.one_of(st.binary(max_size=200),
                 st.builds(_mutate, st.sampled_from([_idx((3, 5, 4)), _idx((7,)), _idx((2, 3, 4, 1))]), EDITS, CUT)),
       st.booleans())
def test_fuzz_idx(tmp_path_factory: pytest.TempPathFactory, raw: bytes, gz: bool) -> None:
    _count("IDX files")
    path = tmp_path_factory.mktemp("idx") / ("f.idx.gz" if gz else "f.idx")
    path.write_bytes(_mutate(gzip.compress(raw), [], None) if gz else raw)
    try:
        arr = read_idx(path)
    except DataError as e:
        assert str(path) in _one_line(e)
        return
    assert arr.dtype == np.uint8 and arr.ndim in (1, 3, 4)


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


VALID_ARRAYS = [_npz(x=np.zeros((4, 8, 8), np.uint8), y=np.arange(4)), _npz(x_train=np.ones((3, 1, 4, 4)))]


@FUZZ
@given(st.one_of(st.binary(max_size=300), st.builds(_mutate, st.sampled_from(VALID_ARRAYS), EDITS, CUT),
                 st.builds(_mutate, st.just(_npy(np.zeros((5, 6, 6), np.float32))), EDITS, CUT)),
       st.sampled_from([".npz", ".npy"]))
def test_fuzz_arrays(tmp_path_factory: pytest.TempPathFactory, raw: bytes, suffix: str) -> None:
    _count("NumPy files")
    path = tmp_path_factory.mktemp("arr") / f"a{suffix}"
    path.write_bytes(raw)
    try:
        out = load_arrays(path)
    except DataError as e:
        assert str(path) in _one_line(e)
        return
    assert all(isinstance(v, np.ndarray) for v in out.values())


def _png(mode: str, size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 12), (10, 200, 30)).save(buf, format="JPEG")
    return buf.getvalue()


VALID_IMAGES = [_png("L", (9, 7)), _png("RGBA", (16, 16)), _png("I;16", (5, 30)), _jpeg()]


@FUZZ
@given(st.one_of(st.binary(max_size=300), st.builds(_mutate, st.sampled_from(VALID_IMAGES), EDITS, CUT)),
       st.sampled_from([1, 3]))
def test_fuzz_images(tmp_path_factory: pytest.TempPathFactory, raw: bytes, channels: int) -> None:
    _count("image files")
    path = tmp_path_factory.mktemp("img") / "i.png"
    path.write_bytes(raw)
    try:
        arr = read_image(path, (8, 8), channels)
    except DataError as e:
        assert str(path) in _one_line(e)
        return
    assert arr.shape == (channels, 8, 8) and arr.dtype == np.uint8


def _wav(rate: int, samples: int, channels: int = 1, width: int = 2) -> bytes:
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes(range(256)) * (samples * channels * width // 256 + 1))
    return buf.getvalue()[: 44 + samples * channels * width]


VALID_WAVS = [_wav(8000, 400), _wav(16000, 100), _wav(8000, 50, channels=2), _wav(8000, 60, width=1)]


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.builds(_mutate, st.sampled_from(VALID_WAVS), EDITS, CUT)))
def test_fuzz_wav(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    from vaekit.core.audio import read_wav

    _count("WAV files")
    path = tmp_path_factory.mktemp("wav") / "a.wav"
    path.write_bytes(raw)
    try:
        samples, rate = read_wav(path)
    except DataError as e:
        assert str(path) in _one_line(e)
        return
    assert samples.dtype == torch.float32 and samples.dim() == 1 and rate > 0
    assert samples.abs().max() <= 1.0 if len(samples) else True


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    from vaekit.models import registry
    from vaekit.run.io import save_weights, write_config

    run = tmp_path_factory.mktemp("run")
    cfg = load_config({"model": {"name": "vae", "hidden": [8], "latent_dim": 2}, "name": "t"})
    write_config(cfg, run)
    save_weights(registry.build("vae", model_config(cfg.model)), run / "model.safetensors")
    return run, (run / "model.safetensors").read_bytes()


@FUZZ
@given(EDITS, CUT)
def test_fuzz_model_files(tiny_run: tuple[Path, bytes], edits: list[tuple[int, int]], cut: int | None) -> None:
    _count("safetensors model files")
    run, good = tiny_run
    path = run / "model.safetensors"
    path.write_bytes(_mutate(good, edits, cut))
    try:
        model = load(run)
    except (ValueError, ConfigError) as e:
        assert str(path) in _one_line(e)
        return
    finally:
        path.write_bytes(good)
    assert all(isinstance(v, torch.Tensor) for v in model.state_dict().values())


def test_fuzz_counts_reach_the_budget() -> None:
    """Every fuzz test above ran (order: pytest runs this file top to bottom)."""
    assert set(TRIED) == {"config overrides", "recipe YAML", "IDX files", "NumPy files", "image files", "WAV files",
                          "safetensors model files"}
    assert min(TRIED.values()) >= min(FUZZ_EXAMPLES, 50)


def test_a_valid_safetensors_file_with_foreign_tensors_is_named(tiny_run: tuple[Path, bytes]) -> None:
    run, good = tiny_run
    save_file({"other": torch.zeros(3)}, str(run / "model.safetensors"))
    try:
        with pytest.raises(ValueError, match="do not fit the model"):
            load(run)
    finally:
        (run / "model.safetensors").write_bytes(good)
