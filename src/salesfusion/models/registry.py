"""Models by name: configs and the CLI pick them here, and the conformance suite walks them."""

from __future__ import annotations

from typing import Any, TypeVar

from salesfusion.errors import InputError
from salesfusion.models.base import Forecaster

MODELS: dict[str, type[Forecaster]] = {}
ModelType = TypeVar("ModelType", bound=type[Forecaster])


def register(cls: ModelType) -> ModelType:
    if cls.name in MODELS:
        raise ValueError(f"model name '{cls.name}' is registered twice")
    MODELS[cls.name] = cls
    return cls


def _ensure_loaded() -> None:
    # Importing the model modules registers them; done lazily so that `registry` stays light.
    import salesfusion.models.baselines  # noqa: F401


def model_class(name: str) -> type[Forecaster]:
    _ensure_loaded()
    if name not in MODELS:
        raise InputError(f"unknown model '{name}'; registered models are {sorted(MODELS)}")
    return MODELS[name]


def create_model(name: str, horizon: int | None = None, **params: Any) -> Forecaster:
    """A new model; ``horizon`` is passed on to models trained for a fixed horizon."""
    cls = model_class(name)
    if horizon is not None and "horizon" in cls.default_params:
        params.setdefault("horizon", horizon)
    return cls(**params)


def registered_models() -> list[str]:
    _ensure_loaded()
    return sorted(MODELS)
