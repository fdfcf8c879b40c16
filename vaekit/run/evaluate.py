"""Test-set evaluation of whatever a model can be measured by: NLL (-L_k with k = 5000, or the exact
log-likelihood) in nats and bits per dimension, the model's own terms (ELBO, KL, ...) and active units.
Measures a model's declared abilities do not support are listed as not applicable, with the reason."""

from __future__ import annotations

import inspect
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from vaekit.core.estimators import importance_weighted_bound
from vaekit.core.likelihoods import check_likelihood
from vaekit.data import build_data, iterate
from vaekit.metrics import active_units
from vaekit.models.base import Ability, has
from vaekit.run.config import EvalConfig, RunConfig


def _progress(items: list, desc: str, enabled: bool) -> Any:
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, unit="batch")


def _limited(test: Dataset, limit: int | None) -> Dataset:
    return test.subset(limit) if limit is not None and limit < len(test) else test


@torch.no_grad()
def evaluate(model: nn.Module, test: Dataset, cfg: EvalConfig, dims: int, nats_offset: float = 0.0,
             progress: bool = True, seed: int = 0, nll_refused: str | None = None) -> dict[str, Any]:
    """NLL = -(1/N) sum_n L_k(x_n) in nats (plus ``nats_offset``, the dequantization correction) and in bits per
    scored value (``model.scored_values(dims)`` of the ``dims`` per example); the model's loss terms averaged
    over the test set (log-likelihood terms shifted by the same offset, so all are in nats of the 8-bit data);
    active units. ``nll_refused`` names why the model's likelihood is no NLL of these data, if it is not."""
    if len(test) == 0:
        raise ValueError("the test set is empty: nothing to evaluate")
    model.eval()
    device = next(model.parameters()).device
    torch.manual_seed(seed)
    batches = iterate(_limited(test, cfg.limit), cfg.batch_size, seed=seed)
    name = model.__class__.__name__
    result: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    start = time.perf_counter()
    if nll_refused:
        how, desc = None, "terms"
        skipped["nll"] = nll_refused
    elif has(model, Ability.IMPORTANCE_WEIGHTS):
        how, desc = f"-L_{cfg.nll_samples}", f"L_{cfg.nll_samples}"
    elif has(model, Ability.EXACT_LIKELIHOOD):
        how, desc = "exact", "log p"
    else:
        how, desc = None, "terms"
        skipped["nll"] = f"{name} declares neither importance weights nor an exact likelihood"
    worker_mib = None
    if cfg.processes > 1 and len(batches) > 1:
        log_px, sums, n, worker_mib = _in_processes(model, batches, how, cfg, seed)
    else:
        log_px, sums, n = _accumulate(model, _progress(batches, desc, progress), how, cfg)
    if how is not None:
        nll = -log_px / n + nats_offset
        result.update(nll=nll, bits_per_dim=nll / (model.scored_values(dims) * math.log(2)), nll_estimator=how)
        if how != "exact":
            result["k"] = cfg.nll_samples
    shifted = {"elbo", "rec", "log_likelihood", "bound", "iwae_bound"}  # log-likelihoods: density -> 8-bit data
    result.update({k: v / n - (nats_offset if k in shifted else 0.0) for k, v in sums.items()})
    if has(model, Ability.LATENT_MEANS):  # the batches come on the CPU, the model may be on a GPU
        result["active_units"] = active_units(lambda b: model.latent_means(_on(device, b)), batches)
    else:
        skipped["active_units"] = f"{name} declares no latent means"
    result.update(n_examples=n, seconds=round(time.perf_counter() - start, 1), peak_rss_mib=_peak_rss(worker_mib),
                  device=str(device))
    if nats_offset:
        result["nats_offset"] = nats_offset  # D log 256: from the density of dequantized values to 8-bit NLL
    if skipped:
        result["not_applicable"] = skipped
    return result


def _hwm_mib() -> float:
    """This process's peak resident set in MiB: VmHWM (reset by exec, unlike getrusage's ru_maxrss, which a
    spawned worker inherits from the parent it was forked from)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_rss(worker_mib: float | None) -> dict[str, float]:
    """The largest resident set so far, this process's and (when shards ran elsewhere) the largest worker's."""
    mib = {"main": _hwm_mib(), **({"largest_worker": worker_mib} if worker_mib is not None else {})}
    return {k: round(v, 1) for k, v in mib.items()}


def _on(device: torch.device, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A batch (served on the CPU) moved to the model's device."""
    return {k: v.to(device) for k, v in batch.items()}


def _accumulate(model: nn.Module, batches: Any, how: str | None, cfg: EvalConfig) -> tuple[float, dict, int]:
    """Sum over ``batches`` of log p(x) (or L_k) and of the model's loss terms (per example), and the count.
    Memory stays bounded: one batch, and ``cfg.chunk_size`` importance samples of it, at a time."""
    device = next(model.parameters()).device
    log_px, n, sums = 0.0, 0, {}
    for batch in batches:
        batch = _on(device, batch)
        b = batch["x"].shape[0]
        if how == "exact":
            log_px += float(model.log_likelihood(batch).sum())
        elif how is not None:
            log_px += float(importance_weighted_bound(model, batch, cfg.nll_samples, cfg.chunk_size).sum())
        for term, value in model.loss(batch).terms.items():
            sums[term] = sums.get(term, 0.0) + float(value.float().mean()) * b
        n += b
    return log_px, sums, n


def _shard(model: nn.Module, batches: list, how: str | None, cfg: EvalConfig, seed: int, threads: int) -> tuple:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    with torch.no_grad():
        out = _accumulate(model, batches, how, cfg)
    return (*out, _hwm_mib())


def _in_processes(model: nn.Module, batches: list, how: str | None, cfg: EvalConfig,
                  seed: int) -> tuple[float, dict, int, float]:
    """The batches cut into ``cfg.processes`` contiguous shards, each summed by its own process (the CPU's
    threads shared out between them; on a GPU machine each process uses the model's device). Each shard draws
    its own importance samples (seed + shard), so the estimate differs from one process's by Monte Carlo noise."""
    import torch.multiprocessing as mp

    p = min(cfg.processes, len(batches))
    shards = [batches[i * len(batches) // p : (i + 1) * len(batches) // p] for i in range(p)]
    threads = max(1, torch.get_num_threads() // p)
    with mp.get_context("spawn").Pool(p) as pool:
        parts = pool.starmap(_shard, [(model, sh, how, cfg, seed + i, threads) for i, sh in enumerate(shards)])
    sums: dict[str, float] = {}
    for _, part, _, _ in parts:
        for k, v in part.items():
            sums[k] = sums.get(k, 0.0) + v
    return sum(lp for lp, *_ in parts), sums, sum(m for _, _, m, _ in parts), max(peak for *_, peak in parts)


def check_metric_settings(settings: dict[str, dict[str, Any]] | None) -> None:
    """Each metric's settings are arguments it takes (a misspelt one is named now, not as a TypeError later)."""
    from vaekit.metrics import METRICS

    for n, given in (settings or {}).items():
        if n not in METRICS:
            raise ValueError(f"metric_settings: unknown metric {n!r}; choose from: {', '.join(sorted(METRICS))}")
        allowed = [p for p in inspect.signature(METRICS[n]).parameters if p not in
                   ("ground_truth_data", "representation_function", "random_state")]
        if bad := [k for k in given if k not in allowed]:
            raise ValueError(f"metric_settings.{n}.{bad[0]} is unknown; {n} takes: {', '.join(allowed)}")


def effective_metric_settings(names: list[str], settings: dict[str, dict[str, Any]] | None = None,
                              ) -> dict[str, dict[str, Any]]:
    """Every setting each named metric runs with: its defaults (disentanglement_lib's sample sizes) with
    ``settings`` over them, so a results file states them all, not only those that were changed."""
    from vaekit.metrics import METRICS

    out = {}
    for n in names:
        params = inspect.signature(METRICS[n]).parameters.values()
        defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty
                    and p.name != "random_state"}
        out[n] = {**defaults, **(settings or {}).get(n, {})}
    return out


def disentanglement(model: nn.Module, ground_truth: Any, names: list[str], seed: int = 0,
                    batch_size: int = 256, settings: dict[str, dict[str, Any]] | None = None,
                    ) -> tuple[dict[str, Any], dict[str, str]]:
    """The metrics named, each on ``ground_truth`` with the model's representation function (the posterior mean)
    and a random state from ``seed`` (``settings[name]`` overrides a metric's defaults); returns (scores,
    reasons for those that do not apply)."""
    from vaekit.metrics import METRICS

    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; choose from: {', '.join(sorted(METRICS))}")
    check_metric_settings(settings)
    name = model.__class__.__name__
    if not has(model, Ability.REPRESENTATION):
        return {}, {n: f"{name} declares no representation function" for n in names}
    if ground_truth is None:
        return {}, {n: "the data set has no known factors" for n in names}

    device = next(model.parameters()).device  # observations come on the CPU; the model may not be there

    @torch.no_grad()
    def represent(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([model.represent(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x),
                                                                                                   batch_size)])

    model.eval()
    scores = {}
    for n in names:
        start = time.perf_counter()
        scores[n] = {**METRICS[n](ground_truth, represent, random_state=seed, **(settings or {}).get(n, {})),
                     "seconds": round(time.perf_counter() - start, 1)}
    return scores, {}


def evaluate_run(model: nn.Module, cfg: RunConfig, run_dir: Path | None, progress: bool = True,
                 command: str | None = None) -> dict[str, Any]:
    check_metric_settings(cfg.eval.metric_settings)  # before minutes of NLL, not after
    splits = build_data(cfg.data)
    try:  # an older run may pair a likelihood with data it is no distribution over: its -log p is no NLL
        check_likelihood(model.observation_model(), splits.observation)
        refused = None
    except ValueError as e:
        refused = str(e)
    result = evaluate(model, splits.test, cfg.eval, splits.dims, splits.nats_offset, progress=progress,
                      nll_refused=refused)
    result = {"model": cfg.model_name, "data": cfg.data.name, **result, **({"command": command} if command else {})}
    if cfg.eval.metrics:
        scores, skipped = disentanglement(model, splits.ground_truth, cfg.eval.metrics, cfg.eval.metrics_seed,
                                          settings=cfg.eval.metric_settings)
        result["metrics"] = scores
        # every setting, defaults included, so a score says the sample sizes it was made with
        result["metric_settings"] = effective_metric_settings(cfg.eval.metrics, cfg.eval.metric_settings)
        result["metrics_seed"] = cfg.eval.metrics_seed
        if skipped:
            result.setdefault("not_applicable", {}).update(skipped)
    if run_dir is not None:
        name = f"eval_k{cfg.eval.nll_samples}" + (f"_n{cfg.eval.limit}" if cfg.eval.limit else "") + ".json"
        (run_dir / name).write_text(json.dumps(result, indent=2))
        result["written"] = str(run_dir / name)
    return result
