"""A style VAE for speech: sliders over the style z, a text, a reference utterance; a mel picture and its sound."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vaekit.views.explore.base import (
    ExploreError,
    Explorer,
    Slider,
    register_explorer,
)


def _is_speech(model: nn.Module) -> bool:
    return all(callable(getattr(model, m, None)) for m in ("synthesize", "encode_style", "mel_images"))


@register_explorer(_is_speech, order=0)
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
        from vaekit.core.audio import mel_to_audio

        mel, lengths = self.mel(values, controls)
        settings = self.model.config.mel
        return mel_to_audio(mel[0, : int(lengths[0])], settings, n_iter=32), settings.sample_rate

    def encode_upload(self, data: bytes, controls: dict[str, Any]) -> tuple[list[float], dict[str, Any], str]:
        from vaekit.core.audio import load_wav, log_mel

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
