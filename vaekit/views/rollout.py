"""Rollouts of a trained sequence model (TD-VAE, or the LSTM predictor baseline) on test sequences: a PNG and an
animated GIF of sampled futures beside the true one, and per-horizon prediction errors against baselines.

Any model with ``rollout(x_context, horizon, jump, n_samples) -> [S, B, horizon // jump, *frame]`` works: the
predicted frames land at context - 1 + jump, context - 1 + 2 jump, ... (see ``vaekit.models.tdvae``).

    vaekit rollout runs/tdvae_moving_mnist --context 10 --horizon 10 --samples 3
    vaekit rollout runs/tdvae_oscillator --jump 5 --evaluate 1000       # + errors per frames ahead, JSON
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from vaekit.core import options as opt
from vaekit.core.drawing import grid


def _test_batch(run: str | Path, n: int, seed: int, data_dir: str | None) -> tuple[nn.Module, Path, dict[str, Tensor]]:
    """The run's model, its directory and its test set's first n sequences (drawn with ``seed``)."""
    from vaekit.run.io import held_out_batch, load_run

    model, cfg, run_dir = load_run(run)
    if not callable(getattr(model, "rollout", None)):
        raise ValueError(f"{type(model).__name__} has no rollout(); train a sequence model (tdvae, lstm_predictor)")
    return model, run_dir, held_out_batch(cfg, n, seed, data_dir)


def _check(x: Tensor, context: int, horizon: int, jump: int) -> None:
    if context < 1 or horizon < 0 or jump < 1 or context + horizon > x.shape[1]:
        raise ValueError(f"context={context} + horizon={horizon} must fit the {x.shape[1]} frames of a sequence "
                         f"(context >= 1, horizon >= 0, jump >= 1)")


def _landing(context: int, horizon: int, jump: int) -> list[int]:
    """The frames a rollout's predictions stand for (all of horizon 0's: the last context frame)."""
    return [context - 1 + jump * (k + 1) for k in range(horizon // jump)] if horizon else [context - 1]


# -- prediction errors -------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate_predictions(model: nn.Module, batch: dict[str, Tensor], context: int = 10, horizon: int = 10,
                         jumps: tuple[int, ...] = (1,), samples: int = 8, seed: int = 0,
                         baseline: nn.Module | None = None, judge: nn.Module | None = None) -> dict[str, Any]:
    """Mean squared error per frames ahead (1..horizon) of rollouts from the first ``context`` frames.

    For each jump: ``mse`` of the mean of ``samples`` rollouts and ``mse_per_sample`` (the mean of each sample's
    error, which also counts the spread of the futures drawn) against the observed frames; with a true state in
    the batch (the oscillator), ``position_mse`` against the noise-free position. Baselines: ``copy_last`` (the
    last context frame, for every frame ahead) and, if given, ``baseline`` (e.g. an ``lstm_predictor``). With a
    ``judge`` (vaekit.metrics.digit_classifier) and labels in the batch, ``identity``: the share of predicted frames
    (each sample's, binarized at 0.5) in which the judge names the sequence's digit, per frame ahead. ``reconstruction``
    scores the same way the model's rendering of the last context frame (frames ahead 0), the ceiling of its
    rollouts."""
    x = batch["x"]
    _check(x, context, horizon, 1)
    truth_pos = batch["state"][..., 0] if "state" in batch else None

    def score(pred: Tensor, frames: list[int]) -> dict[str, Any]:
        """pred: [S, B, K, *frame] at ``frames``."""
        target = x[:, frames]
        per_frame = lambda p: (p - target).pow(2).flatten(2).mean(-1).mean(0)  # [K]: over values, then sequences
        row = {"frames_ahead": [f - (context - 1) for f in frames], "mse": per_frame(pred.mean(0)).tolist(),
               "mse_per_sample": torch.stack([per_frame(p) for p in pred]).mean(0).tolist()}
        if truth_pos is not None:
            row["position_mse"] = (pred.mean(0)[..., 0] - truth_pos[:, frames]).pow(2).mean(0).tolist()
        if judge is not None and "y" in batch:
            from vaekit.metrics.digit_classifier import predict

            frames_ = (pred > 0.5).float()  # [S, B, K, 1, 28, 28]: judged as binary frames, like its training
            named = predict(judge, frames_.flatten(0, 2)).view(frames_.shape[:3])
            row["identity"] = (named == batch["y"][None, :, None]).float().mean((0, 1)).tolist()
        return row

    torch.manual_seed(seed)
    result: dict[str, Any] = {"context": context, "horizon": horizon, "n_sequences": len(x), "samples": samples,
                              "model": {}}
    for jump in jumps:
        if horizon // jump:
            pred = model.rollout(x[:, :context], horizon, jump, samples)
            result["model"][f"jump{jump}"] = score(pred, _landing(context, horizon, jump))
    # Horizon 0, the model's own picture of the last context frame: no rollout can keep more of the digit than this
    result["reconstruction"] = score(model.rollout(x[:, :context], 0, 1, samples), _landing(context, 0, 1))
    every = _landing(context, horizon, 1)
    result["copy_last"] = score(x[:, context - 1 : context].expand(-1, len(every), *x.shape[2:])[None], every)
    if baseline is not None:
        result["baseline"] = score(baseline.rollout(x[:, :context], horizon, 1, 1), every)
    return result


# -- pictures ----------------------------------------------------------------------------------------------------
def _tint(frames: Tensor) -> Tensor:
    """Grey frames [N, 1, H, W] -> RGB with a warm tint: predicted frames, told apart from observed ones."""
    return torch.cat([frames, 0.55 * frames, 0.15 * frames], 1) if frames.shape[1] == 1 else frames


def _grey_rgb(frames: Tensor) -> Tensor:
    return frames.expand(-1, 3, -1, -1) if frames.shape[1] == 1 else frames


def image_rollout_png(x: Tensor, pred: Tensor, context: int, horizon: int, jump: int) -> Image.Image:
    """Per sequence: its frames (context, then the true future) in the top row, one row per sampled rollout below
    (tinted, at the frames its jumps land on; blank elsewhere), then a blank row."""
    s, b = pred.shape[:2]
    t_end = context + horizon
    frames = _landing(context, horizon, jump)
    blank = torch.ones(3, *x.shape[-2:])
    rows = []
    for i in range(b):
        rows.append(_grey_rgb(x[i, :t_end]))
        for k in range(s):
            row = blank.expand(t_end, -1, -1, -1).clone()
            row[frames] = _tint(pred[k, i].float())
            rows.append(row)
        rows.append(blank.expand(t_end, -1, -1, -1))
    return grid(torch.cat(rows[:-1]), nrow=t_end, scale=2)


def image_rollout_gif(x: Tensor, pred: Tensor, context: int, horizon: int, jump: int) -> list[Image.Image]:
    """GIF frames: one row per sequence, columns truth | sample 1 | ...; the samples show the observed frames
    during the context, then (tinted) their latest prediction."""
    s, b = pred.shape[:2]
    frames = _landing(context, horizon, jump)
    out = []
    for t in range(context + horizon):
        tiles = []
        for i in range(b):
            tiles.append(_grey_rgb(x[i, t : t + 1]))
            for k in range(s):
                done = [j for j, f in enumerate(frames) if f <= t]
                tiles.append(_grey_rgb(x[i, t : t + 1]) if t < context or not done else
                             _tint(pred[k, i, done[-1] : done[-1] + 1].float()))
        out.append(grid(torch.cat(tiles), nrow=1 + s, scale=3))
    return out


def _series_axes(ax: Any, x: Tensor, state: Tensor | None, pred: Tensor, context: int, horizon: int, jump: int,
                 upto: int | None = None) -> None:
    """One oscillator sequence on ``ax``: observations, true position, the context's end, rollouts up to ``upto``."""
    t_end = context + horizon
    upto = t_end - 1 if upto is None else upto
    t = np.arange(t_end)
    ax.plot(t[: upto + 1], x[: upto + 1, 0].numpy(), "o", color="0.55", markersize=3, label="observed")
    if state is not None:
        ax.plot(t, state[:t_end, 0].numpy(), "-", color="black", linewidth=1.2, label="true position")
    ax.axvline(context - 0.5, color="0.7", linestyle=":")
    frames = _landing(context, horizon, jump)
    for k, p in enumerate(pred):
        keep = [j for j, f in enumerate(frames) if f <= upto]
        if keep:
            ts = [context - 1] + [frames[j] for j in keep]
            ys = [float(x[context - 1, 0])] + [float(p[j, 0]) for j in keep]
            ax.plot(ts, ys, "--", marker="." if jump == 1 else "s", markersize=4, alpha=0.8,
                    label="rollouts" if k == 0 else None, color=f"C{k + 1}")
    ax.set_xlim(-0.5, t_end - 0.5)


def series_rollout_png(x: Tensor, state: Tensor | None, pred: Tensor, context: int, horizon: int, jump: int,
                       upto: int | None = None) -> Image.Image:
    """A matplotlib chart per sequence (rows): observations, true position and sampled rollouts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = x.shape[0]
    fig, axes = plt.subplots(b, 1, figsize=(7, 2.1 * b), dpi=90, sharex=True, squeeze=False)
    for i in range(b):
        _series_axes(axes[i, 0], x[i], None if state is None else state[i], pred[:, i], context, horizon, jump, upto)
        axes[i, 0].set_ylabel("position")
        axes[i, 0].grid(alpha=0.3)
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=3)
    axes[0, 0].set_title(f"context 0..{context - 1}, rollouts of {horizon} frames in jumps of {jump}", fontsize=9)
    axes[-1, 0].set_xlabel("frame")
    fig.tight_layout()
    fig.canvas.draw()
    image = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
    return image


def rollout_figure(run_dir: str | Path, context: int = 10, horizon: int = 10, jump: int = 1, samples: int = 3,
                   out: str | Path | None = None, seed: int = 0, data_dir: str | None = None,
                   sequences: int = 4) -> list[Path]:
    """Roll out the first ``sequences`` test sequences of a trained run from their first ``context`` frames,
    ``samples`` times each, and write a PNG (true future above the sampled rollouts; a line chart of positions
    for vector data such as the oscillator) and an animated GIF beside it. Returns the two paths."""
    model, run_dir, batch = _test_batch(run_dir, sequences, seed, data_dir)
    x = batch["x"]
    _check(x, context, horizon, jump)
    torch.manual_seed(seed)
    pred = model.rollout(x[:, :context], horizon, jump, samples).cpu()
    png = Path(out) if out else Path(run_dir) / f"rollout_c{context}_h{horizon}_j{jump}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    if x.dim() == 5:  # image frames [B, T, C, H, W]
        image_rollout_png(x, pred, context, horizon, jump).save(png)
        gif = image_rollout_gif(x, pred, context, horizon, jump)
    else:
        state = batch.get("state")
        series_rollout_png(x, state, pred, context, horizon, jump).save(png)
        gif = [series_rollout_png(x, state, pred, context, horizon, jump, upto=t)
               for t in range(context - 1, context + horizon)]
    gif_path = png.with_suffix(".gif")
    gif[0].save(gif_path, save_all=True, append_images=gif[1:], duration=250, loop=0)
    return [png, gif_path]


# -- command line ------------------------------------------------------------------------------------------------
def cmd_rollout(args: argparse.Namespace) -> None:
    for path in rollout_figure(args.run, args.context, args.horizon, args.jump, args.samples, args.out, args.seed,
                               args.data_dir, args.sequences):
        print(f"vaekit: wrote {path}")
    if args.evaluate:
        model, run_dir, batch = _test_batch(args.run, args.evaluate, args.seed, args.data_dir)
        baseline = None
        if args.baseline:
            from vaekit.run.io import load

            baseline = load(args.baseline)
        judge, judged = None, None
        if args.identity:  # moving MNIST: does the rollout keep the digit? (the judge's own accuracy is recorded)
            from vaekit.metrics.digit_classifier import digit_classifier

            judge, judged = digit_classifier(args.data_dir)
        jumps = tuple(range(1, getattr(model.config, "max_jump", 1) + 1))
        result = evaluate_predictions(model, batch, args.context, args.horizon, jumps, max(args.samples, 8),
                                      args.seed, baseline, judge)
        if judged is not None:
            result["judge_test_accuracy"] = judged
        result["command"] = "vaekit " + shlex.join(sys.argv[1:])
        path = Path(run_dir) / f"predictions_c{args.context}_h{args.horizon}_n{len(batch['x'])}.json"
        path.write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
        print(f"vaekit: wrote {path}")


def add_rollout_parser(sub: Any) -> argparse.ArgumentParser:
    """``vaekit rollout RUN ...``: add the subcommand to the CLI's subparsers (one line in vaekit/cli.py)."""
    r = sub.add_parser("rollout", help="sampled future frames of test sequences (PNG + GIF), and prediction errors")
    r.add_argument("run", type=opt.existing_path, help="run directory of a sequence model (tdvae, lstm_predictor)")
    r.add_argument("--context", type=opt.count(10**4), default=10, help="frames the model sees")
    r.add_argument("--horizon", type=opt.integer(0, 10**4), default=10,
                   help="frames predicted after the context (0: reconstruct)")
    r.add_argument("--jump", type=opt.count(10**3), default=1, help="frames per transition (TD-VAE's jumpy rollouts)")
    r.add_argument("--samples", type=opt.count(100), default=3, help="rollouts per sequence")
    r.add_argument("--sequences", type=opt.count(1000), default=4, help="test sequences drawn")
    r.add_argument("--seed", type=opt.seed, default=0)
    r.add_argument("--data-dir", type=opt.existing_path)
    r.add_argument("--out", type=opt.out_path,
                   help="PNG path (the GIF goes beside it); default RUN/rollout_c*_h*_j*.png")
    r.add_argument("--evaluate", type=opt.integer(0, 10**6), default=0, metavar="N",
                   help="also score rollouts of N test sequences per frames ahead (every jump 1..max_jump), JSON")
    r.add_argument("--baseline", type=opt.existing_path,
                   help="with --evaluate: a trained lstm_predictor run to score beside")
    r.add_argument("--identity", action="store_true",
                   help="with --evaluate on moving MNIST: the share of predicted frames a digit classifier (trained "
                        "once on rolled MNIST and cached) names correctly")
    r.set_defaults(func=cmd_rollout)
    return r
