"""Saving and loading models safely: weights as safetensors, config as YAML. Nothing is unpickled.

A run directory holds ``config.yaml`` (the whole recipe, model section resolved), ``model.safetensors``
(the last epoch) and ``best.safetensors`` (the best validation value of the model's monitored term, e.g. the
highest ELBO). Lightning's ``.ckpt`` files (for resuming) hold only tensors and plain Python values and are
read with ``torch.load(weights_only=True)``. ``SHA256SUMS`` records each weights and checkpoint file's digest.

Loading a run directory reads ``best.safetensors`` when there is one, else ``model.safetensors``, else
``checkpoints/last.ckpt``; the file read is checked against its recorded digest (a mismatch is an error naming
it) and a damaged sibling is named in a warning.
"""

from __future__ import annotations

import os
import pickle
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from vaekit.core.errors import brief
from vaekit.models import registry
from vaekit.run.config import ConfigError, RunConfig, load_config, migrate, model_config, plain, read_yaml
from vaekit.run.folder import RunFolderError, replace_recorded, verify


def _replace_atomically(path: Path, write: Any, run_dir: Path | None = None) -> None:
    """``write(tmp)`` then rename over ``path``: a crash mid-write leaves the old file whole. With ``run_dir``, the
    file's checksum goes into its SHA256SUMS."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        if run_dir is None:
            os.replace(tmp, path)
        else:
            replace_recorded(tmp, path, run_dir)
    finally:
        tmp.unlink(missing_ok=True)


def check_writable(run_dir: Path, need_bytes: int = 0) -> None:
    """Fail before training rather than an hour into it: ``run_dir`` must take files and have ``need_bytes`` free."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"{run_dir}: exists and is not a directory")
    probe = run_dir / f".vaekit-write-test.{os.getpid()}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise OSError(f"{run_dir}: cannot write there ({e.strerror or e})") from None
    free = shutil.disk_usage(run_dir).free
    if free < need_bytes:
        raise OSError(f"{run_dir}: only {free / 2**20:.0f} MiB free on its disk; this run's checkpoints and weights "
                      f"need about {need_bytes / 2**20:.0f} MiB")


def run_footprint(model: nn.Module) -> int:
    """Bytes a run writes at most: last.ckpt twice while it is replaced and best.ckpt (weights and Adam's two
    moments each), two safetensors files, and 64 MiB for logs and figures."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return 3 * 3 * weights + 2 * weights + 64 * 2**20


def write_config(cfg: RunConfig, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(plain(cfg.to_dict()), sort_keys=False)
    _replace_atomically(run_dir / "config.yaml", lambda p: p.write_text(text))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_weights(model: nn.Module, path: Path, run_dir: Path | None = None) -> None:
    """Write-then-rename; the checksum goes into ``run_dir``'s SHA256SUMS when given."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}

    def write(tmp: Path) -> None:
        save_file(state, str(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # safetensors creates 0600; the rest of a run follows the umask

    _replace_atomically(Path(path), write, run_dir)


def build_model(cfg: RunConfig) -> nn.Module:
    return registry.build(cfg.model_name, model_config(cfg.model))


def _find(path: Path) -> tuple[Path, Path | None]:
    """(weights file, config.yaml or None) for a run directory, a .safetensors file or a .ckpt file."""
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
    return path, None


def load_run(path: str | Path) -> tuple[nn.Module, RunConfig, Path]:
    """The model (eval mode, on CPU), its run config and the run directory."""
    path = Path(path)
    weights, cfg_path = _find(path)
    run_dir = cfg_path.parent if cfg_path is not None else weights.parent
    verify(weights, run_dir)
    for other in ("best.safetensors", "model.safetensors"):  # named, though this verb reads another file
        if (run_dir / other).exists() and (run_dir / other).resolve() != weights.resolve():
            try:
                verify(run_dir / other, run_dir)
            except RunFolderError as e:
                print(f"vaekit: warning: {e}", file=sys.stderr)
    if weights.suffix == ".ckpt":
        try:  # weights_only: tensors and plain values; a pickled class or code is refused, never run
            ckpt = torch.load(weights, map_location="cpu", weights_only=True)
            raw = ckpt["hyper_parameters"]["config"]
            state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
        except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, TypeError, OSError) as e:
            raise ValueError(f"{weights}: not a vaekit checkpoint, truncated, or unsafe to load "
                             f"({brief(e)})") from None
        cfg = load_config(migrate(raw))
    else:
        if cfg_path is None or not cfg_path.exists():
            raise FileNotFoundError(f"{weights}: no config.yaml beside it")
        raw = read_yaml(cfg_path)
        if not isinstance(raw, dict):
            raise ConfigError(f"{cfg_path}: not a run configuration")
        cfg = load_config(migrate(raw))
        try:
            state = load_file(str(weights))
        except Exception as e:  # safetensors raises its own error types for a truncated or foreign file
            raise ValueError(f"{weights}: not a readable safetensors file "
                             f"({brief(e)})") from None
    model = build_model(cfg)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{weights}: weights do not fit the model in its config "
                         f"({str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else e})") from None
    model.eval()
    return model, cfg, (cfg_path.parent if cfg_path is not None else weights.parent)


def held_out_batch(cfg: RunConfig, n: int, seed: int = 0,
                   data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The first ``n`` test examples of a run's data set as one batch (drawn with ``seed``); ``data_dir``, when
    given, replaces the data folder the run was trained from."""
    from vaekit.data import build_data

    if data_dir:
        cfg.data.dir = str(data_dir)
    return build_data(cfg.data).test.head(n, seed=seed)


def load(path: str | Path) -> nn.Module:
    """A ready model from a run directory, ``.safetensors`` or ``.ckpt`` file."""
    return load_run(path)[0]
