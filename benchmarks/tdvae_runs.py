"""Several moving-MNIST TD-VAE runs side by side (issue 11): for each run directory, the model settings that differ
from configs/tdvae_moving_mnist.yaml, the budget it reached and its last validation J (logs/metrics.csv), and its
`vaekit rollout --evaluate --identity` result (predictions_*.json) with the issue's checks. Writes one JSON and
prints a Markdown table.

Usage: python benchmarks/tdvae_runs.py --out results/X.json --command "how they were trained" --budget "..." RUN...
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import yaml
from tdvae_report import checks

from vaekit.run.config import load_config, plain, resolved_model

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "configs" / "tdvae_moving_mnist.yaml"


def differences(run: Path) -> dict[str, Any]:
    """The run's model/data/train settings that differ from the recipe's, its defaults filled in (epochs and
    threads aside: a budget, not a setting)."""
    used = yaml.safe_load((run / "config.yaml").read_text())
    recipe = load_config(RECIPE)
    recipe.model = resolved_model(recipe.model, {"input_shape": tuple(used["model"]["input_shape"])})
    base = plain(recipe.to_dict())
    return {f"{section}.{key}": value for section in ("model", "data", "train")
            for key, value in used[section].items()
            if base[section].get(key) != value and key not in ("epochs", "threads")}


def last_validation(run: Path) -> dict[str, Any]:
    """Epoch and step of the last validation, with its J and log p_D."""
    with open(run / "logs" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/J")]
    r = rows[-1]
    return {"epoch": int(r["epoch"]) + 1, "steps": int(r["step"]), "val_J": float(r["val/J"]),
            "val_log_pD": float(r["val/log_pD"])}


def summarize(run: Path) -> dict[str, Any]:
    (pred,) = sorted(run.glob("predictions_*.json"))
    result = json.loads(pred.read_text())
    return {"run": run.name, "settings": differences(run), **last_validation(run), "evaluation": result,
            "checks": checks("moving_mnist", result)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--command", required=True, help="how the runs were trained")
    ap.add_argument("--budget", required=True, help="the machine and the time they had")
    args = ap.parse_args()
    runs = [summarize(r) for r in args.runs]
    args.out.write_text(json.dumps({"train_command": args.command, "budget": args.budget, "runs": runs}, indent=2))
    print(f"wrote {args.out}\n")
    print("| run | epochs (steps) | val J | val log p_D | identity at 0 (reconstruction) | at 1 | at 5 | at 10 | "
          "MSE at 5 (copy-last) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        ev, m = r["evaluation"], r["evaluation"]["model"]["jump1"]
        rec = ev.get("reconstruction", {}).get("identity", [float("nan")])[0]
        print(f"| `{r['run']}` | {r['epoch']} ({r['steps']:,}) | {r['val_J']:.1f} | {r['val_log_pD']:.1f} | "
              f"{rec:.3f} | {m['identity'][0]:.3f} | **{m['identity'][4]:.3f}** | {m['identity'][9]:.3f} | "
              f"{m['mse'][4]:.4f} ({ev['copy_last']['mse'][4]:.4f}) |")


if __name__ == "__main__":
    main()
