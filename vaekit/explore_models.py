"""What ``vaekit explore`` moves for each kind of model: an *explorer* wraps a loaded model and a few of its test
examples and turns slider values (and controls: a label, a context, a text) into one picture, and an example or an
uploaded file into slider values (its posterior mean).

Slider values are standardised where the prior allows it: z = mu_p + sigma_p * u, so u = 0 is the prior's mean
and u in [-3, 3] covers it, whether p(z) is N(0, I) (a VAE), p(z_i | z_{i+1}) (a level of a hierarchy) or
p(z | label) (a CVAE). Each slider carries the spread of the test examples' posterior means along it (Burda et
al.'s activity: above 0.01 the latent is in use), and a model with more latents than the page shows gets the most
active ones.

Which explorer a model gets is decided by the first predicate in ``EXPLORERS`` that matches; a new kind of model
adds its own with ``@register_explorer(predicate)``.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
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


EXPLORERS: list[tuple[Callable[[nn.Module], bool], type[Explorer]]] = []


def register_explorer(predicate: Callable[[nn.Module], bool]) -> Callable[[type[Explorer]], type[Explorer]]:
    """Add an explorer for the models ``predicate`` accepts (checked in registration order, first match wins)."""

    def add(cls: type[Explorer]) -> type[Explorer]:
        EXPLORERS.append((predicate, cls))
        return cls

    return add


def explorer_for(model: nn.Module, examples: dict[str, Tensor]) -> Explorer:
    for predicate, cls in EXPLORERS:
        if predicate(model):
            return cls(model, examples)
    return NoLatent(model, examples)


# -- speech: a reference picker and audio ----------------------------------------------------------------------------
def _is_speech(model: nn.Module) -> bool:
    return all(callable(getattr(model, m, None)) for m in ("synthesize", "encode_style", "mel_images"))


@register_explorer(_is_speech)
class SpeechExplorer(Explorer):
    """A style VAE for speech: sliders over the style z (prior N(0, I)), a text to say and a reference utterance
    (a test example, or an uploaded WAV) whose posterior mean sets z; the picture is the mel spectrogram and the
    sound is its Griffin-Lim inversion."""

    kind = "speech"
    upload = "audio"

    def sliders(self) -> list[Slider]:
        return [Slider(f"z{j}", "style z") for j in range(self.model.latent_dim)]

    def texts(self) -> list[str]:
        from vaekit.data.speech import ids_to_text

        return [ids_to_text(t.tolist()) for t in self.examples["text"]]

    def controls(self) -> list[dict[str, Any]]:
        texts = self.texts()
        options = [{"value": i, "label": f"#{i}: {t}"} for i, t in enumerate(texts)]
        return [{"name": "text", "type": "text", "label": "text to say", "value": texts[0] if texts else "hello"},
                {"name": "example", "type": "select", "label": "reference utterance", "options": options,
                 "value": 0, "encodes": True}]

    def posterior(self, index: int, controls: dict[str, Any]) -> list[float]:
        ex = self.example(index)
        return self.model.encode_style(ex["x"], ex["lengths"]).mean[0].tolist()

    def example_image(self, index: int) -> Tensor:
        ex = self.example(index)
        return self.model.mel_images(ex["x"], ex["lengths"])[0]

    def mel(self, values: list[float], controls: dict[str, Any]) -> tuple[Tensor, Tensor]:
        from vaekit.data.speech import text_to_ids

        try:
            ids = torch.tensor([text_to_ids(str(controls.get("text", "")))])
        except ValueError as e:
            raise ExploreError(str(e)) from None
        z = self.check(values)[None]
        return self.model.synthesize(ids, z=z)

    def decode(self, values: list[float], controls: dict[str, Any]) -> Tensor:
        mel, lengths = self.mel(values, controls)
        return self.model.mel_images(mel, lengths)[0]

    def audio(self, values: list[float], controls: dict[str, Any]) -> tuple[Tensor, int]:
        from vaekit.audio import mel_to_audio

        mel, lengths = self.mel(values, controls)
        settings = self.model.config.mel
        return mel_to_audio(mel[0, : int(lengths[0])], settings, n_iter=32), settings.sample_rate

    def encode_upload(self, data: bytes, controls: dict[str, Any]) -> tuple[list[float], dict[str, Any], str]:
        from vaekit.audio import load_wav, log_mel

        settings = self.model.config.mel
        with tempfile.TemporaryDirectory() as tmp:  # the WAV reader takes a path
            path = Path(tmp) / "upload.wav"
            path.write_bytes(data)
            try:
                wave_ = load_wav(path, settings.sample_rate)
            except Exception as e:
                raise ExploreError(str(e).replace(str(path), "the upload")) from None
        if len(wave_) < settings.hop_length * 4:
            raise ExploreError("the recording is too short to encode")
        mel = log_mel(wave_, settings)[None]
        z = self.model.encode_style(mel, torch.tensor([mel.shape[1]])).mean[0]
        return self.clip(z.tolist()), {}, f"encoded a {len(wave_) / settings.sample_rate:.2f} s recording"


# -- sequences: TD-VAE's state, a context and a horizon -------------------------------------------------------------
@register_explorer(lambda m: callable(getattr(m, "rollout", None)))
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
        from vaekit.rollout import _tint

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


# -- conditional VAEs: a label picker, or the given quadrants of an image --------------------------------------------
def _is_conditional(model: nn.Module) -> bool:
    return callable(getattr(model, "condition", None)) and callable(getattr(model, "prior_net", None))


@register_explorer(_is_conditional)
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


# -- hierarchies: one group of sliders per level ------------------------------------------------------------------
def _levels(model: nn.Module) -> tuple[nn.ModuleList, Callable[[Tensor], Any]] | None:
    """(the top-down conditionals p(z_i | z_{i+1}) indexed i = 0 .. L-2, the decoder of z_1) of a hierarchy."""
    if isinstance(getattr(model, "top_down", None), nn.ModuleList) and len(model.top_down):
        return model.top_down, model.decode_x  # Ladder VAE, hierarchical VAE
    if isinstance(getattr(model, "p_layers", None), nn.ModuleList) and len(model.p_layers):
        return model.p_layers, model.decode  # IWAE with several stochastic layers
    return None


@register_explorer(lambda m: _levels(m) is not None and has(m, Ability.LATENT_MEANS))
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


# -- one latent with a N(0, I) prior ------------------------------------------------------------------------------
@register_explorer(lambda m: has(m, Ability.TRAVERSAL))
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


