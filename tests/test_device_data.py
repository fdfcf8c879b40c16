"""An in-memory set held on the training device serves the batches the host copy serves: the same slices, the
labels, and draws that are functions of the batch's seed (on a GPU from CUDA's generator, so other draws than the
CPU's for the same seed, but again the same for the same seed)."""

from __future__ import annotations

import pytest
import torch

from vaekit.data.batches import SeededBatch, TensorExamples


def _batch(seed: int) -> SeededBatch:
    idx = SeededBatch([5, 0, 3, 3])
    idx.seed = seed
    return idx


@pytest.mark.parametrize("values", ["dynamic", "dequantized", "grey"])
def test_a_set_moved_to_a_device_serves_the_same_batches(values: str) -> None:
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, 256, (8, 1, 4, 4), generator=g, dtype=torch.uint8)
    host = TensorExamples(data, torch.arange(8), values)
    moved = host.to("cpu")
    assert moved.device == torch.device("cpu") and moved.values == values and len(moved) == 8
    a, b = host.__getitems__(_batch(7)), moved.__getitems__(_batch(7))
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], torch.tensor([5, 0, 3, 3]))
    if values != "grey":  # another seed, other draws
        assert not torch.equal(moved.__getitems__(_batch(8))["x"], b["x"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device to hold the data on")
@pytest.mark.parametrize("values", ["dynamic", "dequantized"])
def test_on_a_gpu_batches_are_sliced_and_drawn_there(values: str) -> None:
    data = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
    moved = TensorExamples(data, torch.arange(64), values).to("cuda")
    a, b = moved.__getitems__(_batch(3)), moved.__getitems__(_batch(3))
    assert a["x"].is_cuda and a["y"].is_cuda and torch.equal(a["x"], b["x"])
    mean = moved.__getitems__(SeededBatch(list(range(64))))["x"].mean()
    assert abs(float(mean) - float(data.float().mean() / 255)) < 0.02


# -- every in-memory set: moved, it serves what the host copy serves (on the CPU: the same numbers) ---------------
def _moving_digits(values: str, fixed_directions: bool):  # noqa: ANN202
    from vaekit.data.moving_mnist import MovingDigits

    data = torch.randint(0, 256, (8, 1, 6, 6), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    directions = torch.tensor([1, -1] * 4) if fixed_directions else None
    return MovingDigits(TensorExamples(data, torch.arange(8), values), seq_len=4, shift=1, directions=directions)


@pytest.mark.parametrize("fixed_directions", [False, True])
def test_moving_digits_moved_serve_the_same_sequences(fixed_directions: bool) -> None:
    host = _moving_digits("dynamic", fixed_directions)
    moved = host.to("cpu")
    assert moved.digits is not host.digits  # a copy held where it was sent, not the host's set handed back
    a, b = host.__getitems__(_batch(7)), moved.__getitems__(_batch(7))
    assert a.keys() == b.keys() == {"x", "direction", "y"}
    assert all(torch.equal(a[k], b[k]) for k in a) and a["x"].shape == (4, 4, 1, 6, 6)


def test_oscillator_sequences_moved_serve_the_same_slices() -> None:
    from vaekit.data.oscillator import OscillatorConfig, SequenceExamples, simulate

    host = SequenceExamples(simulate(16, OscillatorConfig(seq_len=5), torch.Generator().manual_seed(0)))
    moved = host.to("cpu")
    a, b = host.__getitems__(_batch(0)), moved.__getitems__(_batch(0))
    assert moved.tensors is not host.tensors and a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a) and torch.equal(a["x"][1], host.tensors["x"][0])


def test_dsprites_held_as_packed_bits_serve_the_images_and_factors(tmp_path) -> None:  # noqa: ANN001
    from vaekit.data import dsprites

    cache = dsprites.generate(tmp_path, count=256, progress=False)
    data = dsprites.DSprites(path=cache, count=256)
    indices = torch.randperm(256, generator=torch.Generator().manual_seed(0))[:40].numpy()
    host = dsprites.GroundTruthExamples(data, indices, data.observations_at)
    moved = host.to("cpu")
    assert isinstance(moved, dsprites.ResidentSprites) and len(moved) == 40
    idx = _batch(0) + [39, 12]
    a, b = host.__getitems__(idx), moved.__getitems__(idx)
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["factors"], b["factors"])
    assert b["x"].dtype == torch.float32 and 0 < float(b["x"].mean()) < 0.5  # sprites: a few lit pixels


def test_a_set_rendered_per_batch_stays_on_the_host() -> None:
    from vaekit.data.dsprites import GroundTruthExamples
    from vaekit.data.shapes3d import Shapes3D

    shapes = Shapes3D()
    examples = GroundTruthExamples(shapes, torch.arange(10).numpy(), shapes.observations_at)
    assert examples.to("cpu") is examples


def test_fit_trains_on_a_moved_set_as_on_the_host(tmp_path, data_dir, monkeypatch) -> None:  # noqa: ANN001
    """fit's wiring: where a resident device is chosen the training set goes there through ``to`` and the run
    is the host run, step for step (on the CPU the device's draws are the host's)."""
    import csv

    from vaekit.data.batches import BatchServing
    from vaekit.run import fit as fit_module
    from vaekit.run.config import load_config

    moved = []
    original = TensorExamples.to

    def spy(self: BatchServing, device: torch.device | str) -> BatchServing:
        moved.append(torch.device(device))
        return original(self, device)

    monkeypatch.setattr(TensorExamples, "to", spy)
    tiny = ["model.hidden=[16]", "model.latent_dim=3", "trainer.limit_train_batches=6", "trainer.limit_val_batches=1",
            "train.progress_bar=false", "data.batch_size=16", "train.epochs=1", "train.log_every_n_steps=1",
            f"data.dir={data_dir}"]
    losses = {}
    for resident in (None, torch.device("cpu")):
        monkeypatch.setattr(fit_module, "_resident_device", lambda cfg, _d=resident: _d)
        out = tmp_path / str(resident)
        fit_module.fit(load_config({"model": "vae", "name": "r"}, tiny), out)
        with open(out / "logs" / "metrics.csv") as f:
            losses[resident] = [r["train/loss"] for r in csv.DictReader(f) if r.get("train/loss")]
    assert moved == [torch.device("cpu")]  # once, and only for the resident run
    assert len(losses[None]) == 6 and losses[None] == losses[torch.device("cpu")]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device to hold the data on")
def test_on_a_gpu_sequences_sprites_and_oscillator_are_served_there(tmp_path) -> None:  # noqa: ANN001
    from vaekit.data import dsprites
    from vaekit.data.oscillator import OscillatorConfig, SequenceExamples, simulate

    seqs = _moving_digits("dynamic", False).to("cuda")
    a, b = seqs.__getitems__(_batch(3)), seqs.__getitems__(_batch(3))
    assert a["x"].is_cuda and a["direction"].is_cuda and torch.equal(a["x"], b["x"])
    osc = SequenceExamples(simulate(16, OscillatorConfig(seq_len=5), torch.Generator().manual_seed(0)))
    assert osc.to("cuda").__getitems__(_batch(0))["x"].is_cuda
    cache = dsprites.generate(tmp_path, count=256, progress=False)
    data = dsprites.DSprites(path=cache, count=256)
    host = dsprites.GroundTruthExamples(data, torch.arange(256).numpy(), data.observations_at)
    gpu = host.to("cuda").__getitems__(_batch(0))
    assert gpu["x"].is_cuda and torch.equal(gpu["x"].cpu(), host.__getitems__(_batch(0))["x"])
