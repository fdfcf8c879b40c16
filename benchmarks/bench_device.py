"""Issue 25's device benchmark, one call (benchmarks/device.sh): on one device, side by side,

- vaekit's ``fit`` (the recipe's loop: Lightning, checkpoints off, the non-finite guard read every N steps),
- a hand-written PyTorch loop over the same model and batches (eager), and the same loop with the loss
  compiled (``torch.compile``: the practical ceiling),

for the MLP VAE 784-400-20 (batch 128), the 64x64 conv net of configs/beta_vae_dsprites.yaml (batch 64, bf16),
the 5-layer Ladder VAE (batch 256) and the conv TD-VAE of configs/tdvae_moving_mnist_conv.yaml; the NLL
estimator (k = 5000 on 10,000 test images); achieved TFLOP/s of the conv net against the device's dense bf16
peak; and 1, 4 and 8 MLP VAE runs packed onto the device (aggregate steps/s). ``--compiled`` models are also run
by vaekit with ``train.compile=true``. pythae 0.1.2 (its TrainingPipeline for one epoch of the MLP VAE, and
``get_nll`` at the same k on fewer images) runs in the interpreter $PYTHAE_PY, else benchmarks/.venv-pythae,
else this one, where that one imports pythae; else its row says it was not compared.

The record is rewritten after every part ("complete": false until the end), so a run cut off by its time limit
still leaves what it measured.

    python benchmarks/bench_device.py --out results/device_bench.json          # on the device, about 6 minutes
    python benchmarks/bench_device.py --smoke --models vae,ladder_vae --out X   # a few steps each, any machine
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vaekit.core.estimators import importance_weighted_bound  # noqa: E402
from vaekit.data import build_data, loader  # noqa: E402
from vaekit.models.registry import build  # noqa: E402
from vaekit.run import provenance  # noqa: E402
from vaekit.run.config import load_config, model_config, resolved_model  # noqa: E402
from vaekit.run.fit import fit  # noqa: E402

# name: (recipe, overrides, bf16)
MODELS: dict[str, tuple[str, list[str], bool]] = {
    "vae": ("configs/vae_mnist.yaml", ["model.hidden=[400]", "model.latent_dim=20", "data.batch_size=128",
                                       "model.activation=relu"], False),
    "conv64": ("configs/beta_vae_dsprites.yaml", ["train.metrics=[]", "train.channels_last=true"], True),
    "ladder_vae": ("configs/ladder_vae_mnist.yaml", [], False),
    "tdvae_conv": ("configs/tdvae_moving_mnist_conv.yaml", [], False),
}
# dense bf16 tensor-core peaks (NVIDIA's data sheets, without sparsity), TFLOP/s
PEAKS = {"H100 80GB HBM3": 989.4, "H100 SXM": 989.4, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H200": 989.4}


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def recipe(name: str, extra: list[str]) -> Any:
    path, over, bf16 = MODELS[name]
    quiet = ["train.progress_bar=false", "train.figures_every_n_epochs=100000", "train.checkpoint_every_n_steps=0",
             "trainer.check_val_every_n_epoch=100000", "trainer.limit_val_batches=0", "train.threads=null"]
    return load_config(str(ROOT / path), [*over, *quiet, *extra]), bf16


def batches_on(dev: torch.device, cfg: Any, n: int) -> tuple[Any, list[dict[str, torch.Tensor]]]:
    """The model of the recipe and its first n training batches, moved to the device once."""
    splits = build_data(cfg.data)
    model = build(cfg.model_name, model_config(resolved_model(cfg.model, splits.defaults), splits.defaults))
    it = iter(loader(splits.train, cfg.data.batch_size, shuffle=True, seed=0, drop_last=True))
    out = []
    for _ in range(n):
        b = next(it)
        out.append({k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in b.items()})
    return model.to(dev), out


def plain(dev: torch.device, cfg: Any, bf16: bool, steps: int, warm: int, compiled: bool) -> float:
    """Steps/s of a hand-written loop: loss, backward, fused Adam; batches already on the device."""
    model, batches = batches_on(dev, cfg, 16)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, fused=dev.type in ("cuda", "cpu"))

    def loss_of(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            return model.loss(batch).loss

    fn = torch.compile(loss_of, dynamic=False) if compiled else loss_of
    for i in range(warm + steps):
        if i == warm:
            sync(dev)
            start = time.perf_counter()
        fn(batches[i % len(batches)]).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync(dev)
    return steps / (time.perf_counter() - start)


def vaekit_rate(dev: torch.device, name: str, steps: int, warm: int, out: Path, compiled: bool = False) -> float:
    """Steps/s of vaekit's fit on the recipe, timed from step ``warm`` to the end by a callback."""
    from lightning.pytorch.callbacks import Callback

    class Clock(Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, idx) -> None:  # noqa: ANN001
            if trainer.global_step == warm:
                sync(dev)
                self.start = time.perf_counter()

        def on_train_end(self, trainer, module) -> None:  # noqa: ANN001
            sync(dev)
            self.rate = (trainer.global_step - warm) / (time.perf_counter() - self.start)

    bf16 = MODELS[name][2]
    cfg, _ = recipe(name, [f"trainer.max_steps={warm + steps}", "trainer.accelerator=auto",
                           f"train.compile={str(compiled).lower()}",
                           *(["trainer.precision=bf16-mixed"] if bf16 else [])])
    clock = Clock()
    fit(cfg, out / f"{name}_{'compiled' if compiled else 'eager'}", callbacks=[clock], overwrite=True)
    return clock.rate


def conv_tflops(dev: torch.device, cfg: Any) -> float:
    """FLOPs of one training step of the conv net (torch.utils.flop_counter), in TFLOP."""
    from torch.utils.flop_counter import FlopCounterMode

    model, batches = batches_on(dev, cfg, 1)
    with FlopCounterMode(display=False) as fc:
        model.loss(batches[0]).loss.backward()
    return fc.get_total_flops() / 1e12


def nll_rate(dev: torch.device, k: int, images: int) -> dict[str, float]:
    cfg, _ = recipe("vae", [])
    splits = build_data(cfg.data)
    model = build(cfg.model_name, model_config(resolved_model(cfg.model, splits.defaults), splits.defaults)).to(dev)
    model.eval()
    test = splits.test.subset(images)
    xs = [{k2: v.to(dev) for k2, v in b.items() if isinstance(v, torch.Tensor)}
          for b in loader(test, 100, shuffle=False, seed=0)]
    sync(dev)
    start = time.perf_counter()
    with torch.no_grad():
        for b in xs:
            importance_weighted_bound(model, b, k=k, chunk_size=min(k, 500))
    sync(dev)
    seconds = time.perf_counter() - start
    return {"k": k, "images": images, "seconds": round(seconds, 3), "images_per_s": round(images / seconds, 1)}


def packed(n: int, steps: int, out: Path) -> dict[str, float]:
    """n MLP VAE runs at once on the device, each its own process; aggregate steps/s from each run's run.json."""
    path, over, _ = MODELS["vae"]
    procs = []
    for i in range(n):
        d = out / f"pack{n}_{i}"
        cmd = [sys.executable, "-m", "vaekit.cli", "train", str(ROOT / path), *over, "train.progress_bar=false",
               f"trainer.max_steps={steps}", "trainer.limit_val_batches=0", "train.checkpoint_every_n_steps=0",
               "train.figures_every_n_epochs=100000", "train.threads=null", f"train.seed={i}", "--out", str(d),
               "--overwrite"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT))
    codes = [p.wait() for p in procs]
    walls = [(provenance.read(out / f"pack{n}_{i}") or {}).get("wall_s") for i in range(n)]
    if any(codes) or not all(walls):
        return {"runs": n, "failed": [i for i, c in enumerate(codes) if c]}
    return {"runs": n, "steps_each": steps, "aggregate_steps_per_s": round(n * steps / max(walls), 1),
            "slowest_wall_s": max(walls)}


def pythae_python() -> str | None:
    """The first interpreter of $PYTHAE_PY, benchmarks/.venv-pythae, this one that imports pythae."""
    for py in (os.environ.get("PYTHAE_PY"), str(ROOT / "benchmarks" / ".venv-pythae" / "bin" / "python"),
               sys.executable):
        imports = py and Path(py).exists() and subprocess.run([py, "-c", "import pythae"], capture_output=True)
        if imports and imports.returncode == 0:
            return py
    return None


def pythae_rates(images: int, k: int, nll_images: int, out: Path) -> dict[str, Any]:
    """pythae's pipeline (one epoch of ``images`` MNIST images) and get_nll (k samples, ``nll_images``), on the
    device, by benchmarks/bench_pythae_device.py in pythae's interpreter."""
    py = pythae_python()
    if py is None:
        return {"status": "not compared: no interpreter here imports pythae (set PYTHAE_PY)"}
    cfg, _ = recipe("vae", [])
    splits = build_data(cfg.data)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "pythae_data.pt"
    torch.save({"train": splits.train.data[:images].clone(), "test": splits.test.data[:nll_images].clone()}, data)
    done = subprocess.run([py, str(ROOT / "benchmarks" / "bench_pythae_device.py"), str(data), str(k)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    if done.returncode != 0:
        return {"status": f"failed (exit {done.returncode})", "stderr_tail": done.stderr[-1500:]}
    return {"status": "compared", "python": py, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "device_bench.json")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "device_bench")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--compiled", default="vae,ladder_vae",
                    help="models vaekit also trains with train.compile=true (each compile takes a while)")
    ap.add_argument("--smoke", action="store_true", help="a few steps of each, to test the script anywhere")
    args = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    steps, warm = (3, 2) if args.smoke else (300, 30)
    names = [n for n in args.models.split(",") if n]
    result: dict[str, Any] = {"command": " ".join(["python", "benchmarks/bench_device.py", *sys.argv[1:]]),
                              **provenance.code(), "machine": provenance.machine(), "device": provenance.device(dev),
                              "smoke": args.smoke, "complete": False, "steps_timed": steps, "warm_up_steps": warm,
                              "models": {}}

    def write() -> None:  # after every part: a run cut off still leaves what it measured
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")

    compiled = set(filter(None, args.compiled.split(",")))
    for name in names:
        cfg, bf16 = recipe(name, [])
        row = {"batch_size": cfg.data.batch_size, "bf16": bf16,
               "plain_eager": round(plain(dev, cfg, bf16, steps, warm, False), 2),
               "plain_compiled": round(plain(dev, cfg, bf16, steps, warm, True), 2),
               "vaekit": round(vaekit_rate(dev, name, steps, warm, args.runs), 2)}
        row["vaekit_vs_compiled"] = round(row["vaekit"] / row["plain_compiled"], 3)
        if name in compiled:
            row["vaekit_compiled"] = round(vaekit_rate(dev, name, steps, warm, args.runs, compiled=True), 2)
            row["vaekit_compiled_vs_compiled"] = round(row["vaekit_compiled"] / row["plain_compiled"], 3)
        if name == "conv64":
            tflop = conv_tflops(dev, cfg)
            peak = next((v for k, v in PEAKS.items() if k in result["device"]["name"]), None)
            row.update(tflop_per_step=round(tflop, 5), achieved_tflops=round(tflop * row["vaekit"], 3),
                       dense_bf16_peak_tflops=peak,
                       of_peak=round(tflop * row["vaekit"] / peak, 4) if peak else None)
        result["models"][name] = row
        print(name, row, flush=True)
        write()
    k = 10 if args.smoke else 5000
    result["nll"] = nll_rate(dev, k, 200 if args.smoke else 10000)
    print("nll", result["nll"], flush=True)
    write()
    # pythae: one epoch (smoke: 3 steps) of its pipeline, get_nll on fewer images (it loops over them one at a time)
    result["pythae"] = pythae_rates(384 if args.smoke else 50000, k, 10 if args.smoke else 200, args.runs)
    p = result["pythae"]
    if p.get("status") == "compared":
        if "vae" in result["models"]:
            p["vaekit_vs_pythae_steps"] = round(result["models"]["vae"]["vaekit"] / p["steps_per_s"], 2)
        p["vaekit_vs_pythae_nll"] = round(result["nll"]["images_per_s"] / p["nll_images_per_s"], 2)
    print("pythae", p, flush=True)
    write()
    result["packed"] = [packed(n, 5 if args.smoke else 600, args.runs) for n in ((1, 2) if args.smoke else (1, 4, 8))]
    if len(result["packed"]) > 1 and "aggregate_steps_per_s" in result["packed"][0]:
        one = result["packed"][0]["aggregate_steps_per_s"]
        for p in result["packed"]:
            if "aggregate_steps_per_s" in p:
                p["vs_one"] = round(p["aggregate_steps_per_s"] / one, 2)
    print("packed", result["packed"], flush=True)
    result["complete"] = True
    write()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
