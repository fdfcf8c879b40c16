"""One latent with a N(0, I) prior (VAE, conv VAE, beta-VAE, IWAE, pro-VLAE): a slider per z_j."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from vaekit.models.base import Ability, has
from vaekit.views.explore.base import (
    Explorer,
    Slider,
    register_explorer,
)


@register_explorer(lambda m: has(m, Ability.TRAVERSAL), order=90)
class LatentExplorer(Explorer):
    """A latent-variable model with encode(x) -> q(z|x) and decode(z) -> p(x|z) under N(0, I): a slider per z_j
    (grouped by level where the model names its latents, e.g. pro-VLAE's "z2.1")."""

    kind = "latent"

    def sliders(self) -> list[Slider]:
        names = self.model.latent_names() if hasattr(self.model, "latent_names") else None
        dim = self.model.latent_dim if names is None else len(names)
        names = names or [f"z{j}" for j in range(dim)]
        group = lambda n: f"level {n.split('.')[0].removeprefix('z')}" if "." in n else "z"
        return [Slider(n, group(n)) for n in names]

    def decode(self, values: list[float], controls: dict[str, Any]) -> Tensor:
        return self.model.decode(self.check(values)[None]).mean[0]

    def posterior_of(self, x: Tensor, controls: dict[str, Any]) -> list[float]:
        return self.model.encode(x[None]).mean[0].tolist()

    def posterior(self, index: int, controls: dict[str, Any]) -> list[float]:
        return self.posterior_of(self.example_image(index), controls)
