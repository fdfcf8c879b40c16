"""MNIST from the four standard IDX files (LeCun, Cortes & Burges).

Images are held as one uint8 tensor; batches are served by index slicing (see :mod:`vaekit.data.batches`).
Training images are binarized dynamically (a fresh Bernoulli draw with p = intensity each time a batch is
served, as in Burda et al. 2016); the test set is binarized once with a fixed seed so NLLs are comparable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from vaekit.data.files import DataError, download, md5_of_gzip_content, resolve_dir
from vaekit.data.idx import read_idx
from vaekit.data.imagesets import ImageDataConfig, image_splits
from vaekit.data.registry import Splits, register_data

# Uncompressed md5 sums, as listed in shared/data/README.md.
FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "6bbc9ace898e44ae57da46a324031adb", (60000, 28, 28)),
    "train_labels": ("train-labels-idx1-ubyte.gz", "a25bea736e30d166cdddb491f175f624", (60000,)),
    "test_images": ("t10k-images-idx3-ubyte.gz", "2646ac647ad5339dbf082846283269ea", (10000, 28, 28)),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "27ae3e4e09519cfbb04c329615203637", (10000,)),
}
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]
def locate(data_dir: str | os.PathLike | None = None, verify: bool = True) -> Path:
    """The folder with the four files, downloading into the cache if allowed and needed."""
    folder, may_download = resolve_dir("mnist", data_dir)
    for fname, md5, _ in FILES.values():
        path = folder / fname
        if not path.exists():
            if not may_download:
                raise DataError(f"{path}: file not found (set --data-dir or VAEKIT_DATA to a folder with MNIST)")
            download([m + fname for m in MIRRORS], path, check=lambda p, md5=md5: check_md5(p, md5))
        if verify:
            check_md5(path, md5)
    return folder


def check_md5(path: Path, md5: str) -> None:
    if (got := md5_of_gzip_content(path)) != md5:
        raise DataError(f"{path}: md5 of content is {got}, expected {md5} (corrupt or wrong file)")


def load(data_dir: str | os.PathLike | None = None, verify: bool = True) -> dict[str, torch.Tensor]:
    """All of MNIST as tensors: uint8 images [N, 1, 28, 28] and int64 labels, for train and test."""
    folder = locate(data_dir, verify)
    out = {}
    for key, (fname, _, shape) in FILES.items():
        arr = read_idx(folder / fname, shape)
        t = torch.from_numpy(arr.copy())
        out[key] = t.unsqueeze(1) if key.endswith("images") else t.long()
    return out


@dataclass
class MNISTConfig(ImageDataConfig):
    name: str = "mnist"


@register_data("mnist", MNISTConfig)
def build_mnist(cfg: MNISTConfig) -> Splits:
    """MNIST digits, 28x28 grey (LeCun et al.): 50,000 train / 10,000 validation / 10,000 test."""
    d = load(cfg.dir)
    return image_splits(cfg, d["train_images"], d["train_labels"], d["test_images"], d["test_labels"], n_classes=10,
                        source="MNIST")
