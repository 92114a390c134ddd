"""Models by name: configs and the CLI pick them here, and the conformance suite walks them."""

from __future__ import annotations

from typing import Any

from salesfusion.models.base import Forecaster
from salesfusion.registry import Registry


def _load() -> None:
    from salesfusion.models import baselines, multimodal, presets  # noqa: F401


MODELS: Registry[Forecaster] = Registry("model", _load)
register = MODELS.register
model_class = MODELS.get


def create_model(name: str, horizon: int | None = None, **params: Any) -> Forecaster:
    """A new model; ``horizon`` is passed on to models trained for a fixed horizon."""
    cls = model_class(name)
    if horizon is not None and "horizon" in cls.default_params:
        params.setdefault("horizon", horizon)
    return cls(**params)


def registered_models() -> list[str]:
    return MODELS.names()
