"""Issue 10's pro-VLAE comparison on 3D shapes (experiments/shapes3d.sh) gathered: the final metrics of pro-VLAE,
the VLAE trained with every level at once and the beta-VAE (eval_final.json), MIG and MIG-sup over training
(metrics/step*.json), the KL per level over training (logs/metrics.csv: the information shortcut, or its absence)
and traversals with one labelled row per latent, grouped by level. Writes results/provlae_shapes3d.json,
docs/provlae_kl_per_level.png, docs/provlae_traversals.png and prints the Markdown table for BENCHMARKS.md.

Usage: python benchmarks/provlae_report.py [--runs runs/shapes3d] [--docs docs] [--results results]"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shlex
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from report_common import final_evaluation, labelled_traversal, metric_curves  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"provlae": "pro-VLAE", "vlae": "VLAE (all levels at once)", "beta_vae": "beta-VAE (beta = 8)"}
FINAL = [("MIG", "mig", "discrete_mig"), ("MIG-sup", "mig_sup", "discrete_mig_sup"),
         ("beta-VAE metric", "beta_vae", "eval_accuracy"), ("FactorVAE metric", "factor_vae", "eval_accuracy"),
         ("DCI disentanglement", "dci", "disentanglement"), ("DCI completeness", "dci", "completeness"),
         ("DCI informativeness", "dci", "informativeness_test"), ("SAP", "sap", "SAP_score")]
ANCHORS = ("Li et al. 2020, Table 1 (3D Shapes, DeepMind's rendered scenes, 216,000 steps): MIG and "
           "MIG-sup of pro-VLAE above VLAE and beta-VAE; the lecture's traversals: hues at the top level, shape in "
           "the middle, the rest at the bottom")


def kl_per_level(run: Path) -> dict[str, list[tuple[int, float]]]:
    """KL_l against the step, from the training rows of metrics.csv (the validation rows where none)."""
    path = run / "logs" / "metrics.csv"
    series: dict[str, dict[str, list[tuple[int, float]]]] = {"train": defaultdict(list), "val": defaultdict(list)}
    if not path.exists():
        return {}
    with path.open() as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                m = re.fullmatch(r"(train|val)/kl_(\d+)", key)
                if m and value:
                    series[m[1]][f"kl_{m[2]}"].append((int(row["step"]), float(value)))
    return dict(series["train"] or series["val"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=str(ROOT / "runs" / "shapes3d"))
    ap.add_argument("--docs", default=str(ROOT / "docs"))
    ap.add_argument("--results", default=str(ROOT / "results"))
    ap.add_argument("--experiment", default="experiments/shapes3d.sh", help="the script that made the runs")
    ap.add_argument("--budget", default="", help="the machine and budget, in words, for the JSON")
    args = ap.parse_args()
    runs_dir, docs, results = Path(args.runs), Path(args.docs), Path(args.results)
    runs: dict[str, dict[int, Path]] = defaultdict(dict)
    for d in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
        m = re.fullmatch(r"(.+)_s(\d+)", d.name)
        if d.is_dir() and m and m[1] in MODELS and (d / "model.safetensors").exists():
            runs[m[1]][int(m[2])] = d
    if not runs:
        sys.exit(f"no trained runs under {runs_dir}: run experiments/shapes3d.sh first")
    docs.mkdir(parents=True, exist_ok=True)
    out: dict = {"command": "python " + shlex.join(sys.argv), "experiment": args.experiment,
                 **({"budget": args.budget} if args.budget else {}), "anchors": ANCHORS, "models": {}}

    for name, seeds in runs.items():
        entry: dict = {"label": MODELS[name], "seeds": {}}
        for seed, run in seeds.items():
            ev = (final_evaluation(run) or (None, {}))[1]
            scores = ev.get("metrics", {})
            entry["seeds"][seed] = {
                "final": {title: scores[m][k] for title, m, k in FINAL if m in scores and k in scores[m]},
                "nll": ev.get("nll"), "kl_per_latent_or_level": {k: v for k, v in ev.items()
                                                                 if re.fullmatch(r"kl_\d+", k)},
                "active_units": ev.get("active_units"), "eval_command": ev.get("command"),
                "curves": {st: {t: c[m][k] for t, m, k in FINAL if m in c and k in c[m]}
                           for st, c in metric_curves(run).items()}}
        finals = defaultdict(list)
        for s in entry["seeds"].values():
            for title, v in s["final"].items():
                finals[title].append(v)
        entry["final_mean"] = {t: statistics.fmean(v) for t, v in finals.items()}
        out["models"][name] = entry

    ladders = [(n, seeds[min(seeds)]) for n in ("vlae", "provlae") if (seeds := runs.get(n))]
    if ladders:
        fig, axes = plt.subplots(1, len(ladders), figsize=(6 * len(ladders), 4), squeeze=False, sharey=True)
        for ax, (name, run) in zip(axes[0], ladders, strict=True):
            series = kl_per_level(run)
            for level in sorted(series, key=lambda k: -int(k.split("_")[1])):
                xs, ys = zip(*series[level], strict=True)
                ax.plot(xs, ys, label=f"level {level.split('_')[1]}" + (" (top)" if level == max(series) else ""))
            out["models"][name]["kl_per_level_over_training"] = series
            ax.set_title(f"{MODELS[name]}: KL per level ({run.name})")
            ax.set_xlabel("training step")
            ax.legend()
        axes[0][0].set_ylabel("KL(q(z_l|x) || N(0, I)), nats")
        fig.tight_layout()
        fig.savefig(docs / "provlae_kl_per_level.png", dpi=110)
        plt.close(fig)

    n_rows = 9
    shown = [(n, seeds[min(seeds)]) for n in MODELS if (seeds := runs.get(n))]
    fig, axes = plt.subplots(n_rows, len(shown), figsize=(4.2 * len(shown), 0.75 * n_rows + 0.6), squeeze=False)
    for col, (name, run) in enumerate(shown):
        labelled_traversal([list(axes[:, col])], run, f"{MODELS[name]} ({run.name})")
    fig.suptitle("Traversals, values -3 .. 3 (rows: latent, mean KL in nats; levels top first)", fontsize=10)
    fig.tight_layout()
    fig.savefig(docs / "provlae_traversals.png", dpi=110)
    plt.close(fig)

    out["figures"] = ["docs/provlae_kl_per_level.png", "docs/provlae_traversals.png"]
    results.mkdir(parents=True, exist_ok=True)
    (results / "provlae_shapes3d.json").write_text(json.dumps(out, indent=2) + "\n")
    titles = [t for t, _, _ in FINAL]
    print("| model | seeds | " + " | ".join(titles) + " | KL per level, or per latent (nats) |")
    print("|---|---|" + "---|" * (len(titles) + 1))
    for entry in out["models"].values():
        first = next(iter(entry["seeds"].values()))
        kl = " / ".join(f"{v:.1f}" for v in first["kl_per_latent_or_level"].values())
        cells = [f"{entry['final_mean'][t]:.3f}" if t in entry["final_mean"] else "-" for t in titles]
        print(f"| {entry['label']} | {len(entry['seeds'])} | " + " | ".join(cells) + f" | {kl or '-'} |")
    print(f"\nAnchors: {ANCHORS}")


if __name__ == "__main__":
    main()
