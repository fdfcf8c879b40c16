"""What a training step costs beyond its arithmetic: microseconds per step with a tiny VAE (784-16-2, batch 16,
one thread), where the maths is cheap and framework work shows. Four loops over the same steps:

plain      a hand-written loop (index slicing, fused Adam, vaekit's binarizer)
model      vaekit's model (torch.distributions objects, LossOutput) and DataLoader in a hand-written loop
lightning  that model in a bare lightning.Trainer (no loggers, callbacks or progress bar)
vaekit     vaekit's ``fit``: loggers, checkpoints, weight export, figures, progress bar

Usage: python benchmarks/bench_overhead.py [--steps 1500] [--rounds 3]"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import lightning as L
import torch
from bench_vaekit import EpochTimer, PlainVAE
from common import OUT

from vaekit.config import load_config
from vaekit.data import build, loader
from vaekit.data.batches import draw_binary
from vaekit.io import build_model
from vaekit.train import VAEModule, fit

warnings.filterwarnings("ignore")
B, H, Z = 16, 16, 2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    steps = args.steps
    torch.set_num_threads(1)
    cfg = load_config({"model": {"name": "vae", "hidden": [H], "latent_dim": Z, "activation": "relu"}, "name": "oh"},
                      [f"data.batch_size={B}", f"train.limit_train_batches={steps}", "train.epochs=1",
                       "train.limit_val_batches=0", "train.figures_every_n_epochs=1000", "train.threads=1"])
    splits = build(cfg.data)
    cfg.model.setdefault("input_shape", list(splits.input_shape))
    thresholds = splits.train.thresholds

    def plain() -> float:
        model = PlainVAE(H, Z)
        opt = torch.optim.Adam(model.parameters(), fused=True)
        perm = torch.randperm(len(thresholds))
        start = time.perf_counter()
        for s in range(steps):
            x = draw_binary(thresholds[perm[s * B : (s + 1) * B]]).flatten(1)
            loss = model(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    def model() -> float:
        vae = build_model(cfg)
        opt = torch.optim.Adam(vae.parameters(), fused=True)
        batches = iter(loader(splits.train, B, shuffle=True))
        start = time.perf_counter()
        for _ in range(steps):
            out = vae.loss(next(batches))
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
        return time.perf_counter() - start

    def lightning() -> float:
        timer = EpochTimer()
        trainer = L.Trainer(max_epochs=1, limit_train_batches=steps, limit_val_batches=0, callbacks=[timer],
                            logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu", devices=1)
        trainer.fit(VAEModule(build_model(cfg), cfg.to_dict()), train_dataloaders=loader(splits.train, B, True))
        return timer.seconds

    def vaekit() -> float:
        timer = EpochTimer()
        fit(cfg, OUT / "overhead", callbacks=[timer])
        return timer.seconds

    loops = {"plain": plain, "model": model, "lightning": lightning, "vaekit": vaekit}
    times: dict[str, list[float]] = {k: [] for k in loops}
    for _ in range(args.rounds):
        for name, fn in loops.items():
            times[name].append(1e6 * fn() / steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nmicroseconds per step, median of {args.rounds} interleaved rounds, {steps} steps, 1 thread:")
    print("| loop | us/step | over the plain loop |\n|---|---|---|")
    for name, us in med.items():
        print(f"| {name} | {us:.0f} | {us - med['plain']:+.0f} |")


if __name__ == "__main__":
    main()
