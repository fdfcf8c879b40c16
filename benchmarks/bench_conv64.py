"""64x64 conv training speed (issue 9): the Higgins / Burgess net (conv 32-32-64-64, fc 256, 10 latents, Bernoulli)
at batch 64, Adam 1e-4, as disentanglement_lib trains it. Three loops over the same number of steps:

plain        a hand-written PyTorch loop, torch defaults (NCHW tensors, Adam)
plain_nhwc   the same loop with channels-last tensors (what vaekit's ``train.channels_last`` does)
plain_bf16   channels-last and bf16 autocast (the convolutions in bf16; on CPUs with AVX-512 bf16 or AMX)
vaekit       vaekit's ``fit`` with ``train.channels_last: true`` (loggers, checkpoints, figures off the clock)
vaekit_bf16  the same with ``trainer.precision: bf16-mixed`` (what the dSprites recipe trains with)

Reported as steps/s, GFLOP/s (forward + backward, counted by torch.utils.flop_counter) and the share of the
machine's sgemm peak. Data: 6,400 synthetic binary 64x64 images (rectangles), served like any data set.
Usage: python benchmarks/bench_conv64.py [--steps 100] [--rounds 3]"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from bench_vaekit import EpochTimer, matmul_peak
from common import OUT, machine, record
from torch.utils.flop_counter import FlopCounterMode

from vaekit.models import registry
from vaekit.run.config import load_config
from vaekit.run.fit import fit

warnings.filterwarnings("ignore")
B = 64


def images(n: int, seed: int = 0) -> np.ndarray:
    """n binary 64x64 images, one filled rectangle each."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 64, 64), np.uint8)
    for img, (y, x, h, w) in zip(out, rng.integers([0, 0, 4, 4], [48, 48, 16, 16], (n, 4)), strict=True):
        img[y : y + h, x : x + w] = 255
    return out


def net() -> torch.nn.Module:
    return registry.build("beta_vae", registry.get("beta_vae").config(beta=4.0))


def flops_per_step() -> float:
    model, x = net(), torch.rand(B, 1, 64, 64).round()
    with FlopCounterMode(display=False) as counter:
        model.loss({"x": x}).loss.backward()
    return counter.get_total_flops()


def plain(data: torch.Tensor, steps: int, nhwc: bool, bf16: bool = False) -> float:
    torch.manual_seed(0)
    model = net()
    if nhwc:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    perm = torch.randperm(len(data))
    start = time.perf_counter()
    for s in range(steps):
        x = data[perm[s * B : (s + 1) * B]].float().div_(255)
        if nhwc:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.loss({"x": x}).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def vaekit(path: str, steps: int, precision: str = "32-true") -> float:
    cfg = load_config({"model": {"name": "beta_vae"}, "name": "conv64"},
                      ["data.name=arrays", f"data.dir={path}", f"data.batch_size={B}", "data.binarize=none",
                       "model.likelihood=discretized_logistic", "train.lr=1e-4", "train.epochs=1",
                       "train.channels_last=true", "train.figures_every_n_epochs=1000", "train.progress_bar=false",
                       f"trainer.limit_train_batches={steps}", "trainer.limit_val_batches=0",
                       "train.checkpoint_every_n_steps=0", f"trainer.precision={precision}"])
    timer = EpochTimer()
    fit(cfg, OUT / "conv64", callbacks=[timer], overwrite=True)  # one folder for every variant and round
    return timer.seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    raw = images(B * args.steps + 1000)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(OUT / "conv64.npz", x=raw)
    data = torch.from_numpy(raw).unsqueeze(1)
    flops = flops_per_step()
    times: dict[str, list[float]] = {"plain": [], "plain_nhwc": [], "plain_bf16": [], "vaekit": [], "vaekit_bf16": []}
    for _ in range(args.rounds):
        times["plain"].append(plain(data, args.steps, nhwc=False))
        times["plain_nhwc"].append(plain(data, args.steps, nhwc=True))
        times["plain_bf16"].append(plain(data, args.steps, nhwc=True, bf16=True))
        times["vaekit"].append(vaekit(str(OUT / "conv64.npz"), args.steps))
        times["vaekit_bf16"].append(vaekit(str(OUT / "conv64.npz"), args.steps, "bf16-mixed"))
    peak = matmul_peak()
    rows = {k: args.steps / statistics.median(v) for k, v in times.items()}
    record("conv64", {"machine": machine(), "sgemm_gflops": peak, "gflop_per_step": flops / 1e9,
                      "steps_per_s": rows, "rounds": times})
    print(f"\n{machine()}; sgemm peak {peak:.0f} GFLOP/s; {flops / 1e9:.2f} GFLOP a step (forward + backward)")
    print("| 64x64 conv VAE, batch 64 | steps/s | vs plain | GFLOP/s | of sgemm peak |\n|---|---|---|---|---|")
    for name, sps in rows.items():
        print(f"| {name} | {sps:.2f} | {sps / rows['plain']:.2f}x | {sps * flops / 1e9:.0f} | "
              f"{100 * sps * flops / 1e9 / peak:.0f}% |")


if __name__ == "__main__":
    main()
