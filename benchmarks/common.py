"""Shared set-up for the throughput benchmarks: one network (MLP VAE 784-400-20, ReLU, Bernoulli), batch 128,
one epoch of MNIST's 50,000 training images. Data and weights cross to the pythae venv as plain tensors."""

from __future__ import annotations

import json
import platform
import statistics
from pathlib import Path

import torch

HIDDEN, LATENT, BATCH, LR = 400, 20, 128, 1e-3
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "runs" / "bench"


def machine() -> str:
    from vaekit.run.provenance import machine as described  # the CPU's name as the results records give it

    cpu = described()["cpu"]
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}, Python {platform.python_version()}"


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def record(name: str, result: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "results.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = result
    path.write_text(json.dumps(data, indent=2))


def decoder_flops_per_sample() -> int:
    """Multiply-adds x 2 of one decoder pass 20 -> 400 -> 784."""
    return 2 * (LATENT * HIDDEN + HIDDEN * 784)
