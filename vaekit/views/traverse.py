"""Latent traversals (Higgins et al. 2017, fig. 7): decode the posterior mean of a seed image with one latent
moved across [-r, r], one row per latent, the rows sorted by the KL each latent carries (the informative
latents first, collapsed ones last), and a bar chart of that KL per latent."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from vaekit.core.drawing import write_figure
from vaekit.core.figures import Bars, ImageGrid
from vaekit.core.likelihoods import kl_per_dimension


@torch.no_grad()
def kl_by_latent(model: nn.Module, x: Tensor) -> Tensor:
    """Mean KL(q(z_j|x) || N(0, 1)) over the images ``x``, per latent j."""
    return kl_per_dimension(model.encode(x)).mean(0)


@torch.no_grad()
def traversal(model: nn.Module, seed: Tensor, order: Tensor, steps: int = 7, radius: float = 3.0) -> ImageGrid:
    """Rows: latents in ``order``; columns: z_j from -radius to radius, the other latents at E_q[z|seed]."""
    mean = model.encode(seed.unsqueeze(0)).mean[0]
    values = torch.linspace(-radius, radius, steps)
    z = mean.repeat(len(order), steps, 1)  # [rows, cols, D]
    for row, j in enumerate(order.tolist()):
        z[row, :, j] = values
    images = model.decode(z.flatten(0, 1)).mean
    return ImageGrid(images, nrow=steps)


def write_traversals(model: nn.Module, x: Tensor, out: Path, seeds: int = 3, steps: int = 7,
                     radius: float = 3.0) -> list[Path]:
    """traversal_seedN.png for the first ``seeds`` images of ``x`` and kl_per_latent.png over all of ``x``."""
    kl = kl_by_latent(model, x)
    order = torch.argsort(kl, descending=True)
    # A model whose code has structure names its latents (pro-VLAE: "z2.1", latent 1 of level 2), so each bar,
    # and the traversal row in the same order, says which level it belongs to.
    names = model.latent_names() if hasattr(model, "latent_names") else [f"z{j}" for j in range(len(kl))]
    written = [write_figure(Bars([names[j] for j in order.tolist()], kl[order].tolist(), "KL (nats)",
                                 f"KL per latent, mean over {len(x)} test images"), out / "kl_per_latent")]
    for s in range(min(seeds, len(x))):
        written.append(write_figure(traversal(model, x[s], order, steps, radius), out / f"traversal_seed{s}"))
    return written
