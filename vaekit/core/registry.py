"""Name -> entry, for models and data sets alike: things register themselves and nothing branches on names.

A registry never imports what it holds; the package that owns it (``vaekit.models``, ``vaekit.data``) imports
its modules, and their decorators fill it. So the registry sits below its entries and no import goes in a circle.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def first_line(doc: str | None) -> str:
    """A class's or function's one-line summary: the first line of its docstring."""
    return (doc or "").strip().splitlines()[0] if (doc or "").strip() else ""


class Registry(Generic[T]):
    """Entries by name, in registration order; ``kind`` names them in errors ("model", "data set")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        """The registered names, without private ones (a name starting with "_": a test's own entry)."""
        return sorted(n for n in self._entries if not n.startswith("_"))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
