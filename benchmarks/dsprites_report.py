"""Issue 9's grid on dSprites (beta = 1, beta = 4, capacity control; seeds 0-2): the metric curves written during
training (runs/dsprites/NAME_sS/metrics/stepN.json) and the final evaluations (eval_*.json), gathered into
results/dsprites_beta_vae.json, a figure of the curves (docs/dsprites_curves.png) and a Markdown table.

Usage: python benchmarks/dsprites_report.py [--runs runs/dsprites] [--step N]
(the table is at the largest step every run of a model has reached, or at --step)."""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from report_common import final_evaluation, labelled_traversal, metric_curves  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"beta1": "VAE (beta = 1)", "beta4": "beta-VAE (beta = 4)",
          "capacity": "capacity control (gamma 100, C to 25 nats)",
          "capacity_g1000": "capacity control (gamma 1000, C to 25 nats)"}
CURVES = {"MIG": ("mig", "discrete_mig"), "beta-VAE metric": ("beta_vae", "eval_accuracy")}
FINAL = [("beta-VAE metric", "beta_vae", "eval_accuracy"), ("FactorVAE metric", "factor_vae", "eval_accuracy"),
         ("MIG", "mig", "discrete_mig"), ("DCI disentanglement", "dci", "disentanglement"),
         ("DCI completeness", "dci", "completeness"), ("DCI informativeness", "dci", "informativeness_test"),
         ("SAP", "sap", "SAP_score")]
ANCHORS = {"beta-VAE metric": "Higgins et al. 2017 (their protocol): 99.23% beta-VAE, 61.58% VAE, 84.9% PCA"}


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values), "n": len(values),
            "values": values}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default=str(ROOT / "runs" / "dsprites"))
    ap.add_argument("--step", type=int)
    args = ap.parse_args()
    runs: dict[str, dict[int, Path]] = defaultdict(dict)
    for d in sorted(Path(args.runs).iterdir()):
        if d.is_dir() and "_s" in d.name and d.name.split("_s")[0] in MODELS:
            runs[d.name.split("_s")[0]][int(d.name.split("_s")[1])] = d

    fig, axes = plt.subplots(1, len(CURVES), figsize=(11, 4))
    scored: list[tuple[float, Path]] = []  # (final MIG, run) for the traversal figure
    result: dict = {"command": "python benchmarks/dsprites_report.py", "grid": "experiments/dsprites.sh",
                    "models": {}}
    for model, seeds in runs.items():
        per_seed = {s: c for s, d in seeds.items() if (c := metric_curves(d))}  # seeds with a scored step so far
        seeds = {s: seeds[s] for s in per_seed}
        reached = [max(c) for c in per_seed.values() if c]
        if not reached:
            continue
        at = args.step or min(reached)
        entry: dict = {"label": MODELS[model], "seeds": sorted(seeds), "steps_reached": {s: max(c, default=0) for
                                                                                         s, c in per_seed.items()},
                       "curves": {}, "at_step": at, "at_step_metrics": {}}
        for ax, (title, (name, key)) in zip(axes, CURVES.items(), strict=True):
            steps = sorted({st for c in per_seed.values() for st in c})
            rows = {st: [c[st][name][key] for c in per_seed.values() if st in c and name in c[st]] for st in steps}
            rows = {st: v for st, v in rows.items() if v}
            entry["curves"][title] = {st: spread(v) for st, v in rows.items()}
            # the mean over seeds where every seed has a score; a run extended alone continues dashed
            n_max = max(len(v) for v in rows.values())
            xs = [x for x in rows if len(rows[x]) == n_max]
            mean = [statistics.fmean(rows[x]) for x in xs]
            line = ax.plot(xs, mean, marker="o", label=f"{MODELS[model]} ({len(seeds)} seeds)")[0]
            ax.fill_between(xs, [min(rows[x]) for x in xs], [max(rows[x]) for x in xs], alpha=0.2,
                            color=line.get_color())
            ext = [x for x in rows if x > xs[-1]]
            for seed, c in per_seed.items():
                if ext and any(x in c for x in ext):
                    tail = [xs[-1]] + [x for x in ext if x in c]
                    ax.plot(tail, [c[x][name][key] for x in tail], "--", marker="o", mfc="none",
                            color=line.get_color(), label=f"{MODELS[model]}, seed {seed} extended")
            ax.set_title(f"{title} over training (mean, min-max over seeds)")
            ax.set_xlabel("training step")
        for title, name, key in FINAL:
            vals = [c[at][name][key] for c in per_seed.values() if at in c and name in c[at] and key in c[at][name]]
            if vals:
                entry["at_step_metrics"][title] = spread(vals)
        finals = defaultdict(list)
        for d in seeds.values():
            if (found := final_evaluation(d)) is None:  # experiments/dsprites_eval.sh, at the last step reached
                continue
            metrics = found[1].get("metrics", {})
            for title, name, key in FINAL:
                if key in metrics.get(name, {}):
                    finals[title].append(metrics[name][key])
            if "mig" in metrics:
                scored.append((metrics["mig"]["discrete_mig"], d))
        entry["final_evaluation"] = {t: spread(v) for t, v in finals.items()}
        result["models"][model] = entry
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "dsprites_curves.png", dpi=90)
    result["anchors"] = ANCHORS
    if scored:  # the run with the best final MIG
        mig, run = max(scored, key=lambda t: t[0])
        tfig, taxes = plt.subplots(10, 3, figsize=(10, 9), squeeze=False)
        labelled_traversal([list(taxes[:, col]) for col in range(3)], run, run.name, seed_indices=(0, 1, 2))
        tfig.suptitle(f"Traversals of the run with the best MIG ({mig:.3f}): rows latents by KL (nats), "
                      "values -3 .. 3", fontsize=10)
        tfig.tight_layout()
        tfig.savefig(ROOT / "docs" / "dsprites_traversal_best.png", dpi=90)
        result["best_run"] = {"run": run.name, "mig": mig, "figure": "docs/dsprites_traversal_best.png"}
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "dsprites_beta_vae.json").write_text(json.dumps(result, indent=2))

    print("| model | seeds | step | " + " | ".join(t for t, _, _ in FINAL) + " |")
    print("|---" * (3 + len(FINAL)) + "|")
    for e in result["models"].values():
        table = e["final_evaluation"] or e["at_step_metrics"]
        cells = [f"{table[t]['mean']:.3f} ({table[t]['min']:.3f}-{table[t]['max']:.3f}, n={table[t]['n']})"
                 if t in table else "-" for t, _, _ in FINAL]
        print(f"| {e['label']} | {len(e['seeds'])} | {e['at_step']} | " + " | ".join(cells) + " |")

    steps = sorted({st for seeds in runs.values() for d in seeds.values() for st in metric_curves(d)})
    print("\nCurves, per run (MIG / beta-VAE metric):\n")
    print("| run | " + " | ".join(f"step {st:,}" for st in steps) + " |")
    print("|---" * (1 + len(steps)) + "|")
    for model, seeds in runs.items():
        for seed, d in sorted(seeds.items()):
            c = metric_curves(d)
            cells = [f"{c[st]['mig']['discrete_mig']:.3f} / {c[st]['beta_vae']['eval_accuracy']:.3f}"
                     if st in c and "mig" in c[st] and "beta_vae" in c[st] else "" for st in steps]
            print(f"| {MODELS[model]}, seed {seed} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
