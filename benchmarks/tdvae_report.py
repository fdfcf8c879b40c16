"""Issue 11's numbers: the prediction errors that `vaekit rollout --evaluate` wrote (results/tdvae_oscillator.json,
results/tdvae_moving_mnist.json, copied there by experiments/tdvae.sh) as Markdown tables, the issue's checks as
booleans beside them (appended to each JSON under "checks"), and one chart of error per frame ahead
(docs/tdvae_errors.png).

Usage: python benchmarks/tdvae_report.py [--results results] [--out docs/tdvae_errors.png]"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SETS = {"oscillator": "noisy oscillator (position)", "moving_mnist": "moving MNIST (pixels)"}


def rows(result: dict[str, Any], key: str) -> dict[str, dict[int, float]]:
    """{predictor: {frames ahead: value}} for one measure (mse, position_mse, identity)."""
    out: dict[str, dict[int, float]] = {}
    named = {f"TD-VAE, jump {j[4:]}": r for j, r in result["model"].items()}
    named |= {"copy last frame": result["copy_last"]}
    if "baseline" in result:
        named["LSTM predictor"] = result["baseline"]
    for name, r in named.items():
        if key in r:
            out[name] = dict(zip(r["frames_ahead"], r[key], strict=True))
    return out


def table(series: dict[str, dict[int, float]], fmt: str) -> str:
    ahead = sorted({k for s in series.values() for k in s})
    lines = ["| frames ahead | " + " | ".join(map(str, ahead)) + " |", "|---|" + "---|" * len(ahead)]
    for name, s in series.items():
        lines.append(f"| {name} | " + " | ".join(format(s[k], fmt) if k in s else "" for k in ahead) + " |")
    return "\n".join(lines)


def checks(name: str, result: dict[str, Any]) -> dict[str, Any]:
    """The issue's criteria, as measured."""
    mse = rows(result, "mse")
    model, copy = mse["TD-VAE, jump 1"], mse["copy last frame"]
    out: dict[str, Any] = {"beats_copy_last_at_every_horizon_from_2": all(model[k] < copy[k] for k in model
                                                                           if k >= 2)}
    if name == "moving_mnist" and "identity" in result["model"]["jump1"]:
        identity = rows(result, "identity")["TD-VAE, jump 1"]
        out["identity_at_5"] = identity[5]
        out["identity_at_5_at_least_0.8"] = identity[5] >= 0.8
        out["judge_test_accuracy"] = result.get("judge_test_accuracy")
    if name == "oscillator":  # jumpy prediction: each jump's error at the frames it lands on, against copy-last
        pos = rows(result, "position_mse")
        copy_pos = pos["copy last frame"]
        out["jumps_beat_copy_last_on_position"] = {
            j: all(v < copy_pos[k] for k, v in s.items() if k >= 2) for j, s in pos.items() if j.startswith("TD")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default=str(ROOT / "results"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "tdvae_errors.png"))
    args = ap.parse_args()
    found = {s: Path(args.results) / f"tdvae_{s}.json" for s in SETS}
    found = {s: p for s, p in found.items() if p.exists()}
    panels = [(s, "mse") for s in found] + [(s, "identity") for s in found if s == "moving_mnist"]
    panels += [(s, "position_mse") for s in found if s == "oscillator"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, (s, key) in zip(axes[0], sorted(panels), strict=True):
        result = json.loads(found[s].read_text())
        for name, series in rows(result, key).items():
            ks = sorted(series)
            ax.plot(ks, [series[k] for k in ks], marker="o", ms=3, label=name,
                    ls="--" if not name.startswith("TD") else "-")
        ax.set_xlabel("frames ahead of the last context frame")
        ax.set_ylabel({"mse": "MSE vs the observed frame", "position_mse": "MSE vs the true position",
                       "identity": "share named the right digit"}[key])
        ax.set_title(SETS[s], fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    for s, path in found.items():
        result = json.loads(path.read_text())
        result["checks"] = checks(s, result)
        path.write_text(json.dumps(result, indent=2))
        print(f"\n### {SETS[s]}: {result['n_sequences']} test sequences, context {result['context']}\n")
        for key, fmt in (("mse", ".4f"), ("position_mse", ".4f"), ("identity", ".3f")):
            if series := rows(result, key):
                print(f"{key}:\n\n{table(series, fmt)}\n")
        print("checks:", json.dumps(result["checks"]))


if __name__ == "__main__":
    main()
