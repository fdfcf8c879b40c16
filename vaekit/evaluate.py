"""Test-set evaluation: NLL (-L_k with k = 5000), ELBO, KL and active units."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vaekit import data as datasets
from vaekit.config import EvalConfig, RunConfig
from vaekit.data.batches import TensorImages, iterate
from vaekit.estimators import importance_weighted_bound
from vaekit.metrics import active_units


def _progress(items: list, desc: str, enabled: bool) -> Any:
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, unit="batch")


@torch.no_grad()
def evaluate(model: nn.Module, test: TensorImages, cfg: EvalConfig, progress: bool = True,
             seed: int = 0) -> dict[str, Any]:
    """NLL = -(1/N) sum_n L_k(x_n) in nats, plus the analytic-KL ELBO and Burda's active units."""
    model.eval()
    torch.manual_seed(seed)
    if cfg.limit is not None:
        test = TensorImages(test.images[: cfg.limit], None if test.labels is None else test.labels[: cfg.limit])
    batches = iterate(test, cfg.batch_size)
    start = time.perf_counter()
    log_px, n = 0.0, 0
    sums: dict[str, float] = {}  # the loss terms each model reports (elbo; rec and kl where defined)
    conditional = getattr(model, "conditional", False)  # conditional models read X and Y from the batch
    for batch in _progress(batches, f"L_{cfg.nll_samples}", progress):
        x = batch["x"]
        inputs = batch if conditional else x
        log_px += float(importance_weighted_bound(model, inputs, cfg.nll_samples, cfg.chunk_size).sum())
        b = x.shape[0]
        for name, value in model.loss(batch).terms.items():
            sums[name] = sums.get(name, 0.0) + float(value.mean()) * b
        n += b
    seconds = time.perf_counter() - start
    au = (active_units(model.latent_means, (b if conditional else b["x"] for b in batches))
          if hasattr(model, "latent_means") else {})
    return {"nll": -log_px / n, **{k: v / n for k, v in sums.items()}, "active_units": au, "k": cfg.nll_samples,
            "n_images": n, "seconds": round(seconds, 1)}


def evaluate_run(model: nn.Module, cfg: RunConfig, run_dir: Path | None, progress: bool = True) -> dict[str, Any]:
    test = datasets.build(cfg.data).test
    result = evaluate(model, test, cfg.eval, progress=progress)
    if run_dir is not None:
        name = f"eval_k{cfg.eval.nll_samples}" + (f"_n{cfg.eval.limit}" if cfg.eval.limit else "") + ".json"
        (run_dir / name).write_text(json.dumps(result, indent=2))
        result["written"] = str(run_dir / name)
    return result
