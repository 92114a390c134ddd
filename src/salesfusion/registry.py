"""One registry type for every kind of component: models, encoders, fusions, temporal backbones,
heads, losses and target transforms.

A registry maps a name to a class (or, for losses, any object with a ``name``). ``load`` imports
the modules that register the built-in components, lazily, so that importing a registry stays
cheap, and an ``index`` of built-in names lets one component be found by importing its module
alone; anything registered later (a user's own backbone) is listed and validated the same way.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from salesfusion.errors import InputError

T = TypeVar("T")


class ComponentParams(BaseModel):
    """A component's own parameters (a backbone's attention heads, a fusion's query), given in a
    configuration as ``{name, params}`` and validated before anything is built. None here; a
    component that takes some declares a subclass as its ``Params``."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Registry(Generic[T]):
    """Components of one kind by their ``name``."""

    def __init__(self, kind: str, load: Callable[[], None] | None = None,
                 index: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        self._load = load or (lambda: None)
        # Built-in name -> the module that registers it: asking for one component imports its
        # module alone (a naive backtest never imports torch); anything else loads everything.
        self._index = dict(index or {})
        self._entries: dict[str, T] = {}

    def _load_for(self, name: object) -> None:
        """Make ``name`` registered if it can be: its module alone when the index knows it,
        else every built-in module and plug-in."""
        if name in self._entries:
            return
        if isinstance(name, str) and name in self._index:
            importlib.import_module(self._index[name])
            if name in self._entries:
                return
        self._load()

    def register(self, component: T) -> T:
        """Register ``component`` under its ``name`` (usable as a class decorator)."""
        name = component.name  # type: ignore[attr-defined]
        if name in self._entries and self._entries[name] is not component:
            raise ValueError(f"{self.kind} name '{name}' is registered twice")
        self._entries[name] = component
        return component

    def unregister(self, name: str) -> None:
        """Remove a component (for tests and plug-ins that register temporarily)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        self._load_for(name)
        if name not in self._entries:
            raise InputError(f"unknown {self.kind} '{name}'; the valid choices are "
                             f"{', '.join(sorted(self._entries))}")
        return self._entries[name]

    __getitem__ = get

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        self._load_for(name)
        return name in self._entries

    def names(self, keep: Callable[[T], bool] | None = None) -> list[str]:
        self._load()
        return sorted(n for n, c in self._entries.items() if keep is None or keep(c))

    def describe(self) -> list[tuple[str, str]]:
        """(name, first line of its docstring) for every registered component."""
        self._load()
        return [(name, _summary(self._entries[name])) for name in sorted(self._entries)]


def _summary(component: Any) -> str:
    doc = (getattr(component, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


def merged_params(kind: str, name: str, defaults: dict[str, Any],
                  given: dict[str, Any]) -> dict[str, Any]:
    """The defaults updated by ``given``; an unknown parameter name is an input error."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise InputError(f"{kind} '{name}' has no parameter(s) {unknown}; its parameters are "
                         f"{sorted(defaults)}")
    return {**defaults, **given}
