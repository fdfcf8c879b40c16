"""What ``vaekit explore`` moves for each kind of model: an *explorer* wraps a loaded model and a few of its test
examples and turns slider values (and controls: a label, a context, a text) into one picture, and an example or an
uploaded file into slider values (its posterior mean).

Slider values are standardised where the prior allows it: z = mu_p + sigma_p * u, so u = 0 is the prior's mean
and u in [-3, 3] covers it, whether p(z) is N(0, I) (a VAE), p(z_i | z_{i+1}) (a level of a hierarchy) or
p(z | label) (a CVAE). Each slider carries the spread of the test examples' posterior means along it (Burda et
al.'s activity: above 0.01 the latent is in use), and a model with more latents than the page shows gets the most
active ones.

Which explorer a model gets is decided by the first predicate in ``EXPLORERS`` that matches (one module a kind in
``vaekit.views.explore.kinds``); a new kind of model adds its own with ``@register_explorer(predicate, order)``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor, nn

from vaekit.models.base import Ability, has

MAX_PIXELS = 40_000_000  # an upload with more pixels is refused before it is decoded (a decompression bomb)
RANGE = 4.0  # standardised sliders span [-RANGE, RANGE]


class ExploreError(ValueError):
    """A request the explorer cannot serve (bad upload, bad value): its message is shown on the page."""


@dataclass
class Slider:
    name: str  # "z3", "z2.1" (level 2, latent 1)
    group: str  # the level or layer it belongs to
    lo: float = -RANGE
    hi: float = RANGE
    activity: float | None = None  # variance of the test examples' posterior means along it
    shown: bool = True


def image_png(image: Tensor) -> bytes:
    """A [C, H, W] image in [0, 1] as PNG bytes (fast zlib level: these go straight to a browser)."""
    arr = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    arr = arr[0].numpy() if arr.shape[0] == 1 else arr.permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def strip(images: Tensor, pad: int = 1) -> Tensor:
    """Images [N, C, H, W] side by side on a white background, [C, H, N (W + pad) - pad]."""
    n, c, h, w = images.shape
    out = torch.ones(c, h, n * (w + pad) - pad)
    for i in range(n):
        out[:, :, i * (w + pad) : i * (w + pad) + w] = images[i]
    return out


def stack_rows(rows: list[Tensor], pad: int = 1) -> Tensor:
    """[C, H_i, W_i] images one above the other (left-aligned, white between)."""
    c = max(r.shape[0] for r in rows)
    rows = [r.expand(c, -1, -1) for r in rows]
    out = torch.ones(c, sum(r.shape[1] for r in rows) + pad * (len(rows) - 1), max(r.shape[2] for r in rows))
    top = 0
    for r in rows:
        out[:, top : top + r.shape[1], : r.shape[2]] = r
        top += r.shape[1] + pad
    return out


def read_upload_image(data: bytes, shape: tuple[int, ...], dark_background: bool) -> tuple[Tensor, list[str]]:
    """An uploaded image as the model sees one, [C, H, W] in [0, 1]: centre-cropped to the model's aspect and
    resized (as vaekit's image folders are read), grey or RGB as the model's channels; inverted when the data are
    light strokes on black (MNIST) and the upload is dark on light. Returns it and what was done to it."""
    c, h, w = shape
    try:
        img = Image.open(io.BytesIO(data))
    except Exception as e:  # Pillow raises several kinds for a file it cannot identify
        raise ExploreError(f"not an image Pillow can read ({type(e).__name__}); upload a PNG or JPEG") from None
    if img.width * img.height > MAX_PIXELS:
        raise ExploreError(f"the image has {img.width}x{img.height} pixels, more than {MAX_PIXELS:,}; upload a "
                           "smaller one")
    try:
        img = ImageOps.exif_transpose(img)
        if img.mode.startswith("I"):  # 16-bit grey: scale to 8 bits (convert("L") would clip)
            img = Image.fromarray(np.clip(np.asarray(img, dtype=np.float64) / 257.0, 0, 255).astype(np.uint8))
        notes = [] if img.size == (w, h) else [f"cropped and resized from {img.width}x{img.height} to {w}x{h}"]
        img = ImageOps.fit(img.convert("L" if c == 1 else "RGB"), (w, h), method=Image.Resampling.LANCZOS)
    except Exception as e:  # a truncated or corrupt file fails only when its pixels are read
        raise ExploreError(f"the image could not be decoded ({type(e).__name__}: {e})") from None
    arr = np.asarray(img, dtype=np.float32) / 255.0
    x = torch.from_numpy(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy())
    border = torch.cat([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], dim=-1).mean()
    if dark_background and c == 1 and border > 0.5:
        x = 1 - x
        notes.append("inverted (the model's data are light strokes on black)")
    return x, notes


# -- the interface ------------------------------------------------------------------------------------------------
class Explorer:
    """A model with test examples, seen through sliders and controls. Subclasses set ``kind`` and implement
    ``decode``; those with latents also ``sliders`` and ``posterior``."""

    kind: ClassVar[str] = "none"
    upload: ClassVar[str] = "image"  # what an upload is: "image", "audio", or "" (none)
    max_sliders: int = 64

    def __init__(self, model: nn.Module, examples: dict[str, Tensor]) -> None:
        self.model, self.examples = model, examples
        self.n_examples = len(examples["x"])
        x = examples["x"]
        self.dark_background = bool(x.dim() == 4 and x.shape[1] == 1 and float(x.mean()) < 0.5)
        self.uploads: dict[str, Tensor] = {}  # token -> an uploaded image, for models whose output depends on it
        self._uploaded = 0
        self._sliders: list[Slider] | None = None

    # what the page shows ----------------------------------------------------------------------------------------
    def sliders(self) -> list[Slider]:
        return []

    def controls(self) -> list[dict[str, Any]]:
        """The page's inputs besides the sliders; "encodes": changing it starts from that example's posterior."""
        return [{"name": "example", "type": "number", "label": "test example", "min": 0,
                 "max": self.n_examples - 1, "value": 0, "encodes": bool(self.sliders())}]

    def example_controls(self, index: int) -> dict[str, Any]:
        """Controls that picking test example ``index`` sets besides the sliders (a CVAE: its label)."""
        return {}

    def message(self) -> str:
        return ""

    def spec(self) -> dict[str, Any]:
        sliders = self.all_sliders()
        return {"kind": self.kind, "model": type(self.model).__name__, "sliders": [asdict(s) for s in sliders],
                "controls": self.controls(), "examples": self.n_examples, "upload": self.upload,
                "message": self.message(), "audio": callable(getattr(self, "audio", None)),
                "start": self.posterior_or_zero(0, self.default_controls())}

    def default_controls(self) -> dict[str, Any]:
        return {c["name"]: c["value"] for c in self.controls()}

    def all_sliders(self) -> list[Slider]:
        """The sliders with each one's activity over the examples; beyond ``max_sliders`` the least active are
        hidden (they keep their values)."""
        if self._sliders is None:
            sliders = self.sliders()
            if sliders:
                with torch.no_grad():
                    means = torch.stack([torch.as_tensor(self.posterior(i, self.default_controls()))
                                         for i in range(min(self.n_examples, 64))])
                for s, v in zip(sliders, means.var(0).tolist(), strict=True):
                    s.activity = round(v, 4)
                if len(sliders) > self.max_sliders:
                    keep = set(torch.argsort(means.var(0), descending=True)[: self.max_sliders].tolist())
                    for i, s in enumerate(sliders):
                        s.shown = i in keep
            self._sliders = sliders
        return self._sliders

    def posterior_or_zero(self, index: int, controls: dict[str, Any]) -> list[float]:
        return self.clip(self.posterior(index, controls)) if self.sliders() else []

    def clip(self, values: list[float]) -> list[float]:
        sliders = self.all_sliders()
        return [min(max(v, s.lo), s.hi) for v, s in zip(values, sliders, strict=True)]

    # requests --------------------------------------------------------------------------------------------------
    def check(self, values: list[float]) -> Tensor:
        n = len(self.all_sliders())
        if len(values) != n:
            raise ExploreError(f"expected {n} slider values, got {len(values)}")
        z = torch.tensor(values, dtype=torch.float32)
        if not torch.isfinite(z).all():
            raise ExploreError("slider values must be finite numbers")
        return z

    def decode(self, values: list[float], controls: dict[str, Any]) -> Tensor:
        """The picture [C, H, W] in [0, 1] for these slider values and controls."""
        raise NotImplementedError

    def posterior(self, index: int, controls: dict[str, Any]) -> list[float]:
        """Slider values at the posterior mean of test example ``index``."""
        raise ExploreError(f"{type(self.model).__name__} has no latent to encode into")

    def example(self, index: int) -> dict[str, Tensor]:
        if not 0 <= index < self.n_examples:
            raise ExploreError(f"test example {index} is out of range 0..{self.n_examples - 1}")
        return {k: v[index : index + 1] for k, v in self.examples.items()}

    def example_image(self, index: int) -> Tensor:
        return self.example(index)["x"][0]

    def source_image(self, controls: dict[str, Any]) -> Tensor:
        """The image a conditional model completes: a test example's (``example``) or an upload's (``upload``)."""
        token = str(controls.get("upload") or "")
        if token:
            if token not in self.uploads:
                raise ExploreError("that upload is no longer held by the server; upload it again")
            return self.uploads[token]
        return self.example_image(int(controls.get("example", 0)))

    def encode_upload(self, data: bytes, controls: dict[str, Any]) -> tuple[list[float], dict[str, Any], str]:
        """(slider values, controls to set, what was done) for an uploaded file."""
        if not self.upload:
            raise ExploreError(f"{type(self.model).__name__} takes no uploads here; pick a test example")
        shape = tuple(self.examples["x"].shape[1:])
        x, notes = read_upload_image(data, shape, self.dark_background)
        self._uploaded += 1
        token = f"u{self._uploaded}"
        self.uploads = dict(list(self.uploads.items())[-7:])  # hold the last few only
        self.uploads[token] = x
        values = self.clip(self.posterior_of(x, controls)) if self.sliders() else []
        return values, {"upload": token}, "; ".join(["encoded to its posterior mean" if values else "loaded",
                                                     *notes])

    def posterior_of(self, x: Tensor, controls: dict[str, Any]) -> list[float]:
        raise ExploreError(f"{type(self.model).__name__} has no latent to encode into")


EXPLORERS: list[tuple[int, Callable[[nn.Module], bool], type[Explorer]]] = []


def register_explorer(predicate: Callable[[nn.Module], bool],
                      order: int) -> Callable[[type[Explorer]], type[Explorer]]:
    """Add an explorer for the models ``predicate`` accepts. Predicates are tried by ``order``, lowest first, and
    the first match wins, so a specific kind (speech, sequence) goes before a general one (a single latent)."""

    def add(cls: type[Explorer]) -> type[Explorer]:
        EXPLORERS.append((order, predicate, cls))
        EXPLORERS.sort(key=lambda entry: entry[0])
        return cls

    return add


def explorer_for(model: nn.Module, examples: dict[str, Tensor]) -> Explorer:
    for _, predicate, cls in EXPLORERS:
        if predicate(model):
            return cls(model, examples)
    return NoLatent(model, examples)


# -- no latent (the quadrant regressor): the example and the model's output -----------------------------------------
class NoLatent(Explorer):
    """A model without a latent to move: the chosen test example (or upload) and what the model makes of it."""

    kind = "none"

    def message(self) -> str:
        return (f"{type(self.model).__name__} has no latent variables, so there is nothing to slide; pick a test "
                "example or upload an image to see what it predicts.")

    def decode(self, values: list[float], controls: dict[str, Any]) -> Tensor:
        self.check(values)
        x = self.source_image(controls)
        if not has(self.model, Ability.RECONSTRUCT):
            return x
        shown = x
        if hasattr(self.model, "given"):
            from vaekit.models.regressor import show_input

            shown = show_input(x, self.model.given)
        return strip(torch.stack([shown, self.model.reconstruct({"x": x[None]})[0].clamp(0, 1)]), pad=2)


def describe(explorer: Explorer) -> str:
    """One line for the terminal: which explorer, how many sliders."""
    sliders = explorer.all_sliders()
    shown = sum(s.shown for s in sliders)
    extra = f" ({shown} shown, the most active)" if shown < len(sliders) else ""
    return f"{explorer.kind} explorer, {len(sliders)} sliders{extra}" if sliders else f"{explorer.kind} explorer"
