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
