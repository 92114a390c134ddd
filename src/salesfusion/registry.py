"""Named component registries (models, encoders) and parameter checking shared by components."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from salesfusion.errors import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Classes by their ``name``; ``load`` imports the modules that register them, lazily, so
    that importing a registry stays cheap."""

    def __init__(self, kind: str, load: Callable[[], None]) -> None:
        self.kind = kind
        self._load = load
        self._classes: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        name = cls.name  # type: ignore[attr-defined]
        if name in self._classes:
            raise ValueError(f"{self.kind} name '{name}' is registered twice")
        self._classes[name] = cls
        return cls

    def get(self, name: str) -> type[T]:
        self._load()
        if name not in self._classes:
            raise InputError(f"unknown {self.kind} '{name}'; registered {self.kind}s are "
                             f"{sorted(self._classes)}")
        return self._classes[name]

    def names(self, keep: Callable[[type[T]], bool] | None = None) -> list[str]:
        self._load()
        return sorted(n for n, c in self._classes.items() if keep is None or keep(c))


def merged_params(kind: str, name: str, defaults: dict[str, Any],
                  given: dict[str, Any]) -> dict[str, Any]:
    """The defaults updated by ``given``; an unknown parameter name is an input error."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise InputError(f"{kind} '{name}' has no parameter(s) {unknown}; its parameters are "
                         f"{sorted(defaults)}")
    return {**defaults, **given}
