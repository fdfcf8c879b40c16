"""Issue 10's Ladder VAE comparison (experiments/ladder.sh) gathered: the analogue of Sønderby et al.'s Figure 3
(test log-likelihood against the number of stochastic layers for VAE, VAE+BN, VAE+BN+WU and LVAE+BN+WU), the
active units per layer, and of their Figure 6 (PCA of samples from each layer's posterior, coloured by digit, for
the 5-layer VAE+BN+WU and LVAE+BN+WU). Writes results/ladder_mnist.json, docs/ladder_fig3.png and
docs/ladder_fig6.png, and prints the Markdown tables for BENCHMARKS.md.

Usage: python benchmarks/ladder_report.py [--runs runs/ladder] [--points 2000] [--docs docs] [--results results]
[--tag _400ep] (each run's evaluation is its eval_k*.json with the most importance samples, the full test set
preferred; a tag is appended to the names of the JSON and the figures, so a second experiment keeps the first's)."""

from __future__ import annotations

import argparse
import csv
import json
import re
import shlex
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from report_common import final_evaluation  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# run name (experiments/ladder.sh) -> the label of Sønderby et al.'s Figure 3
FAMILIES = {"vae": "VAE", "vae_bn": "VAE+BN", "vae_bn_wu": "VAE+BN+WU", "lvae_bn_wu": "LVAE+BN+WU"}
ANCHORS = ("Sønderby et al. 2016 (MNIST, 2,000 epochs, L_5000): best LVAE -81.74 nats; "
           "addtt/ladder-vae-pytorch (3-layer conv "
           "LVAE): 79.24 nats (1,000 importance samples)")


def training_extent(run: Path) -> dict:
    """Epochs and steps trained: the last row of the run's metrics.csv."""
    path = run / "logs" / "metrics.csv"
    if not path.exists():
        return {}
    epoch = step = 0
    with path.open() as f:
        for row in csv.DictReader(f):
            epoch = max(epoch, int(row["epoch"] or 0))
            step = max(step, int(row["step"] or 0))
    return {"epochs": epoch + 1, "steps": step + 1}


@torch.no_grad()
def posterior_pca(run: Path, n: int) -> tuple[list, list[int], torch.Tensor]:
    """Per layer, the 2-D PCA of one sample z_i ~ q(z_i|.) per test image (eval mode), the layers' sizes and the
    images' digits."""
    from vaekit.run.io import held_out_batch, load_run

    model, cfg, _ = load_run(run)
    batch = held_out_batch(cfg, n)
    torch.manual_seed(0)
    h = model.hierarchy(batch["x"])
    return [PCA(2, random_state=0).fit_transform(z.numpy()) for z in h.z], [z.shape[-1] for z in h.z], batch["y"]


def plot_fig3(rows: dict[str, dict], depths: list[int], budget: str, path: Path) -> None:
    """Test log-likelihood against the number of stochastic layers, one line per family."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label in FAMILIES.values():
        pts = sorted((r["layers"], -r["nll"]) for r in rows.values() if r["family"] == label)
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=label)
    ax.set_xlabel("stochastic layers")
    ax.set_ylabel("test log-likelihood (nats, L_k)")
    ax.set_xticks(depths)
    ax.set_title("Figure 3 analogue: MNIST, equal budget per run" + (f"\n({budget})" if budget else ""))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=str(ROOT / "runs" / "ladder"))
    ap.add_argument("--points", type=int, default=2000, help="test images in the Figure 6 analogue")
    ap.add_argument("--docs", default=str(ROOT / "docs"))
    ap.add_argument("--results", default=str(ROOT / "results"))
    ap.add_argument("--experiment", default="experiments/ladder.sh", help="the script that made the runs")
    ap.add_argument("--budget", default="", help="the machine and budget, in words, for the figure and the JSON")
    ap.add_argument("--tag", default="", help="appended to the output names: results/ladder_mnist<tag>.json ...")
    args = ap.parse_args()
    runs_dir, docs, results = Path(args.runs), Path(args.docs), Path(args.results)
    rows: dict[str, dict] = {}
    for run in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
        m = re.fullmatch(r"(.+)_(\d)", run.name)
        if not (run.is_dir() and m and m[1] in FAMILIES):
            continue
        found = final_evaluation(run)
        if found is None:
            print(f"{run.name}: not evaluated yet, left out", file=sys.stderr)
            continue
        path, ev = found
        rows[run.name] = {"family": FAMILIES[m[1]], "layers": int(m[2]), "nll": ev["nll"], "k": ev["k"],
                          "n_examples": ev["n_examples"], "elbo": ev["elbo"],
                          "kl_per_layer": [ev[f"kl_{i}"] for i in range(1, int(m[2]) + 1) if f"kl_{i}" in ev],
                          "active_units": ev.get("active_units", {}),
                          "eval_file": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
                          "eval_command": ev.get("command"), **training_extent(run)}
    if not rows:
        sys.exit(f"no evaluated runs under {runs_dir}: run experiments/ladder.sh first")

    docs.mkdir(parents=True, exist_ok=True)
    figures = []
    depths = sorted({r["layers"] for r in rows.values()})
    if len(depths) > 1:  # a curve over depth needs more than one depth
        plot_fig3(rows, depths, args.budget, docs / f"ladder_fig3{args.tag}.png")
        figures.append(f"docs/ladder_fig3{args.tag}.png")

    pca = {}
    for name in ("vae_bn_wu_5", "lvae_bn_wu_5"):
        if name in rows:
            pca[name] = posterior_pca(runs_dir / name, args.points)
    if pca:
        fig, axes = plt.subplots(len(pca), 5, figsize=(15, 3.2 * len(pca)), squeeze=False)
        for row_axes, (name, (coords, dims, y)) in zip(axes, pca.items(), strict=True):
            for i, (ax, c, d) in enumerate(zip(row_axes, coords, dims, strict=True), start=1):
                sc = ax.scatter(c[:, 0], c[:, 1], c=y.numpy(), cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
                ax.set_title(f"z_{i} ({d}-D)")
                ax.set_xticks([])
                ax.set_yticks([])
            row_axes[0].set_ylabel(f"{rows[name]['family']}, 5 layers")
        fig.colorbar(sc, ax=axes, ticks=range(10), label="digit", shrink=0.8)
        fig.suptitle("Figure 6 analogue: PCA of one sample from each layer's posterior, test images")
        fig.savefig(docs / f"ladder_fig6{args.tag}.png", dpi=110)
        plt.close(fig)
        figures.append(f"docs/ladder_fig6{args.tag}.png")

    out = {"command": "python " + shlex.join(sys.argv), "experiment": args.experiment,
           **({"budget": args.budget} if args.budget else {}), "anchors": ANCHORS, "runs": rows,
           "figures": figures}
    results.mkdir(parents=True, exist_ok=True)
    (results / f"ladder_mnist{args.tag}.json").write_text(json.dumps(out, indent=2) + "\n")

    print("| model | layers | epochs | test NLL (nats) | k | ELBO | KL per layer (z_1 .. z_L) | active units |")
    print("|---|---|---|---|---|---|---|---|")
    for r in sorted(rows.values(), key=lambda r: (r["layers"], list(FAMILIES.values()).index(r["family"]))):
        kl = " / ".join(f"{v:.1f}" for v in r["kl_per_layer"])
        au = " / ".join(f"{v}" for v in r["active_units"].values())
        print(f"| {r['family']} | {r['layers']} | {r.get('epochs', '-')} | {r['nll']:.2f} | {r['k']} "
              f"| {r['elbo']:.2f} | {kl} | {au} |")
    print(f"\nAnchors: {ANCHORS}")


if __name__ == "__main__":
    main()
