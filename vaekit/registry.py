"""Name -> (model class, config dataclass). New variants register themselves; nothing branches on names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn


@dataclass(frozen=True)
class Entry:
    name: str
    model: type[nn.Module]
    config: type
    summary: str


_MODELS: dict[str, Entry] = {}


def register(name: str, config: type) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: ``@register("vae", VAEConfig)`` makes the model buildable by name."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        from vaekit.models.base import ABILITY_METHODS, Model

        if not (isinstance(cls, type) and issubclass(cls, Model)):
            raise TypeError(f"{getattr(cls, '__name__', cls)} must subclass vaekit.models.base.Model to register")

        for ability in getattr(cls, "abilities", ()):
            if not callable(getattr(cls, ABILITY_METHODS[ability], None)):
                raise TypeError(f"{cls.__name__} declares {ability} but has no {ABILITY_METHODS[ability]}()")
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        _MODELS[name] = Entry(name, cls, config, summary)
        cls.registry_name = name
        return cls

    return wrap


def _ensure_loaded() -> None:
    # Importing the package registers every built-in model.
    import vaekit.models  # noqa: F401


def get(name: str) -> Entry:
    _ensure_loaded()
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def names() -> list[str]:
    """The registered models, without private ones (a name starting with "_": a test's own model)."""
    _ensure_loaded()
    return sorted(n for n in _MODELS if not n.startswith("_"))


def build(name: str, config: Any) -> nn.Module:
    """Build a registered model from its config dataclass instance."""
    return get(name).model(config)
