"""Conditional VAEs: a label picker, or the given quadrants of an image."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vaekit.models.base import Ability, has
from vaekit.views.explore.base import (
    ExploreError,
    Explorer,
    Slider,
    register_explorer,
    strip,
)


def _is_conditional(model: nn.Module) -> bool:
    return callable(getattr(model, "condition", None)) and callable(getattr(model, "prior_net", None))


@register_explorer(_is_conditional, order=20)
class ConditionalExplorer(Explorer):
    """A CVAE: z = mu_p(c) + sigma_p(c) u under its conditional prior p(z | c). The condition c is the label
    picked (cvae_label) or the given quadrants of a test example or upload (cvae_quadrants; the missing pixels
    are the model's completion)."""

    kind = "conditional"

    def __init__(self, model: nn.Module, examples: dict[str, Tensor]) -> None:
        super().__init__(model, examples)
        self.by_label = has(model, Ability.SAMPLE_BY_LABEL)
        self.max_sliders = 32

    def sliders(self) -> list[Slider]:
        return [Slider(f"z{j}", "z") for j in range(self.model.latent_dim)]

    def controls(self) -> list[dict[str, Any]]:
        example = super().controls()
        if self.by_label:
            labels = [{"value": k, "label": str(k)} for k in range(self.model.config.n_classes)]
            return [*example, {"name": "label", "type": "select", "label": "label", "options": labels, "value": 0}]
        example[0]["label"] = "image to complete (test example)"
        return example

    def batch(self, x: Tensor, controls: dict[str, Any]) -> dict[str, Tensor]:
        if not self.by_label:
            return {"x": x[None]}
        try:
            label = int(controls.get("label", 0))
        except (TypeError, ValueError):
            raise ExploreError("label must be a whole number") from None
        if not 0 <= label < self.model.config.n_classes:
            raise ExploreError(f"label must be in 0..{self.model.config.n_classes - 1}")
        return {"x": x[None], "y": torch.tensor([label])}

    def source(self, controls: dict[str, Any]) -> Tensor:
        return torch.zeros_like(self.examples["x"][0]) if self.by_label else self.source_image(controls)

    def decode(self, values: list[float], controls: dict[str, Any]) -> Tensor:
        from vaekit.models.regressor import show_input

        batch = self.batch(self.source(controls), controls)
        cond = self.model.condition(batch)
        p = self.model.prior(cond)
        out = self.model.decode(p.mean + p.stddev * self.check(values)[None], cond).mean[0]
        if self.by_label:
            return out
        given = self.model.given
        return strip(torch.stack([show_input(batch["x"][0], given), torch.where(given, batch["x"][0], out)]), pad=2)

    def posterior_of(self, x: Tensor, controls: dict[str, Any]) -> list[float]:
        batch = self.batch(x, controls)
        cond = self.model.condition(batch)
        p, q = self.model.prior(cond), self.model.encode(cond, batch["x"])
        return ((q.mean - p.mean) / p.stddev)[0].tolist()

    def posterior(self, index: int, controls: dict[str, Any]) -> list[float]:
        ex = self.example(index)
        if self.by_label:
            controls = {**controls, "label": int(ex["y"][0])}
        return self.posterior_of(ex["x"][0], controls)

    def example_controls(self, index: int) -> dict[str, Any]:
        """A test example picked under a label model brings its label along."""
        return {"label": int(self.example(index)["y"][0])} if self.by_label and "y" in self.examples else {}
