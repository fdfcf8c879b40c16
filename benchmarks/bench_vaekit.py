"""vaekit's Lightning training vs a plain hand-written PyTorch loop on the same network and data,
then vaekit's NLL estimator (k = 5000, 1,000 test images), the machine's matmul peak, and the hand-off of
data and trained weights to the pythae benchmark. Usage: python benchmarks/bench_vaekit.py ROUND"""

from __future__ import annotations

import os
import sys
import time

import lightning as L
import torch
import torch.nn.functional as F
from common import BATCH, HIDDEN, LATENT, LR, OUT, decoder_flops_per_sample, machine, record
from torch import nn

from vaekit.core.estimators import importance_weighted_bound
from vaekit.data import build_data
from vaekit.data.batches import bernoulli_thresholds, draw_binary
from vaekit.run.config import load_config
from vaekit.run.fit import fit


class EpochTimer(L.Callback):
    """Wall time of the training epoch loop alone (no set-up, no validation)."""

    def on_train_epoch_start(self, trainer, module) -> None:  # noqa: ANN001
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module) -> None:  # noqa: ANN001
        self.seconds = time.perf_counter() - self.start


def vaekit_epoch(round_: int) -> dict:
    cfg = load_config({"model": {"name": "vae", "hidden": [HIDDEN], "latent_dim": LATENT, "activation": "relu"},
                       "name": "bench"},
                      [f"data.batch_size={BATCH}", f"train.lr={LR}", "train.epochs=1", "trainer.limit_val_batches=0",
                       f"train.seed={round_}", "train.figures_every_n_epochs=1000"])
    timer = EpochTimer()
    start = time.perf_counter()
    module, _ = fit(cfg, OUT / f"vaekit_round{round_}", callbacks=[timer])
    total = time.perf_counter() - start
    n = len(build_data(cfg.data).train)
    return {"epoch_s": timer.seconds, "total_s": total, "images": n, "model": module.model}


class PlainVAE(nn.Module):
    """The VAE as one writes it by hand: the closed-form KL and BCE in the forward."""

    def __init__(self, hidden: int = HIDDEN, latent: int = LATENT) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 784))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, log_var = self.enc(x).chunk(2, -1)
        z = mu + (0.5 * log_var).exp() * torch.randn_like(mu)
        rec = F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(-1)
        kl = 0.5 * (mu.pow(2) + log_var.exp() - 1 - log_var).sum(-1)
        return (rec + kl).mean()


def plain_epoch(images: torch.Tensor, round_: int, tuned: bool) -> dict:
    """The loop a careful person writes by hand: tensor in memory, index slicing, dynamic binarization.

    ``tuned`` gives it vaekit's two speed choices (fused Adam, vaekit's int16-threshold binarizer) so that the
    comparison isolates what the framework costs; untuned is torch's defaults (Adam, torch.bernoulli)."""
    torch.manual_seed(round_)
    model = PlainVAE()
    opt = torch.optim.Adam(model.parameters(), lr=LR, fused=tuned)
    thresholds = bernoulli_thresholds(images)  # set-up, like vaekit's data set: not timed
    start = time.perf_counter()
    perm = torch.randperm(len(images))
    for i in range(0, len(images), BATCH):
        if tuned:
            x = draw_binary(thresholds[perm[i : i + BATCH]]).flatten(1)
        else:
            x = torch.bernoulli(images[perm[i : i + BATCH]].float().div_(255).flatten(1))
        loss = model(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return {"epoch_s": time.perf_counter() - start, "images": len(images)}


def matmul_peak() -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(10):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * 2048**3 / best / 1e9


def main() -> None:
    round_ = int(sys.argv[1])
    data = build_data(load_config({"model": "vae"}).data)
    train_images = data.train.data
    plain = plain_epoch(train_images, round_, tuned=False)
    tuned = plain_epoch(train_images, round_, tuned=True)
    vk = vaekit_epoch(round_)
    model = vk.pop("model")
    record(f"train_round{round_}", {"plain": plain, "plain_tuned": tuned, "vaekit": vk})
    if round_ == 0:  # hand the data and these weights to pythae
        test = data.test.data[:1000].float().div(255)
        torch.save({"train": train_images, "test": test}, OUT / "data.pt")
        torch.save(model.state_dict(), OUT / "weights.pt")
        record("machine", {"machine": machine(), "matmul_gflops": matmul_peak()})
    # NLL: k = 5000 on 1,000 test images with the weights just trained in round 0.
    model.load_state_dict(torch.load(OUT / "weights.pt", weights_only=True))
    model.eval()
    test = torch.load(OUT / "data.pt", weights_only=True)["test"][: int(os.environ.get("BENCH_NLL_IMAGES", 1000))]
    torch.manual_seed(round_)
    start = time.perf_counter()
    ll = torch.cat([importance_weighted_bound(model, {"x": test[i : i + 100]}, 5000, chunk_size=50)
                    for i in range(0, len(test), 100)])
    seconds = time.perf_counter() - start
    gflops = decoder_flops_per_sample() * 5000 * len(test) / seconds / 1e9
    record(f"nll_round{round_}", {"vaekit_s": seconds, "vaekit_nll": -float(ll.mean()), "decoder_gflops": gflops})
    print(f"round {round_}: plain {plain['epoch_s']:.2f}s tuned {tuned['epoch_s']:.2f}s "
          f"vaekit {vk['epoch_s']:.2f}s (total {vk['total_s']:.2f}s) "
          f"nll {seconds:.1f}s ({-float(ll.mean()):.2f} nats, {gflops:.1f} GFLOP/s)")


if __name__ == "__main__":
    main()
