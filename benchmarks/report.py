"""Turn runs/bench/results.json into the markdown table that goes into BENCHMARKS.md."""

from __future__ import annotations

import json

from common import OUT, median

r = json.loads((OUT / "results.json").read_text())
rounds = sorted(int(k.removeprefix("train_round")) for k in r if k.startswith("train_round"))


def med(path: list[str]) -> float:
    vals = []
    for i in rounds:
        node = r
        for p in [path[0].format(i), *path[1:]]:
            node = node[p]
        vals.append(node)
    return median(vals)


n = r["train_round0"]["plain"]["images"]
plain, vk = med(["train_round{}", "plain", "epoch_s"]), med(["train_round{}", "vaekit", "epoch_s"])
tuned = med(["train_round{}", "plain_tuned", "epoch_s"])
py = med(["pythae_round{}", "epoch_s"])
vk_total, py_total = med(["train_round{}", "vaekit", "total_s"]), med(["pythae_round{}", "total_s"])
nll_vk = med(["nll_round{}", "vaekit_s"])
nll_py100, nll_py500 = med(["pythae_round{}", "nll_s_b100"]), med(["pythae_round{}", "nll_s_b500"])
print(f"Machine: {r['machine']['machine']}; matmul peak (2048^2 sgemm) {r['machine']['matmul_gflops']:.0f} GFLOP/s\n")
print("| one epoch, MLP VAE 784-400-20, batch 128, 50,000 images | epoch loop s | images/s | vs pythae | vs plain "
      "| vs plain, tuned |")
print("|---|---|---|---|---|---|")
for name, s in (("plain PyTorch loop (torch defaults: Adam, torch.bernoulli)", plain),
                ("plain loop, tuned (fused Adam, vaekit's binarizer: vaekit's choices)", tuned),
                ("vaekit (Lightning)", vk), ("pythae 0.1.2 TrainingPipeline", py)):
    print(f"| {name} | {s:.2f} | {n / s:,.0f} | {py / s:.2f}x | {plain / s:.2f}x | {tuned / s:.2f}x |")
print(f"\nWhole call including set-up: vaekit `fit` {vk_total:.2f} s, pythae pipeline {py_total:.2f} s "
      f"({py_total / vk_total:.2f}x).\n")
print("| NLL, k = 5000, 1,000 test images, same weights | seconds | NLL (nats) | vaekit's speed-up over it |")
print("|---|---|---|---|")
print(f"| vaekit `importance_weighted_bound` (batch 100, chunk 50) | {nll_vk:.1f} | "
      f"{med(['nll_round{}', 'vaekit_nll']):.2f} | — |")
print(f"| pythae `VAE.get_nll` (its default batch_size=100) | {nll_py100:.1f} | "
      f"{med(['pythae_round{}', 'nll_b100']):.2f} | {nll_py100 / nll_vk:.2f}x |")
print(f"| pythae `VAE.get_nll` (batch_size=500) | {nll_py500:.1f} | {med(['pythae_round{}', 'nll_b500']):.2f} | "
      f"{nll_py500 / nll_vk:.2f}x |")
gf = med(["nll_round{}", "decoder_gflops"])
print(f"\nvaekit's estimator runs the decoder matmuls at {gf:.1f} GFLOP/s, "
      f"{100 * gf / r['machine']['matmul_gflops']:.0f}% of the machine's sgemm peak.")
print("(Medians of 3 interleaved rounds.)")
