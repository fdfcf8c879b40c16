"""The lecture's "(a) CVAE (b) Regressor" figure: for the same partial test inputs, several CVAE completions
beside the regressor's single prediction. Columns: input X (missing part grey) | CVAE samples | regressor |
truth. Usage: python benchmarks/cvae_figure.py runs/cvae_quadrants/q1 docs/cvae_vs_regressor_q1.png [seed0]
(the last argument: the seed folder of a sweep over seeds)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from vaekit.core.drawing import save_grid
from vaekit.data import build_data
from vaekit.models.regressor import show_input
from vaekit.run.io import load_run


def main() -> None:
    group, out = Path(sys.argv[1]), Path(sys.argv[2])
    seed = sys.argv[3] if len(sys.argv) > 3 else ""
    cvae, cfg, _ = load_run(group / "cvae" / seed)
    regressor, _, _ = load_run(group / "regressor" / seed)
    test = build_data(cfg.data).test
    torch.manual_seed(0)
    batch = test.__getitems__(list(range(0, 160, 16)))  # ten test digits
    img = batch["x"]
    samples = list(cvae.complete(batch, 6))
    cols = [show_input(img, cvae.given), *samples, regressor.reconstruct(batch), img]
    save_grid(torch.stack(cols, 1).flatten(0, 1), out, nrow=len(cols), scale=2)
    print(f"wrote {out}: columns = input | 6 CVAE completions | regressor | truth")


if __name__ == "__main__":
    main()
