"""Run configuration: one dataclass per section, read from a YAML recipe plus ``key=value`` overrides.

Every section is validated by pydantic's ``TypeAdapter`` over plain dataclasses, so nested settings (lists of
per-level dataclasses, optional sub-network configs, fixed-length tuples) are checked element by element. A
mistake fails at once with one line naming the key and what is allowed, not deep inside a training run.

Sections: ``model`` (the registered model's config), ``data`` (the registered data set's config), ``train``
(vaekit's own loop settings), ``trainer`` (Lightning's ``Trainer`` arguments, validated here and passed on
as they are) and ``eval``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from annotated_types import Ge, Gt
from pydantic import ConfigDict, TypeAdapter, ValidationError

from vaekit.core import options
from vaekit.core.errors import OneLineError

PositiveInt = Annotated[int, Ge(1)]
NonNegativeInt = Annotated[int, Ge(0)]
PositiveFloat = Annotated[float, Gt(0)]


class ConfigError(OneLineError, ValueError):
    """A bad key or value in a recipe or on the command line."""


Logger = Literal["csv", "tensorboard", "mlflow", "wandb"]


@dataclass
class TrainConfig:
    """vaekit's own training settings."""

    epochs: PositiveInt = 10
    lr: PositiveFloat = 1e-3
    lr_decay: Literal["none", "cosine", "burda"] = "none"  # burda: 3^i epochs at lr * 10^(-i/7), stage i = 0, 1, ..
    weight_decay: Annotated[float, Ge(0)] = 0.0
    seed: int = 0
    log_every_n_steps: PositiveInt = 50
    # The non-finite guard's flags live on the device and are read (one host sync) every N steps and before any
    # checkpoint or weights are written; between reads a step never waits for the device.
    sync_every_n_steps: PositiveInt = 50
    # false: the guard reads the device at every step (the earlier behaviour); null (default): deferred on an
    # accelerator, read every step on the CPU (where a read waits for nothing and is cheaper than deferring)
    deferred_guard: bool | None = None
    # torch.compile the model's loss (fixed shapes; draws through eager kernels, so a run's random numbers are the
    # eager run's). Off by default: on a 2-core CPU the compile costs a minute and small models gain little.
    compile: bool = False
    data_on_device: bool = True  # one CUDA device: an in-memory training set moves there once, batches sliced there
    figures_every_n_epochs: PositiveInt = 1
    snapshot_epochs: list[PositiveInt] = field(default_factory=list)  # extra weights kept at these epochs
    checkpoint_every_n_steps: NonNegativeInt = 1000  # checkpoints/last.ckpt every N steps (0: each epoch only)
    progress_bar: bool = True
    # A NaN or Inf in a loss term or a gradient: "stop" names the step and the term and ends the run (the last
    # checkpoint stays as it was); "skip" leaves that batch out (no update) and counts it as train/skipped_batches.
    nonfinite: Literal["stop", "skip"] = "stop"
    threads: PositiveInt | None = None  # torch.set_num_threads; None keeps torch's default
    # NHWC ("channels last") tensors, oneDNN's preferred layout for conv nets (see BENCHMARKS.md for what it
    # gives on this CPU).
    channels_last: bool = False
    profiler: Literal["none", "simple", "advanced", "pytorch"] = "none"  # Lightning's profilers, to find slow hooks
    loggers: list[Logger] = field(default_factory=lambda: ["csv"])
    # Disentanglement metrics during training (data with known factors): names and how often, in steps.
    metrics: list[str] = field(default_factory=list)
    metrics_every_n_steps: NonNegativeInt = 10000
    # Per-metric settings for those runs, e.g. {beta_vae: {num_train: 2000, num_eval: 1000}} (cheaper curves).
    metric_settings: dict[str, dict[str, int | float]] = field(default_factory=dict)
    # Submodules initialised from trained runs before training, e.g. {baseline: runs/regressor} for a CVAE.
    init: dict[str, str] = field(default_factory=dict)


def check_strategy(value: str) -> str:
    from lightning.pytorch.strategies import StrategyRegistry

    allowed = sorted({"auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook", "fsdp", "deepspeed",
                      *StrategyRegistry.available_strategies()})
    if value not in allowed:
        common = [a for a in allowed if "_find_unused" not in a and "offload" not in a and "stage" not in a]
        raise ValueError(f"strategy {value!r} is not one of Lightning's: {', '.join(common)} (and their variants)")
    return value


@dataclass
class TrainerConfig:
    """Arguments of ``lightning.Trainer``, passed on as they are (see its documentation)."""

    accelerator: str = "auto"  # cpu, gpu, auto
    devices: int | str | list[int] = "auto"  # auto, 1, 4, "0,1", [0, 1]
    strategy: str = "auto"  # ddp for several GPUs / nodes
    num_nodes: PositiveInt = 1
    precision: str = "32-true"  # bf16-mixed, 16-mixed
    max_time: str | None = None  # DD:HH:MM:SS, a wall-clock budget for the whole fit
    max_steps: Annotated[int, Ge(-1)] = -1  # -1: no limit (epochs decide)
    limit_train_batches: Annotated[int, Ge(0)] | Annotated[float, Ge(0)] = 1.0  # a fraction or a count
    limit_val_batches: Annotated[int, Ge(0)] | Annotated[float, Ge(0)] = 1.0
    check_val_every_n_epoch: PositiveInt = 1
    gradient_clip_val: Annotated[float, Ge(0)] | None = None
    gradient_clip_algorithm: Literal["norm", "value"] = "norm"
    accumulate_grad_batches: PositiveInt = 1
    sync_batchnorm: bool = False
    deterministic: bool = False

    def __post_init__(self) -> None:
        # The same checks as the --accelerator/--devices/... flags: refused here, not by Lightning mid-start.
        options.check_accelerator(self.accelerator)
        options.check_devices(self.devices)
        check_strategy(self.strategy)
        options.check_precision(self.precision)
        options.check_max_time(self.max_time)


@dataclass
class EvalConfig:
    nll_samples: PositiveInt = 5000
    chunk_size: PositiveInt = 50  # importance samples per decoder pass (x batch_size rows: ~15 MB for MNIST)
    batch_size: PositiveInt = 100
    limit: PositiveInt | None = None  # evaluate only the first N test examples
    processes: PositiveInt = 1  # test-set shards evaluated by that many processes at once (threads shared out)
    metrics: list[str] = field(default_factory=list)  # disentanglement metrics (vaekit.metrics.METRICS)
    metrics_seed: int = 0  # the random state every metric derives its draws from
    # Per-metric settings over disentanglement_lib's defaults (docs/metrics.md), e.g. smaller samples for a grid
    # of runs: {beta_vae: {num_train: 2000, num_eval: 1000}}. Results record the settings they were made with.
    metric_settings: dict[str, dict[str, int | float]] = field(default_factory=dict)


@dataclass
class RunConfig:
    model: dict[str, Any] = field(default_factory=lambda: {"name": "vae"})  # name + the model's config fields
    data: Any = None  # the registered data set's config dataclass (validated by name)
    train: TrainConfig = field(default_factory=TrainConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    name: str = "run"

    @property
    def model_name(self) -> str:
        return self.model["name"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- validation -----------------------------------------------------------------------------------------------
def _forbid_extra(tp: Any, seen: set[Any]) -> None:
    """pydantic ignores unknown keys of plain dataclasses unless told otherwise: tell every dataclass reachable
    from ``tp`` (nested sections, lists of per-level configs, optional sub-configs) to reject them."""
    if tp in seen:
        return
    seen.add(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if "__pydantic_config__" not in tp.__dict__:
            tp.__pydantic_config__ = ConfigDict(extra="forbid")
        for hint in typing.get_type_hints(tp, include_extras=True).values():
            _forbid_extra(hint, seen)
    for arg in typing.get_args(tp):
        _forbid_extra(arg, seen)


@functools.cache
def _adapter(cls: type) -> TypeAdapter:
    _forbid_extra(cls, set())
    return TypeAdapter(cls)


def _field_names(cls: type) -> list[str]:
    return sorted(f.name for f in dataclasses.fields(cls) if f.init)


def _unwrap(tp: Any) -> Any:
    """Annotated[X, ...] -> X; X | None (or a union holding a dataclass or container) -> that member."""
    if typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        tp = next((a for a in args if dataclasses.is_dataclass(a) or typing.get_origin(a)), tp)
        if typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
    return tp


def _dataclass_at(cls: Any, loc: tuple[Any, ...]) -> Any:
    """The type found by following ``loc`` (field names and list positions) from ``cls``."""
    tp = _unwrap(cls)
    for part in loc:
        origin = typing.get_origin(tp)
        if isinstance(part, int) and origin in (list, tuple):
            tp = _unwrap(typing.get_args(tp)[0])
        elif origin is dict and isinstance(part, str):
            tp = _unwrap(typing.get_args(tp)[1])  # a key of the mapping: go on into its value's type
        elif dataclasses.is_dataclass(tp) and isinstance(part, str):
            tp = _unwrap(typing.get_type_hints(tp, include_extras=True).get(part, Any))
    return tp


def _is_branch_tag(part: str, loc: tuple[Any, ...], i: int) -> bool:
    """pydantic names the union branch it tried (``int``, ``float``, ``constrained-int``) after the key."""
    return i == len(loc) - 1 and (part in ("int", "float", "str", "bool", "list", "dict") or "-" in part)


def _key(prefix: str, loc: tuple[Any, ...], cls: type) -> str:
    """``train.lr``, ``model.levels[1].latent``: the dotted key of a pydantic error location. Parts that are not
    keys (pydantic's names for the union branch it tried, such as ``int`` or ``constrained-int``) are left out."""
    parts = [prefix] if prefix else []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1]}[{part}]"] if parts else [f"[{part}]"]
            continue
        holder = _dataclass_at(cls, loc[:i])
        if (dataclasses.is_dataclass(holder) and part in _field_names(holder)) or (
                typing.get_origin(holder) is dict and (i == 0 or not _is_branch_tag(part, loc, i))):
            parts.append(str(part))
    return ".".join(parts)


def _message(err: dict[str, Any], prefix: str, cls: type) -> str:
    loc, kind, value = tuple(err["loc"]), err["type"], err.get("input")
    key = _key(prefix, loc, cls)
    ctx = err.get("ctx") or {}
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        key = ".".join(p for p in (_key(prefix, loc[:-1], cls), str(loc[-1])) if p)
        holder = _dataclass_at(cls, loc[:-1])
        allowed = ", ".join(_field_names(holder)) if dataclasses.is_dataclass(holder) else "none"
        return f"unknown key {key}; allowed: {allowed}"
    if kind == "literal_error":
        choices = ctx.get("expected", "").replace("'", "").replace(" or ", ", ")
        return f"{key}={value!r} is not allowed; choose one of: {choices}"
    if kind.startswith("int_"):
        return f"{key} must be an integer, got {value!r}"
    if kind.startswith("float_"):
        return f"{key} must be a number, got {value!r}"
    if kind.startswith("bool_"):
        return f"{key} must be true or false, got {value!r}"
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return f"{key}={value!r} is not allowed; it must be {bounds[kind]} {limit}"
    if kind == "missing":
        return f"{key} is missing" if not isinstance(loc[-1], int) else f"{key.rsplit('[', 1)[0]} has too few values"
    if kind == "too_long":
        return f"{key} has too many values ({value!r})"
    if kind in ("list_type", "tuple_type"):
        return f"{key} must be a list, got {value!r}"
    if kind in ("dict_type", "dataclass_type", "model_type"):
        return f"{key} must be a mapping, got {value!r}"
    if kind == "value_error":
        return f"{key or prefix}: {err['msg'].removeprefix('Value error, ')}"
    return f"{key}: {err['msg']} (got {value!r})"


def from_dict(cls: type, data: dict[str, Any] | None, prefix: str) -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad values raise one-line ConfigErrors."""
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'the recipe'} must be a mapping, got {data!r}")
    try:
        return _adapter(cls).validate_python(dict(data or {}))
    except ValidationError as e:
        errors = e.errors()
        # An unknown key explains the rest; else the first error.
        first = next((x for x in errors if x["type"] in ("unexpected_keyword_argument", "extra_forbidden")), errors[0])
        raise ConfigError(_message(first, prefix, cls)) from None
    except (TypeError, ValueError) as e:  # a __post_init__ check pydantic did not wrap
        raise ConfigError(f"{prefix}: {e}") from None


# -- recipes and overrides -------------------------------------------------------------------------------------
def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.lr=3e-4`` -> (["train", "lr"], 3e-4); values are read as YAML scalars/lists."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError:
        raise ConfigError(f"override {text!r}: the value is not valid YAML") from None
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


def model_config(model: dict[str, Any], defaults: dict[str, Any] | None = None) -> Any:
    """The registered model's config dataclass, validated (``model.name`` picks the model).

    ``defaults`` (from the data set: input shape, classes) fill the fields the recipe leaves out."""
    from vaekit.models import registry

    model = dict(model)
    name = model.pop("name", None)
    if name is None:
        raise ConfigError(f"model.name is missing; choose one of: {', '.join(registry.names())}")
    try:
        entry = registry.get(name)
    except KeyError:
        raise ConfigError(f"model.name={name!r} is unknown; choose one of: {', '.join(registry.names())}") from None
    fields = set(_field_names(entry.config))
    for key, value in (defaults or {}).items():
        if key in fields and key not in model:
            model[key] = list(value) if isinstance(value, tuple) else value
    return from_dict(entry.config, model, "model")


def resolved_model(model: dict[str, Any], defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model section with every default written out (what a run directory records)."""
    return {"name": model["name"], **plain(asdict(model_config(model, defaults)))}


def data_config(data: dict[str, Any] | None) -> Any:
    """The registered data set's config dataclass, validated (``data.name`` picks the set, default mnist)."""
    from vaekit.data.registry import data_names, get_data

    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"data must be a mapping (data.name=..., data.batch_size=...), got {data!r}")
    data = dict(data or {})
    name = data.setdefault("name", "mnist")
    try:
        entry = get_data(name)
    except KeyError:
        raise ConfigError(f"data.name={name!r} is unknown; choose one of: {', '.join(data_names())}") from None
    return from_dict(entry.config, data, "data")


def plain(value: Any) -> Any:
    """Tuples -> lists, so YAML stays free of Python-specific tags."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise ConfigError(f"key {key!r} appears twice (line {key_node.start_mark.line + 1}); keep one")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where} ({getattr(e, 'problem', None) or e})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot be read ({e})") from None


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
        raw = read_yaml(path)
        if raw is None:
            raise ConfigError(f"{path}: the recipe is empty; a recipe names at least its model (model: vae)")
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: a recipe must be a mapping of sections, got {type(raw).__name__}")
        raw.setdefault("name", path.stem)
        try:
            return _validated(raw, overrides)
        except ConfigError as e:  # name the recipe file in every complaint about it
            raise ConfigError(f"{path}: {e}") from None
    return _validated(raw, overrides)


def _validated(raw: dict[str, Any], overrides: list[str] | None) -> RunConfig:
    raw = copy.deepcopy(raw)  # overrides must not reach into the caller's dicts
    _check_keys(raw, "")
    if isinstance(raw.get("model"), str):
        raw["model"] = {"name": raw["model"]}
    raw = apply_overrides(raw, overrides or [])
    data = raw.pop("data", None)
    cfg = from_dict(RunConfig, raw, "")
    cfg.data = data_config(data)
    if not isinstance(cfg.model, dict):
        raise ConfigError(f"model must be a mapping, got {cfg.model!r}")
    model_config(cfg.model)  # validate now; the data set fills input_shape when the model is built
    return cfg


def _check_keys(node: dict[Any, Any], where: str) -> None:
    """Keys are names: YAML also allows numbers, lists and null as keys, which no setting is called."""
    for k, v in node.items():
        if not isinstance(k, str):
            raise ConfigError(f"{where or 'top level'}: key {k!r} is not a name")
        if isinstance(v, dict):
            _check_keys(v, f"{where}.{k}" if where else k)


# Keys that moved between sections since the first release, so older run directories still load.
_MOVED_TO_TRAINER = {"max_time": "max_time", "max_steps": "max_steps", "limit_train_batches": "limit_train_batches",
                     "limit_val_batches": "limit_val_batches", "devices": "devices", "accelerator": "accelerator",
                     "strategy": "strategy", "num_nodes": "num_nodes", "precision": "precision",
                     "val_every_n_epochs": "check_val_every_n_epoch"}


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """An older run's config.yaml in today's layout (Trainer arguments in ``trainer``, one CVAE per task)."""
    raw = copy.deepcopy(raw)
    train, trainer = raw.setdefault("train", {}) or {}, raw.setdefault("trainer", {}) or {}
    for old, new in _MOVED_TO_TRAINER.items():
        if old in train:
            trainer.setdefault(new, train.pop(old))
    model = raw.get("model") or {}
    if model.get("name") == "cvae":
        task = model.pop("task", "quadrants")
        model["name"] = f"cvae_{task}"
        if task == "label":
            model.pop("given_quadrants", None)
        else:
            model.pop("n_classes", None)
        if baseline := model.pop("baseline_run", None):
            train.setdefault("init", {})["baseline"] = baseline
    raw["train"], raw["trainer"] = train, trainer
    return raw
