"""Every registered model honours the contract it declares; weights round-trip through safetensors."""

from __future__ import annotations

import ast
import json
import struct
from pathlib import Path

import pytest
import torch

from vaekit.core.figures import AudioClip, ImageGrid
from vaekit.core.nets import count_parameters, fold
from vaekit.core.schedules import Ramp
from vaekit.models import registry
from vaekit.models.base import ABILITY_METHODS, Ability, LossOutput, Model
from vaekit.run.config import load_config, resolved_model
from vaekit.run.io import build_model, load, save_weights, write_config

SHAPES = {"vae": (1, 28, 28), "conv_vae": (1, 28, 28)}
SEQUENCES = {"tdvae", "lstm_predictor"}  # models of frame sequences: their batches are [B, T, *frame]
SPEECH = {"speech_vae"}  # variable-length log-mels [B, T, n_mels] with lengths and the text's characters


def _batch(shape: tuple[int, ...], b: int = 5, frames: int | None = None) -> dict[str, torch.Tensor]:
    x_shape = (b, *shape) if frames is None else (b, frames, *shape)
    return {"x": torch.bernoulli(torch.full(x_shape, 0.3)), "y": torch.arange(b) % 10}


def _speech_batch(b: int = 5, n_mels: int = 80) -> dict[str, torch.Tensor]:
    lengths, text_lengths = torch.tensor([9, 17, 12, 4, 17])[:b], torch.tensor([3, 5, 4, 2, 1])[:b]
    x = (-6 + 2 * torch.randn(b, int(lengths.max()), n_mels)) * (torch.arange(int(lengths.max()))[None, :, None]
                                                                  < lengths[:, None, None])
    n = int(text_lengths.max())
    text = torch.randint(1, 27, (b, n)) * (torch.arange(n)[None] < text_lengths[:, None])
    return {"x": x, "lengths": lengths, "text": text, "text_lengths": text_lengths, "y": torch.arange(b) % 10}


def _config(name: str) -> object:
    entry = registry.get(name)
    return entry.config() if name in SPEECH else entry.config(input_shape=SHAPES.get(name, (1, 28, 28)))


@pytest.mark.parametrize("name", registry.names())
def test_contract(name: str) -> None:
    """loss(batch) and each declared ability, called with the batch mapping, give what the contract says."""
    torch.manual_seed(0)
    entry = registry.get(name)
    model = entry.model(_config(name))
    assert isinstance(model, Model)
    shape = tuple(model.config.input_shape)
    batch = _speech_batch() if name in SPEECH else _batch(shape, frames=8 if name in SEQUENCES else None)
    out = model.loss(batch)
    assert isinstance(out, LossOutput) and out.loss.dim() == 0 and torch.isfinite(out.loss)
    term, mode = model.monitor
    assert term in out.terms and mode in ("max", "min")
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    abilities = model.abilities
    if Ability.IMPORTANCE_WEIGHTS in abilities:
        assert model.log_importance_weights(batch, 7).shape == (7, 5)
    if Ability.EXACT_LIKELIHOOD in abilities:
        assert model.log_likelihood(batch).shape == (5,)
    if Ability.SAMPLE in abilities:
        assert model.sample(3).shape[-3:] == shape
    if Ability.RECONSTRUCT in abilities:
        assert model.reconstruct(batch).shape == batch["x"].shape
    if Ability.LATENT_MEANS in abilities:
        assert all(m.shape[0] == 5 for m in model.latent_means(batch).values())
    if Ability.REPRESENTATION in abilities:
        assert model.represent(batch["x"]).shape[0] == 5
    if Ability.FIGURES in abilities:
        figures = model.figures(batch)
        assert figures and all(isinstance(f, (ImageGrid, AudioClip)) for f in figures.values())


def test_declared_abilities_are_checked_at_registration() -> None:
    class Liar(Model):
        abilities = frozenset({Ability.EXACT_LIKELIHOOD})

    with pytest.raises(TypeError, match="declares exact_likelihood but has no log_likelihood"):
        registry.register("liar", object)(Liar)
    assert set(ABILITY_METHODS) == set(Ability)


def test_model_code_imports_no_trainer_data_or_files() -> None:
    """Models, data and config do not know each other: a model file imports no Lightning, CLI, data set, I/O or
    figure writer, and a data module imports no model, config or trainer."""
    root = Path(__file__).resolve().parents[1] / "vaekit"
    rules = {"models": ("lightning", "vaekit.run", "vaekit.cli", "vaekit.data", "vaekit.core.drawing"),
             "data": ("lightning", "vaekit.models", "vaekit.run")}
    for folder, banned in rules.items():
        for path in (root / folder).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                for n in names:
                    assert not n.startswith(banned), f"{path.name} imports {n}"


def test_importing_data_loads_no_model_and_no_trainer() -> None:
    import subprocess
    import sys

    code = ("import sys, vaekit.data; from vaekit.data import data_names; data_names(); "
            "bad = [m for m in sys.modules if m.startswith(('vaekit.models', 'lightning', 'vaekit.run.config'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_conv_vae_at_64x64_is_far_smaller_than_dense() -> None:
    conv = registry.build("conv_vae", registry.get("conv_vae").config(input_shape=(1, 64, 64)))
    dense = registry.build("vae", registry.get("vae").config(input_shape=(1, 64, 64), hidden=(1200, 1200),
                                                             latent_dim=10))
    x = torch.rand(2, 1, 64, 64).round()
    assert conv.loss({"x": x}).loss.isfinite()
    assert count_parameters(conv) * 5 < count_parameters(dense)


def test_fold_carries_sample_dimensions_through_conv_and_batch_norm() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4)).eval()
    x = torch.randn(3, 5, 1, 6, 6)  # [k, B, C, H, W]
    out = fold(conv, x, 3)
    assert out.shape == (3, 5, 4, 6, 6)
    torch.testing.assert_close(out[2, 4], conv(x[2, 4 : 5])[0])
    gru = torch.nn.GRU(2, 3, batch_first=True)
    seq = torch.randn(4, 2, 7, 2)  # [k, B, T, D]
    y = fold(lambda s: gru(s)[0], seq, 2)
    torch.testing.assert_close(y[1, 0], gru(seq[1, :1])[0][0])


def test_gaussian_likelihood_shapes() -> None:
    cfg = registry.get("conv_vae").config(input_shape=(3, 32, 32), channels=(16, 32), likelihood="gaussian")
    model = registry.build("conv_vae", cfg)
    x = torch.rand(4, 3, 32, 32)
    assert model.decode(model.encode(x).mean).event_shape == (3, 32, 32)
    assert model.log_importance_weights({"x": x}, 2).shape == (2, 4)


def test_kl_warm_up_at_zero_gives_the_kl_no_gradient_and_is_carried_by_the_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = registry.get("vae").config(input_shape=(1, 4, 4), hidden=(8,), latent_dim=3,
                                     kl_weight=Ramp(0.0, 1.0, length=10))
    model = registry.build("vae", cfg)
    x = torch.bernoulli(torch.full((6, 1, 4, 4), 0.4))
    model.on_train_step(0, 0)
    assert float(model.kl_weight) == 0.0
    torch.manual_seed(1)
    out = model.loss({"x": x})
    grads = torch.autograd.grad(out.loss, list(model.parameters()), allow_unused=True)
    torch.manual_seed(1)
    q = model.encode(x)
    rec_only = -model.decode(q.rsample()).log_prob(x).mean()  # the same noise, the KL left out
    for g, h in zip(grads, torch.autograd.grad(rec_only, list(model.parameters()), allow_unused=True), strict=True):
        torch.testing.assert_close(g, h)
    assert float(out.terms["kl"].mean()) > 0 and torch.allclose(out.terms["elbo"], out.terms["rec"] - out.terms["kl"])
    model.on_train_step(5, 0)
    assert float(model.kl_weight) == 0.5
    save_weights(model, tmp_path / "w.safetensors")
    from safetensors.torch import load_file

    assert float(load_file(str(tmp_path / "w.safetensors"))["kl_weight"]) == 0.5  # checkpoints carry it


def test_safetensors_round_trip_holds_no_pickle(tmp_path: Path) -> None:
    cfg = load_config({"model": {"name": "conv_vae", "input_shape": [1, 28, 28], "channels": [8, 16],
                                 "fc": 32, "latent_dim": 4}, "name": "t"})
    torch.manual_seed(0)
    model = build_model(cfg)
    cfg.model = resolved_model(cfg.model)
    write_config(cfg, tmp_path)
    save_weights(model, tmp_path / "model.safetensors")
    again = load(tmp_path)
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(again.encode(x).mean, model.encode(x).mean)
    # safetensors: an 8-byte header length, a JSON header naming every tensor, then raw bytes (no pickle, no zip)
    raw = (tmp_path / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert set(header) - {"__metadata__"} == set(model.state_dict())
    assert not raw.startswith((b"PK", b"\x80"))


def test_channels_last_changes_the_layout_not_the_numbers() -> None:
    torch.manual_seed(0)
    model = registry.build("beta_vae", registry.get("beta_vae").config(input_shape=(1, 16, 16), channels=(4, 8),
                                                                       fc=16, latent_dim=3))
    x = torch.bernoulli(torch.full((6, 1, 16, 16), 0.3))
    torch.manual_seed(1)
    plain = model.loss({"x": x}).loss
    fast = model.to(memory_format=torch.channels_last)
    assert fast.encoder.conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.manual_seed(1)
    nhwc = fast.loss({"x": x.contiguous(memory_format=torch.channels_last)}).loss
    torch.testing.assert_close(nhwc, plain, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("name", registry.names())
def test_every_model_names_its_observation_model(name: str) -> None:
    from vaekit.core.likelihoods import LIKELIHOODS

    model = registry.get(name).model(_config(name))
    assert model.observation_model() in LIKELIHOODS
