"""IWAE training throughput (images/s) for k = 1, 5, 50, one and two stochastic layers, against the naive
implementation that repeats each image k times through the encoder (the 885 images/s the issue quotes).

Usage: python benchmarks/bench_iwae.py [--threads 1] [--steps 30]"""

from __future__ import annotations

import argparse
import time

import torch

from vaekit.core.estimators import log_mean_exp
from vaekit.models.iwae import IWAE, IWAEConfig

LAYERS = {"one": ((50,), ((200, 200),)), "two": ((100, 50), ((200, 200), (100, 100)))}


def naive_loss(model: IWAE, x: torch.Tensor, k: int) -> torch.Tensor:
    """Repeat x k times and run everything on the k*B batch (encoder included), then regroup."""
    b = x.shape[0]
    log_w = model.log_importance_weights({"x": x.repeat(k, 1, 1, 1)}, 1).view(k, b)
    return -log_mean_exp(log_w, 0).mean()


def throughput(model: IWAE, k: int, steps: int, naive: bool) -> float:
    opt = torch.optim.Adam(model.parameters(), 1e-3, fused=True)
    x = torch.bernoulli(torch.rand(100, 1, 28, 28))
    for i in range(steps + 3):
        if i == 3:
            start = time.perf_counter()
        loss = naive_loss(model, x, k) if naive else model.loss({"x": x}).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * x.shape[0] / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=30)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print("| layers | k | vaekit images/s | naive (x repeated k times) images/s | speed-up |")
    print("|---|---|---|---|---|")
    for name, (dims, hidden) in LAYERS.items():
        for k in (1, 5, 50):
            torch.manual_seed(0)
            model = IWAE(IWAEConfig(latent_dims=dims, hidden=hidden, k=k))
            fast = throughput(model, k, args.steps, naive=False)
            slow = throughput(model, k, max(5, args.steps // 3), naive=True) if k > 1 else fast
            print(f"| {name} | {k} | {fast:,.0f} | {slow:,.0f} | {fast / slow:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
