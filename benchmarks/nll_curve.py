"""Test NLL (-L_k) against epochs from a run's snapshots/: a markdown table and a PNG curve.

Usage: python benchmarks/nll_curve.py RUN_DIR [--k 5000] [--images 1000]"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.torch import load_file

from vaekit.core.drawing import save_curve
from vaekit.core.figures import Curve
from vaekit.data import build_data
from vaekit.run.config import load_config, migrate, read_yaml
from vaekit.run.evaluate import evaluate
from vaekit.run.io import build_model


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run", type=Path)
    p.add_argument("--k", type=int, default=5000)
    p.add_argument("--images", type=int, default=1000)
    args = p.parse_args()
    cfg = load_config(migrate(read_yaml(args.run / "config.yaml")))
    cfg.eval.nll_samples, cfg.eval.limit = args.k, args.images
    splits = build_data(cfg.data)
    rows = []
    for snap in sorted((args.run / "snapshots").glob("epoch*.safetensors")):
        model = build_model(cfg)
        model.load_state_dict(load_file(str(snap)))
        r = evaluate(model, splits.test, cfg.eval, splits.dims, splits.nats_offset, progress=False)
        epoch = int(snap.stem.removeprefix("epoch"))
        rows.append({"epoch": epoch, "nll": r["nll"], "elbo": r["elbo"]})
        print(f"| {epoch} | {r['nll']:.2f} | {-r['elbo']:.2f} |", flush=True)
    (args.run / f"nll_curve_k{args.k}_n{args.images}.json").write_text(json.dumps(rows, indent=2))
    curve = Curve([r["epoch"] for r in rows], {"test NLL": [r["nll"] for r in rows]}, xlabel="epoch",
                  ylabel=f"test NLL (k={args.k}), nats", log_x=True)
    save_curve(curve, args.run / "nll_curve.png")


if __name__ == "__main__":
    main()
