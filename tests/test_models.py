"""Every registered model honours the contract; weights round-trip through safetensors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vaekit import registry
from vaekit.config import load_config
from vaekit.io import load, save_weights, write_config
from vaekit.models.base import LossOutput
from vaekit.nets import count_parameters

SHAPES = {"vae": (1, 28, 28), "conv_vae": (1, 28, 28)}


UNCONDITIONAL = [n for n in registry.names() if not getattr(registry.get(n).model, "conditional", False)]


@pytest.mark.parametrize("name", UNCONDITIONAL)
def test_contract(name: str) -> None:
    torch.manual_seed(0)
    entry = registry.get(name)
    cfg = entry.config(input_shape=SHAPES.get(name, (1, 28, 28)))
    model = entry.model(cfg)
    x = torch.bernoulli(torch.full((5, *cfg.input_shape), 0.3))
    out = model.loss({"x": x})
    assert isinstance(out, LossOutput) and out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert "elbo" in out.terms
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.log_importance_weights(x, 7).shape == (7, 5)
    assert model.sample(3).shape == (3, *cfg.input_shape)
    assert model.reconstruct(x).shape == x.shape
    assert model.encode(x).sample().shape[0] == 5 and model.prior().sample().shape == (model.latent_dim,)


def test_conv_vae_at_64x64_is_far_smaller_than_dense() -> None:
    conv = registry.build("conv_vae", registry.get("conv_vae").config(input_shape=(1, 64, 64)))
    dense = registry.build("vae", registry.get("vae").config(input_shape=(1, 64, 64), hidden=(1200, 1200),
                                                             latent_dim=10))
    x = torch.rand(2, 1, 64, 64).round()
    assert conv.loss({"x": x}).loss.isfinite()
    assert count_parameters(conv) * 5 < count_parameters(dense)


def test_gaussian_likelihood_shapes() -> None:
    cfg = registry.get("conv_vae").config(input_shape=(3, 32, 32), channels=(16, 32), likelihood="gaussian")
    model = registry.build("conv_vae", cfg)
    x = torch.rand(4, 3, 32, 32)
    assert model.decode(model.encode(x).mean).event_shape == (3, 32, 32)
    assert model.log_importance_weights(x, 2).shape == (2, 4)


def test_safetensors_round_trip(tmp_path: Path) -> None:
    cfg = load_config({"model": {"name": "conv_vae", "input_shape": [1, 28, 28], "channels": [8, 16],
                                 "fc": 32, "latent_dim": 4}, "name": "t"})
    torch.manual_seed(0)
    from vaekit.io import build_model

    model = build_model(cfg)
    write_config(cfg, tmp_path)
    save_weights(model, tmp_path / "model.safetensors")
    again = load(tmp_path)
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(again.encode(x).mean, model.encode(x).mean)
    assert not (tmp_path / "model.safetensors").read_bytes().startswith(b"\x80")  # not a pickle
