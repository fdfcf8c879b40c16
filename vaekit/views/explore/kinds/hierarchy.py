"""Hierarchies (Ladder VAE): one group of sliders per level."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from vaekit.models.base import Ability, has
from vaekit.views.explore.base import (
    Explorer,
    Slider,
    register_explorer,
)


def _levels(model: nn.Module) -> tuple[nn.ModuleList, Callable[[Tensor], Any]] | None:
    """(the top-down conditionals p(z_i | z_{i+1}) indexed i = 0 .. L-2, the decoder of z_1) of a hierarchy."""
    if isinstance(getattr(model, "top_down", None), nn.ModuleList) and len(model.top_down):
        return model.top_down, model.decode_x  # Ladder VAE, hierarchical VAE
    if isinstance(getattr(model, "p_layers", None), nn.ModuleList) and len(model.p_layers):
        return model.p_layers, model.decode  # IWAE with several stochastic layers
    return None


@register_explorer(lambda m: _levels(m) is not None and has(m, Ability.LATENT_MEANS), order=30)
class HierarchyExplorer(Explorer):
    """A top-down hierarchy p(z_L) p(z_{L-1} | z_L) .. p(x | z_1): a slider group per level, each in standard
    units of its own conditional prior (z_i = mu_p(z_{i+1}) + sigma_p(z_{i+1}) u_i), so moving a top-level slider
    moves what every level below it is centred on."""

    kind = "hierarchy"

    def __init__(self, model: nn.Module, examples: dict[str, Tensor]) -> None:
        super().__init__(model, examples)
        self.conditionals, self.bottom = _levels(model)
        means = model.latent_means({"x": examples["x"][:1]})
        self.names = list(means)  # bottom (z1 / h1) .. top
        self.dims = [m.shape[-1] for m in means.values()]

    def sliders(self) -> list[Slider]:
        top = len(self.dims)
        return [Slider(f"{self.names[i]}.{j}", f"level {i + 1}" + (" (top)" if i == top - 1 else
                                                                    " (next to x)" if i == 0 else ""))
                for i in reversed(range(top)) for j in range(self.dims[i])]

    def split(self, values: list[float]) -> list[Tensor]:
        """Slider values (top level first) -> u_1 .. u_L (bottom first), each [1, d_i]."""
        u = self.check(values)[None]
        parts = list(u.split(self.dims[::-1], dim=-1))
        return parts[::-1]

    def decode(self, values: list[float], controls: dict[str, Any]) -> Tensor:
        u = self.split(values)
        z = u[-1]
        for i in reversed(range(len(u) - 1)):
            p = self.conditionals[i](z)
            z = p.mean + p.stddev * u[i]
        return self.bottom(z).mean[0]

    def posterior_of(self, x: Tensor, controls: dict[str, Any]) -> list[float]:
        m = list(self.model.latent_means({"x": x[None]}).values())
        u = [m[-1]]
        for i in reversed(range(len(m) - 1)):
            p = self.conditionals[i](m[i + 1])
            u.insert(0, (m[i] - p.mean) / p.stddev)
        return torch.cat(u[::-1], dim=-1)[0].tolist()

    def posterior(self, index: int, controls: dict[str, Any]) -> list[float]:
        return self.posterior_of(self.example_image(index), controls)
