from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


def shared_data() -> Path | None:
    """The MNIST folder: $VAEKIT_DATA, else ../shared/data beside the checkout."""
    for cand in (os.environ.get("VAEKIT_DATA"), Path(__file__).resolve().parents[2] / "shared" / "data"):
        if cand and (Path(cand) / "mnist" / "t10k-images-idx3-ubyte.gz").exists():
            return Path(cand).resolve()  # absolute: some tests change the working directory
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = shared_data()
    if d is None:
        pytest.skip("MNIST not found: set VAEKIT_DATA to a folder holding mnist/")
    return d


@pytest.fixture(scope="session")
def mnist(data_dir: Path) -> dict[str, torch.Tensor]:
    from vaekit.data import mnist

    return mnist.load(data_dir)
