"""What a training step costs beyond its arithmetic: microseconds per step with a tiny VAE (784-16-2, batch 16,
one thread), where the maths is cheap and framework work shows. Four loops over the same steps:

plain      a hand-written loop (index slicing, fused Adam, vaekit's binarizer)
model      vaekit's model (torch.distributions objects, LossOutput) and DataLoader in a hand-written loop
lightning  that model in a bare lightning.Trainer (no loggers, callbacks or progress bar)
lightning_minimal  the model in a bare Trainer under a five-line LightningModule (what Lightning's loop costs)
lightning_noguard  vaekit's module in a bare Trainer without the per-step gradient check of the non-finite guard
lightning_manual8  the five-line module under manual optimization, eight optimizer steps per training_step (the
                   loop's cost spread over eight steps: what that design would be worth; not how vaekit trains)
vaekit     vaekit's ``fit``: loggers, checkpoints, weight export, figures, progress bar
vaekit_untrimmed  the same without vaekit's five trims of Lightning internals (what they are worth)
vaekit_deferred    ``fit`` with train.deferred_guard=true: the non-finite guard kept on the device and read every
                   50 steps (the default on an accelerator), against ``vaekit``'s CPU default, a read every step

--hidden/--latent/--batch give other sizes, e.g. the benchmark network (784-400-20, batch 128).

Usage: python benchmarks/bench_overhead.py [--steps 1500] [--rounds 3] [--hidden 16 --latent 2 --batch 16]"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
import warnings
from typing import Any

import lightning as L
import torch
from bench_vaekit import EpochTimer, PlainVAE
from common import OUT
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.profilers import PassThroughProfiler

from vaekit.data import build_data, loader
from vaekit.data.batches import draw_binary
from vaekit.run.config import load_config, model_config
from vaekit.run.config import plain as plain_dict
from vaekit.run.fit import VAEModule, fit
from vaekit.run.io import build_model

warnings.filterwarnings("ignore")
B_DEFAULT, H_DEFAULT, Z_DEFAULT = 16, 16, 2  # the tiny VAE: framework work shows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=H_DEFAULT)
    ap.add_argument("--latent", type=int, default=Z_DEFAULT)
    ap.add_argument("--batch", type=int, default=B_DEFAULT)
    ap.add_argument("--loops", default="", help="comma-separated subset of the loops (default: all)")
    args = ap.parse_args()
    b, h, z = args.batch, args.hidden, args.latent
    torch.set_num_threads(1)

    def config(*extra: str) -> Any:
        c = load_config({"model": {"name": "vae", "hidden": [h], "latent_dim": z, "activation": "relu"},
                         "name": "oh"},
                        [f"data.batch_size={b}", f"trainer.limit_train_batches={steps}", "train.epochs=1",
                         "trainer.limit_val_batches=0", "train.figures_every_n_epochs=1000", "train.threads=1",
                         *extra])
        c.model.setdefault("input_shape", list(splits.input_shape))
        model_config(c.model)
        return c

    splits = build_data(load_config({"model": "vae"}).data)
    steps = min(args.steps, len(splits.train) // b)  # one epoch at most: every loop takes the same steps
    cfg, cfg_deferred = config(), config("train.deferred_guard=true")
    thresholds = splits.train.thresholds

    def plain() -> float:
        model = PlainVAE(h, z)
        opt = torch.optim.Adam(model.parameters(), fused=True)
        perm = torch.randperm(len(thresholds))
        start = time.perf_counter()
        for s in range(steps):
            x = draw_binary(thresholds[perm[s * b : (s + 1) * b]]).flatten(1)
            loss = model(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    def model() -> float:
        vae = build_model(cfg)
        opt = torch.optim.Adam(vae.parameters(), fused=True)
        batches = iter(loader(splits.train, b, shuffle=True))
        start = time.perf_counter()
        for _ in range(steps):
            out = vae.loss(next(batches))
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
        return time.perf_counter() - start

    class Minimal(L.LightningModule):
        def __init__(self, vae: torch.nn.Module) -> None:
            super().__init__()
            self.model = vae

        def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
            return self.model.loss(batch).loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.model.parameters(), fused=True)

    class ManualSteps(Minimal):
        automatic_optimization = False

        def training_step(self, batches: list[dict], batch_idx: int) -> None:
            opt = self.optimizers()
            for batch in batches:
                loss = self.model.loss(batch).loss
                opt.zero_grad(set_to_none=True)
                self.manual_backward(loss)
                opt.step()

    class Grouped:
        """K batches of a loader at a time, as one item of the loop."""

        def __init__(self, batches: Any, k: int) -> None:
            self.batches, self.k = batches, k

        def __len__(self) -> int:
            return -(-len(self.batches) // self.k)

        def __iter__(self) -> Any:
            it = iter(self.batches)
            while chunk := list(itertools.islice(it, self.k)):
                yield chunk

    class NoGradientCheck(VAEModule):
        def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
            pass

    def bare(module: L.LightningModule, k: int = 1) -> float:
        timer = EpochTimer()
        trainer = L.Trainer(max_epochs=1, limit_train_batches=steps // k, limit_val_batches=0, callbacks=[timer],
                            logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu", devices=1)
        batches = loader(splits.train, b, True)
        trainer.fit(module, train_dataloaders=Grouped(batches, k) if k > 1 else batches)
        return timer.seconds * steps / (steps // k * k)  # per step as below: steps // k * k were taken

    def lightning_minimal() -> float:
        return bare(Minimal(build_model(cfg)))

    def lightning_noguard() -> float:
        return bare(NoGradientCheck(build_model(cfg), plain_dict(cfg.to_dict())))

    def lightning_manual8() -> float:
        return bare(ManualSteps(build_model(cfg)), k=8)

    def lightning() -> float:
        return bare(VAEModule(build_model(cfg), plain_dict(cfg.to_dict())))

    def vaekit() -> float:
        timer = EpochTimer()
        fit(cfg, OUT / "overhead", callbacks=[timer], overwrite=True)
        return timer.seconds

    def vaekit_deferred() -> float:
        timer = EpochTimer()
        fit(cfg_deferred, OUT / "overhead_deferred", callbacks=[timer], overwrite=True)
        return timer.seconds

    def vaekit_untrimmed() -> float:
        """``fit`` without vaekit's trims of Lightning's bookkeeping (tests/test_lightning_internals.py): the
        ``_current_fx_name`` write, the null profiler, the cached ``state_key``, the clipping hook that returns
        when nothing is clipped and the best-weights checkpoint's early return a step."""
        import vaekit.run.callbacks as tr

        trims = [(VAEModule, "__setattr__", L.LightningModule.__setattr__),
                 (VAEModule, "configure_gradient_clipping", L.LightningModule.configure_gradient_clipping),
                 (tr._NoProfiler, "profile", PassThroughProfiler.profile),
                 (tr._Checkpoint, "state_key", ModelCheckpoint.state_key),
                 (tr._Checkpoint, "on_train_batch_end", ModelCheckpoint.on_train_batch_end)]
        saved = [(cls, name, cls.__dict__[name]) for cls, name, _ in trims]
        for cls, name, lightnings in trims:
            setattr(cls, name, lightnings)
        try:
            return vaekit()
        finally:
            for cls, name, ours in saved:
                setattr(cls, name, ours)

    loops = {"plain": plain, "model": model, "lightning_minimal": lightning_minimal,
             "lightning_noguard": lightning_noguard, "lightning_manual8": lightning_manual8, "lightning": lightning,
             "vaekit": vaekit,
             "vaekit_deferred": vaekit_deferred, "vaekit_untrimmed": vaekit_untrimmed}
    if args.loops:
        loops = {k: v for k, v in loops.items() if k in args.loops.split(",") or k == "plain"}
    times: dict[str, list[float]] = {k: [] for k in loops}
    for _ in range(args.rounds):
        for name, fn in loops.items():
            times[name].append(1e6 * fn() / steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nmicroseconds per step, median of {args.rounds} interleaved rounds, {steps} steps, 1 thread, "
          f"784-{h}-{z} batch {b}:")
    print("| loop | us/step | over the plain loop | steps/s | x plain |\n|---|---|---|---|---|")
    for name, us in med.items():
        print(f"| {name} | {us:.0f} | {us - med['plain']:+.0f} | {1e6 / us:.0f} | {med['plain'] / us:.3f} |")
    print("rounds (us/step):", {k: [round(x) for x in v] for k, v in times.items()})


if __name__ == "__main__":
    main()
