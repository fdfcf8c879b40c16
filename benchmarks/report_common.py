"""What the disentanglement reports share: a run's metric curves (metrics/stepN.json, written while it trains)
and latent traversals with labelled rows for the docs (each row a latent, its name and mean KL at the left, values
-3 .. 3 across; ``vaekit traverse`` writes the unlabelled grids)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch


def metric_curves(run: Path) -> dict[int, dict]:
    """{step: the metrics scored at that step} from run/metrics/stepNNNNNNN.json."""
    return {int(p.stem[4:]): json.loads(p.read_text()) for p in sorted((run / "metrics").glob("step*.json"))}


def final_evaluation(run: Path) -> tuple[Path, dict] | None:
    """A run's final ``vaekit evaluate`` JSON: eval_final.json (experiments/shapes3d.sh), else the eval_stepN.json
    of the last step N (experiments/dsprites_eval.sh), else the eval_kK[_nN].json with the full test set preferred
    and the most importance samples (experiments/ladder.sh); None before any."""
    if (run / "eval_final.json").is_file():
        path = run / "eval_final.json"
    elif steps := sorted(run.glob("eval_step*.json"), key=lambda p: int(p.stem[9:])):
        path = steps[-1]
    else:
        found = [(m[2] is None, int(m[1]), p) for p in run.glob("eval_k*.json")
                 if (m := re.fullmatch(r"eval_k(\d+)(?:_n(\d+))?", p.stem))]
        if not found:
            return None
        path = max(found, key=lambda t: t[:2])[2]
    return path, json.loads(path.read_text())


@torch.no_grad()
def labelled_traversal(columns: list[list], run: Path, label: str, seed_indices: tuple[int, ...] = (0,),
                       steps: int = 7, images: int = 500) -> list[str]:
    """Fill ``columns`` (per test image in ``seed_indices``, one matplotlib axis per row, as many rows as fit)
    with traversals of ``run``'s final weights, the model and its KL per latent computed once; returns the latents
    in row order. Rows: for a model that names its latents by level ("z3.1"), the levels from the top down, each
    level's latents by KL; otherwise by KL."""
    from vaekit.run.io import held_out_batch, load_run
    from vaekit.views.traverse import kl_by_latent, traversal

    model, cfg, _ = load_run(run / "model.safetensors")
    x = held_out_batch(cfg, images)["x"]
    kl = kl_by_latent(model, x)
    names = model.latent_names() if hasattr(model, "latent_names") else [f"z{j}" for j in range(len(kl))]

    def level(name: str) -> int:
        return int(name[1:].split(".")[0]) if "." in name else 0

    order = sorted(range(len(kl)), key=lambda j: (-level(names[j]), -float(kl[j])))
    for ax_rows, seed_index in zip(columns, seed_indices, strict=True):
        grid = traversal(model, x[seed_index], torch.tensor(order), steps)
        pictures = grid.images.float().clamp(0, 1)
        for row, ax in enumerate(ax_rows[:len(order)]):
            strip = torch.cat(list(pictures[row * steps:(row + 1) * steps]), dim=-1)  # [C, H, W * steps]
            ax.imshow(strip.permute(1, 2, 0).numpy(), cmap="gray" if strip.shape[0] == 1 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            j = order[row]
            ax.set_ylabel(f"{names[j]}\n{float(kl[j]):.1f}", rotation=0, ha="right", va="center", fontsize=8)
        ax_rows[0].set_title(f"{label}, test image {seed_index}" if len(seed_indices) > 1 else label, fontsize=10)
    return [names[j] for j in order]
