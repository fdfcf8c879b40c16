"""Run configuration: one dataclass per section, read from a YAML recipe plus ``key=value`` overrides.

Every key and value is checked against the dataclass it lands in, so a typo fails at once with a one-line
message naming the key and what is allowed, instead of deep inside a training run.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A bad key or value in a recipe or on the command line."""


@dataclass
class DataConfig:
    name: str = "mnist"
    dir: str | None = None  # else $VAEKIT_DATA/<name>, else the user cache (downloaded)
    binarize: Literal["dynamic", "none"] = "dynamic"  # dynamic: fresh Bernoulli draw per batch (Burda)
    batch_size: int = 100
    val_size: int = 10000  # held out from the 60k training images
    test_binarize_seed: int = 0  # the fixed-seed binarized test set


@dataclass
class TrainConfig:
    epochs: int = 10
    max_time: str | None = None  # "DD:HH:MM:SS", a wall-clock budget for the whole fit
    max_steps: int = -1
    limit_train_batches: int | float = 1.0  # a fraction or a count of batches per epoch (quick runs)
    limit_val_batches: int | float = 1.0
    lr: float = 1e-3
    lr_decay: Literal["none", "cosine"] = "none"
    weight_decay: float = 0.0
    seed: int = 0
    devices: str = "auto"  # passed to lightning.Trainer: "auto", 1, "0,1", ...
    accelerator: str = "auto"
    strategy: str = "auto"  # "ddp" for several GPUs / nodes
    num_nodes: int = 1
    precision: str = "32-true"  # "bf16-mixed", "16-mixed", ...
    log_every_n_steps: int = 50
    figures_every_n_epochs: int = 1
    snapshot_epochs: list[int] = field(default_factory=list)  # extra weights kept at these epochs
    val_every_n_epochs: int = 1
    progress_bar: bool = True
    threads: int | None = None  # torch.set_num_threads; None keeps torch's default
    profiler: Literal["none", "simple", "advanced", "pytorch"] = "none"  # Lightning's profilers, to find slow hooks


@dataclass
class EvalConfig:
    nll_samples: int = 5000
    chunk_size: int = 50  # importance samples per decoder pass (x batch_size rows: ~15 MB for MNIST)
    batch_size: int = 100
    limit: int | None = None  # evaluate only the first N test images


@dataclass
class RunConfig:
    model: dict[str, Any] = field(default_factory=lambda: {"name": "vae"})
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    name: str = "run"

    @property
    def model_name(self) -> str:
        return self.model["name"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check (and gently convert) ``value`` against the annotation ``tp``; raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}={value!r} is not allowed; choose one of: {', '.join(map(str, args))}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}={value!r} fits none of {tp}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        inner = args[0] if args else Any
        items = [coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{key} must be an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{key}: cannot check values of type {_type_name(tp)}")


def from_dict(cls: type, data: dict[str, Any] | None, prefix: str) -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad values raise ConfigError."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"unknown key {where}{unknown[0]}; allowed: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = from_dict(tp, value, key)
        else:
            kwargs[name] = coerce(value, tp, key)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:  # __post_init__ checks
        raise ConfigError(f"{prefix}: {e}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.lr=3e-4`` -> (["train", "lr"], 3e-4); values are read as YAML scalars/lists."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw != "" else None
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part} is not a section")
        node[path[-1]] = value
    return raw


def model_config(model: dict[str, Any]) -> Any:
    """The registered model's config dataclass, validated (``model.name`` picks the model)."""
    from vaekit import registry

    model = dict(model)
    name = model.pop("name", None)
    if name is None:
        raise ConfigError(f"model.name is missing; choose one of: {', '.join(registry.names())}")
    try:
        entry = registry.get(name)
    except KeyError:
        raise ConfigError(f"model.name={name!r} is unknown; choose one of: {', '.join(registry.names())}") from None
    return from_dict(entry.config, model, "model")


def load_config(source: str | Path | dict[str, Any] | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a recipe (path or dict), apply overrides, validate every section including the model's."""
    if source is None:
        raw: dict[str, Any] = {}
    elif isinstance(source, dict):
        raw = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"recipe {str(path)!r} does not exist")
        raw = yaml.safe_load(path.read_text()) or {}
        raw.setdefault("name", path.stem)
    raw = copy.deepcopy(raw)  # overrides must not reach into the caller's dicts
    if isinstance(raw.get("model"), str):
        raw["model"] = {"name": raw["model"]}
    raw = apply_overrides(raw, overrides or [])
    cfg = from_dict(RunConfig, raw, "")
    model_config(cfg.model)  # validate now, build later (the data may fill input_shape)
    return cfg
