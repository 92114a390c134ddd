"""Model configurations: every model's parameters as a typed, documented pydantic model,
validated at the edge (Python API, preset YAML, ``--config`` file) before any data is touched.

A configuration is frozen: ``fit`` cannot change it, and a search space (the tuning issue) is
"a field of a configuration + a distribution" over exactly these fields. Names of components
(backbone, fusion, loss, encoder, target transform) are checked against their registries, so a
component registered later by a user is valid everywhere a built-in one is.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, create_model

from salesfusion.errors import InputError
from salesfusion.registry import Registry

# What a model's ``y_pred`` is. ``mean``: the expected demand, so forecasts add up to the
# expected total (what a planner orders from). ``median``: the 50 % quantile, which minimises
# absolute error (so WAPE) but lies below the mean on intermittent demand.
PointForecast = Literal["mean", "median"]
POINT_HELP = ("What y_pred is: mean (expected demand; totals add up) or median (minimises "
              "absolute error, so WAPE, and lies below the mean on intermittent demand).")


class ModelConfig(BaseModel):
    """Base of every model configuration: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def registered_in(registry: Registry[Any]) -> AfterValidator:
    """A field validator: the value must name a component of ``registry``."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in registry:
            raise ValueError(f"unknown {registry.kind} '{value}'; the valid choices are "
                             f"{', '.join(registry.names())}")
        return value

    return AfterValidator(check)


def encoder_of(modality: str) -> AfterValidator:
    """A field validator: the value (or None) must name a registered encoder of ``modality``."""

    def check(value: str | None) -> str | None:
        from salesfusion.components import ENCODERS

        names = ENCODERS.names(lambda c: c.modality == modality)
        if value is not None and value not in names:
            raise ValueError(f"unknown {modality} encoder '{value}'; the valid choices are "
                             f"{', '.join(names)}")
        return value

    return AfterValidator(check)


def validate_config(config_type: type[ModelConfig], params: dict[str, Any], *, owner: str,
                    source: str | None = None) -> ModelConfig:
    """``params`` as a ``config_type``; any problem is one ``InputError`` line naming the
    source (a preset or config file), the model and the key."""
    try:
        return config_type.model_validate(params)
    except ValidationError as exc:
        raise InputError(describe_error(exc, config_type, owner, source)) from None


def describe_error(exc: ValidationError, config_type: type[ModelConfig], owner: str,
                   source: str | None) -> str:
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(all)"
    where = f"{source}: " if source else ""
    if first["type"] == "extra_forbidden":
        fields = sorted(config_type.model_fields)
        close = difflib.get_close_matches(str(first["loc"][0]), fields, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return (f"{where}model '{owner}' has no parameter '{key}'{hint}; its parameters are "
                f"{', '.join(fields)}")
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}model '{owner}', parameter '{key}': {message} (got {first['input']!r})"


def config_from_defaults(class_name: str, defaults: dict[str, Any]) -> type[ModelConfig]:
    """A configuration type for a model class that gives only a ``default_params`` dict (a
    user's quick model): each field typed by its default, unknown keys still rejected."""
    fields: dict[str, Any] = {name: (Any if value is None else type(value), value)
                              for name, value in defaults.items()}
    return create_model(f"{class_name}Config", __base__=ModelConfig, **fields)


def describe_fields(config_type: type[ModelConfig]) -> list[tuple[str, str, str]]:
    """(field, default, description) rows, for ``--help``-style listings and the docs."""
    rows = []
    for name, info in config_type.model_fields.items():
        default = info.get_default(call_default_factory=True)
        rows.append((name, repr(default), info.description or ""))
    return rows

