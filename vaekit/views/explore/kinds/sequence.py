"""Sequence models (TD-VAE, the LSTM predictor): the belief state's sliders, a context and a horizon."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vaekit.views.explore.base import (
    ExploreError,
    Explorer,
    Slider,
    register_explorer,
    stack_rows,
    strip,
)


@register_explorer(lambda m: callable(getattr(m, "rollout", None)), order=10)
class SequenceExplorer(Explorer):
    """A sequence model: a test sequence, a context (frames seen) and a horizon (frames predicted). TD-VAE's
    state z at the last context frame has sliders (starting at the mean of p_B(z | b_t)); its picture is the
    true frames above the frame decoded from z and the mean rollout from it (tinted). The LSTM predictor has no
    latent: only the controls move it."""

    kind = "sequence"
    upload = ""

    def __init__(self, model: nn.Module, examples: dict[str, Tensor]) -> None:
        super().__init__(model, examples)
        self.frames = examples["x"].shape[1]
        self.latent = hasattr(model, "p_B")
        self._spread: tuple[Tensor, Tensor] | None = None

    def spread(self) -> tuple[Tensor, Tensor]:
        """Centre and scale of the state's means over the examples' frames: TD-VAE's z has no fixed prior."""
        if self._spread is None:
            with torch.no_grad():
                means = self.model.p_B(self.model.belief(self.examples["x"])).mean.flatten(0, -2)
            self._spread = means.mean(0), means.std(0).clamp(min=0.05)
        return self._spread

    def sliders(self) -> list[Slider]:
        if not self.latent:
            return []
        size, layers = self.model.config.latent_size, self.model.config.layers
        return [Slider(f"z{layer + 1}.{j}", f"state layer {layer + 1}" + (" (top)" if layer == layers - 1 else ""))
                for layer in reversed(range(layers)) for j in range(size)]

    def order(self) -> list[int]:
        """Slider i -> index into z (the top layer first on the page)."""
        size, layers = self.model.config.latent_size, self.model.config.layers
        return [layer * size + j for layer in reversed(range(layers)) for j in range(size)]

    def controls(self) -> list[dict[str, Any]]:
        context = max(1, self.frames // 2)
        out = [{"name": "example", "type": "number", "label": "test sequence", "min": 0,
                "max": self.n_examples - 1, "value": 0, "encodes": True},
               {"name": "context", "type": "number", "label": "context (frames seen)", "min": 1,
                "max": self.frames - 1, "value": context, "encodes": True},
               {"name": "horizon", "type": "number", "label": "horizon (frames predicted)", "min": 0,
                "max": self.frames - 1, "value": self.frames - context}]
        if getattr(self.model.config, "jump_input", False):
            out.append({"name": "jump", "type": "number", "label": "jump (frames per step)", "min": 1,
                        "max": self.model.config.max_jump, "value": 1})
        return out

    def settings(self, controls: dict[str, Any]) -> tuple[int, int, int, int]:
        """(example, context, horizon, jump), checked; the horizon cut to what the sequence holds."""
        try:
            index, context = int(controls.get("example", 0)), int(controls.get("context", self.frames // 2))
            horizon, jump = int(controls.get("horizon", 0)), int(controls.get("jump", 1))
        except (TypeError, ValueError):
            raise ExploreError("example, context, horizon and jump must be whole numbers") from None
        if not 1 <= context < self.frames:
            raise ExploreError(f"context must be 1..{self.frames - 1}")
        max_jump = getattr(self.model.config, "max_jump", 1)
        if not 1 <= jump <= max_jump:
            raise ExploreError(f"jump must be 1..{max_jump}")
        horizon = max(0, min(horizon, self.frames - context))
        self.example(index)
        return index, context, horizon, jump

    def state(self, values: list[float]) -> Tensor:
        centre, scale = self.spread()
        u = self.check(values)
        z = torch.empty_like(u)
        z[self.order()] = u
        return (centre + scale * z)[None]

    def posterior(self, index: int, controls: dict[str, Any]) -> list[float]:
        if not self.latent:
            return []
        index, context, _, _ = self.settings({**controls, "example": index})
        x = self.examples["x"][index : index + 1, :context]
        z = self.model.p_B(self.model.belief(x)[:, -1]).mean[0]
        centre, scale = self.spread()
        return ((z - centre) / scale)[self.order()].tolist()

    def predict(self, values: list[float], controls: dict[str, Any]) -> tuple[Tensor, Tensor, list[int], int]:
        """(true sequence [T, *frame], predicted frames [K, *frame], the frames they land on, context)."""
        index, context, horizon, jump = self.settings(controls)
        x = self.examples["x"][index]
        if not self.latent:
            if horizon == 0:
                return x, x[context - 1 : context], [context - 1], context
            pred = self.model.rollout(x[None, :context], horizon, 1, 1)[0, 0]
            return x, pred, list(range(context, context + horizon)), context
        z = self.state(values)
        frames, landing = [self.model.p_D(z).mean[0]], [context - 1]
        for k in range(horizon // jump):
            z = self.model.p_T(torch.cat([z, *self.model._jump(jump, z)], -1)).mean
            frames.append(self.model.p_D(z).mean[0])
            landing.append(context - 1 + (k + 1) * jump)
        return x, torch.stack(frames), landing, context

    def decode(self, values: list[float], controls: dict[str, Any]) -> Tensor:
        from vaekit.views.rollout import _tint

        x, pred, landing, context = self.predict(values, controls)
        if x.dim() == 2:  # vector frames (the oscillator): a chart
            return self.chart(x, pred, landing, context)
        t_end = max(landing[-1] + 1, context)
        truth = strip(torch.cat([x[:t_end].expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:t_end]]))
        row = torch.ones(t_end, 3, *x.shape[-2:])
        row[landing] = _tint(pred.float()) if pred.shape[1] == 1 else pred.float()
        return stack_rows([truth, strip(row)], pad=3)

    def chart(self, x: Tensor, pred: Tensor, landing: list[int], context: int) -> Tensor:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 2.4), dpi=80)
        ax.plot(range(len(x)), x[:, 0].numpy(), "o", color="0.6", markersize=3, label="observed")
        ax.plot(landing, pred[:, 0].numpy(), "-s", color="C1", markersize=3, label="from z" if self.latent else
                "predicted")
        ax.axvline(context - 0.5, color="0.7", linestyle=":")
        ax.legend(fontsize=7, loc="upper right")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.canvas.draw()
        rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
        plt.close(fig)
        return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255

    def example_image(self, index: int) -> Tensor:
        x = self.example(index)["x"][0]
        return strip(x) if x.dim() == 4 else self.chart(x, x[:1], [0], 1)
