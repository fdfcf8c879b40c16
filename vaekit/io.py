"""Saving and loading models safely: weights as safetensors, config as YAML. Nothing is unpickled.

A run directory holds ``config.yaml`` (the whole recipe, model section resolved), ``model.safetensors``
(the last epoch) and ``best.safetensors`` (lowest validation loss). Lightning's ``.ckpt`` files (for resuming)
hold only tensors and plain Python values and are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from vaekit import registry
from vaekit.config import RunConfig, load_config, model_config


def _plain(value: Any) -> Any:
    """Tuples -> lists, so YAML stays free of Python-specific tags."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_config(cfg: RunConfig, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(_plain(cfg.to_dict()), sort_keys=False))


def save_weights(model: nn.Module, path: Path) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path))


def build_model(cfg: RunConfig) -> nn.Module:
    return registry.build(cfg.model_name, model_config(cfg.model))


def _find(path: Path) -> tuple[Path, Path]:
    """(weights file, config.yaml) for a run directory, a .safetensors file or a .ckpt file."""
    if path.is_dir():
        for name in ("best.safetensors", "model.safetensors"):
            if (path / name).exists():
                return path / name, path / "config.yaml"
        ckpt = path / "checkpoints" / "last.ckpt"
        if ckpt.exists():
            return ckpt, path / "config.yaml"
        raise FileNotFoundError(f"{path}: no best.safetensors, model.safetensors or checkpoints/last.ckpt")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run directory or checkpoint")
    for folder in (path.parent, path.parent.parent):
        if (folder / "config.yaml").exists():
            return path, folder / "config.yaml"
    return path, Path()


def load_run(path: str | Path) -> tuple[nn.Module, RunConfig, Path]:
    """The model (eval mode, on CPU), its run config and the run directory."""
    path = Path(path)
    weights, cfg_path = _find(path)
    if weights.suffix == ".ckpt":
        ckpt = torch.load(weights, map_location="cpu", weights_only=True)
        cfg = load_config(ckpt["hyper_parameters"]["config"])
        state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    else:
        if not cfg_path.exists():
            raise FileNotFoundError(f"{weights}: no config.yaml beside it")
        cfg = load_config(yaml.safe_load(cfg_path.read_text()))
        state = load_file(str(weights))
    model = build_model(cfg)
    model.load_state_dict(state)
    model.eval()
    return model, cfg, (cfg_path.parent if cfg_path != Path() else weights.parent)


def load(path: str | Path) -> nn.Module:
    """A ready model from a run directory, ``.safetensors`` or ``.ckpt`` file."""
    return load_run(path)[0]
