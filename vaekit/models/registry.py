"""Name -> (model class, config dataclass). New variants register themselves; nothing branches on names.

This module imports no model: ``vaekit.models`` imports every built-in model module, whose ``@register``
fills the registry, and importing this module imports that package first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from vaekit.core.registry import Registry, first_line
from vaekit.models.base import ABILITY_METHODS, Model


@dataclass(frozen=True)
class Entry:
    name: str
    model: type[nn.Module]
    config: type
    summary: str


MODELS: Registry[Entry] = Registry("model")


def register(name: str, config: type) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: ``@register("vae", VAEConfig)`` makes the model buildable by name."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if not (isinstance(cls, type) and issubclass(cls, Model)):
            raise TypeError(f"{getattr(cls, '__name__', cls)} must subclass vaekit.models.base.Model to register")
        for ability in getattr(cls, "abilities", ()):
            if not callable(getattr(cls, ABILITY_METHODS[ability], None)):
                raise TypeError(f"{cls.__name__} declares {ability} but has no {ABILITY_METHODS[ability]}()")
        MODELS.add(name, Entry(name, cls, config, first_line(cls.__doc__)))
        cls.registry_name = name
        return cls

    return wrap


def get(name: str) -> Entry:
    return MODELS.get(name)


def names() -> list[str]:
    """The registered models, without private ones (a name starting with "_": a test's own model)."""
    return MODELS.names()


def build(name: str, config: Any) -> nn.Module:
    """Build a registered model from its config dataclass instance."""
    return get(name).model(config)
