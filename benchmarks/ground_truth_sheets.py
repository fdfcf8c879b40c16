"""Example sheets of the two ground-truth sets, one factor varying per row while the others stay fixed.

  docs/dsprites_sheet.png   three blocks (square, ellipse, heart) of four rows: scale, orientation, pos_x, pos_y
  docs/shapes3d_sheet.png   six rows: floor hue, wall hue, object hue, scale, shape, orientation

Rendered directly from the factors (vaekit.data.dsprites.render_factors, vaekit.data.shapes3d.render_factors), so
no cache is needed. Usage: python benchmarks/ground_truth_sheets.py [OUT_DIR=docs]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from vaekit.core.drawing import save_grid
from vaekit.data import dsprites, shapes3d

COLUMNS = 10


def spread(size: int) -> np.ndarray:
    """Up to COLUMNS factor indices spread evenly over 0..size-1, both ends included."""
    return np.unique(np.linspace(0, size - 1, min(size, COLUMNS)).round().astype(np.int64))


def rows(base: np.ndarray, factors: list[int], sizes: tuple[int, ...]) -> np.ndarray:
    """One row of factor combinations per factor in ``factors``: that factor spread, the rest as in ``base``;
    short rows are padded with -1 (a blank tile)."""
    out = np.full((len(factors), COLUMNS, len(base)), -1, dtype=np.int64)
    for r, k in enumerate(factors):
        values = spread(sizes[k])
        out[r, : len(values)] = base
        out[r, : len(values), k] = values
    return out.reshape(-1, len(base))


def tiles(grid: np.ndarray, draw, shape: tuple[int, ...]) -> torch.Tensor:
    """Images of the combinations, blank (white, like the grid's padding) where a row is short."""
    out = torch.ones(len(grid), *shape)
    used = (grid >= 0).all(1)
    out[torch.from_numpy(used)] = draw(grid[used])
    return out


def main() -> None:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs")
    ds_grid = np.concatenate([rows(np.array([k, 5, 0, 16, 16]), [1, 2, 3, 4], dsprites.FACTOR_SIZES)
                              for k in range(3)])
    ds = tiles(ds_grid, lambda f: torch.from_numpy(dsprites.render_factors(f)).float().unsqueeze(1), (1, 64, 64))
    a = save_grid(ds, out_dir / "dsprites_sheet.png", nrow=COLUMNS, scale=2)
    s3_grid = rows(np.array([0, 5, 3, 4, 0, 7]), list(range(6)), shapes3d.FACTOR_SIZES)
    s3 = tiles(s3_grid, shapes3d.render_factors, (3, 64, 64))
    b = save_grid(s3, out_dir / "shapes3d_sheet.png", nrow=COLUMNS, scale=2)
    for path in (a, b):
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
