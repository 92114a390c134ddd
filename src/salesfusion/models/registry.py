"""Models by name: configs and the CLI pick them here, and the conformance suite walks them."""

from __future__ import annotations

from typing import Any

from salesfusion.components import MODELS
from salesfusion.models.base import Forecaster
from salesfusion.models.config import validate_config

register = MODELS.register
model_class = MODELS.get


def create_model(name: str, horizon: int | None = None, *, source: str | None = None,
                 **params: Any) -> Forecaster:
    """A new model, its parameters validated (errors name ``source``, a preset or config file,
    when given); ``horizon`` is passed on to models trained for a fixed horizon."""
    return build_model(model_class(name), params, horizon, source=source)


def build_model(cls: type[Forecaster], params: dict[str, Any], horizon: int | None = None, *,
                source: str | None = None) -> Forecaster:
    """An instance of ``cls`` (a registered model or a preset loaded from a file)."""
    if horizon is not None and "horizon" in cls.Config.model_fields:
        params = {"horizon": horizon, **params}
    return cls(validate_config(cls.Config, {**cls.preset_params, **params}, owner=cls.name,
                               source=source))


def registered_models() -> list[str]:
    return MODELS.names()
