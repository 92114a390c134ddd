"""Search spaces: a field of a model configuration + a distribution, declared next to a preset
(its YAML ``search_space``) or in a ``--space`` file, validated against the model's ``Config``.

Each dimension is one of

- ``int``: ``low``..``high`` (inclusive), optionally ``log`` scaled or on a ``step``;
- ``float``: ``low``..``high``, optionally ``log`` scaled;
- ``categorical``: ``choices`` (any values the field accepts, e.g. backbone names).

A numeric dimension may also list ``actions``: its discrete action set, the values the seed-000
Q-learning agent (``msrl``) chooses between and the grid searcher walks. Without ``actions`` those
searchers use ``grid_points`` values spread over the range (on the log scale when ``log``).
Every value a dimension can produce is checked against the configuration when the space is
loaded, so a search never starts with a setting that the model would reject halfway through.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from salesfusion.errors import InputError
from salesfusion.models.config import ModelConfig, describe_error


class _Dimension(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IntDimension(_Dimension):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)
    actions: list[int] | None = None

    @model_validator(mode="after")
    def _check(self) -> IntDimension:
        _check_range(self.low, self.high, self.log)
        if self.log and self.step != 1:
            raise ValueError("a log-scaled int dimension takes no step")
        _check_actions(self.actions, self.low, self.high)
        return self

    def values(self, grid_points: int) -> list[Any]:
        if self.actions:
            return list(self.actions)
        if not self.log and (self.high - self.low) // self.step + 1 <= grid_points:
            return list(range(self.low, self.high + 1, self.step))
        spread = _spread(self.low, self.high, self.log, grid_points)
        return sorted({self.low + round((v - self.low) / self.step) * self.step for v in spread})


class FloatDimension(_Dimension):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    actions: list[float] | None = None

    @model_validator(mode="after")
    def _check(self) -> FloatDimension:
        _check_range(self.low, self.high, self.log)
        _check_actions(self.actions, self.low, self.high)
        return self

    def values(self, grid_points: int) -> list[Any]:
        if self.actions:
            return list(self.actions)
        return [float(f"{v:.6g}") for v in _spread(self.low, self.high, self.log, grid_points)]


class CategoricalDimension(_Dimension):
    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> CategoricalDimension:
        if len({repr(c) for c in self.choices}) != len(self.choices):
            raise ValueError(f"choices are listed twice: {self.choices}")
        return self

    def values(self, grid_points: int) -> list[Any]:
        return list(self.choices)


Dimension = Annotated[IntDimension | FloatDimension | CategoricalDimension,
                      Field(discriminator="type")]


class SearchSpace(BaseModel):
    """The tuned fields of a model configuration, in the order declared."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dimensions: dict[str, Dimension] = Field(min_length=1)
    grid_points: int = Field(5, ge=2, description=(
        "Values per numeric dimension without actions, for the grid and msrl searchers."))

    @property
    def names(self) -> list[str]:
        return list(self.dimensions)

    def values(self, name: str) -> list[Any]:
        """The discrete values of one dimension (its action set)."""
        return self.dimensions[name].values(self.grid_points)

    def size(self) -> int:
        """How many configurations the discrete (action-set) version of the space holds."""
        return math.prod(len(self.values(n)) for n in self.names)

    def check_against(self, config_type: type[ModelConfig], base: dict[str, Any], *,
                      owner: str, source: str) -> None:
        """Every value of every dimension must be valid for the model (with ``base``, the
        preset's and user's fixed parameters); the first that is not is an ``InputError``."""
        for name, dimension in self.dimensions.items():
            if name not in config_type.model_fields:
                raise InputError(f"{source}: search space dimension '{name}' is not a parameter "
                                 f"of model '{owner}' (its parameters: "
                                 f"{', '.join(sorted(config_type.model_fields))})")
            probes = dimension.values(self.grid_points)
            if not isinstance(dimension, CategoricalDimension):
                probes = [*probes, dimension.low, dimension.high]
            for value in probes:
                try:
                    config_type.model_validate({**base, name: value})
                except ValidationError as exc:
                    raise InputError(f"{source}: search space dimension '{name}', value "
                                     f"{value!r}: {describe_error(exc, config_type, owner, None)}"
                                     ) from None


def parse_space(raw: Any, source: str) -> SearchSpace:
    """A search space from its YAML form: ``{field: {type: ..., ...}, ...}`` with an optional
    ``grid_points`` key; errors name ``source`` and the dimension."""
    if not isinstance(raw, dict) or not raw:
        raise InputError(f"{source}: a search space is a mapping of configuration fields to "
                         f"distributions, e.g. 'lr: {{type: float, low: 0.0001, high: 0.01, "
                         f"log: true}}'")
    raw = dict(raw)
    grid_points = raw.pop("grid_points", 5)
    try:
        return SearchSpace(dimensions=raw, grid_points=grid_points)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if p != "dimensions")
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InputError(f"{source}: search space '{where}': {message}") from None


def _check_range(low: float, high: float, log: bool) -> None:
    if not low < high:
        raise ValueError(f"low must be below high, got {low} and {high}")
    if log and low <= 0:
        raise ValueError(f"a log-scaled dimension needs low > 0, got {low}")


def _check_actions(actions: list[Any] | None, low: float, high: float) -> None:
    if actions is None:
        return
    if len(actions) < 2:
        raise ValueError("an action set needs at least 2 values")
    if len(set(actions)) != len(actions):
        raise ValueError(f"actions are listed twice: {actions}")
    outside = [a for a in actions if not low <= a <= high]
    if outside:
        raise ValueError(f"actions {outside} lie outside low..high ({low}..{high})")


def _spread(low: float, high: float, log: bool, points: int) -> list[float]:
    if log:
        a, b = math.log(low), math.log(high)
        return [math.exp(a + (b - a) * i / (points - 1)) for i in range(points)]
    return [low + (high - low) * i / (points - 1) for i in range(points)]
