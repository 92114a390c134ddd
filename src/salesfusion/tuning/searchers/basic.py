"""Grid and random search."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from pydantic import Field

from salesfusion.components import SEARCHERS
from salesfusion.models.search_space import (
    CategoricalDimension,
    FloatDimension,
    IntDimension,
)
from salesfusion.tuning.searchers.base import Searcher, SearcherOptions


class GridOptions(SearcherOptions):
    shuffle: bool = Field(False, description=(
        "Walk the grid in a seeded random order (a budget smaller than the grid then samples "
        "it evenly) instead of the declared order."))


@SEARCHERS.register
class GridSearcher(Searcher):
    """Every combination of the dimensions' discrete values (action sets, or grid_points)."""

    name = "grid"
    Options = GridOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = self.space.names
        self._grid = [dict(zip(names, combo, strict=True)) for combo in
                      itertools.product(*(self.space.values(n) for n in names))]
        if self.options.shuffle:
            order = np.random.default_rng(self.seed).permutation(len(self._grid))
            self._grid = [self._grid[i] for i in order]

    def _propose(self, number: int) -> tuple[dict[str, Any], Any] | None:
        return (dict(self._grid[number]), None) if number < len(self._grid) else None


class RandomOptions(SearcherOptions):
    discrete: bool = Field(False, description=(
        "Draw from the discrete values (action sets) instead of the distributions."))


@SEARCHERS.register
class RandomSearcher(Searcher):
    """Independent draws from each dimension's distribution (log-uniform where ``log``)."""

    name = "random"
    Options = RandomOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rng = np.random.default_rng(self.seed)

    def _propose(self, number: int) -> tuple[dict[str, Any], Any] | None:
        params: dict[str, Any] = {}
        for name, dimension in self.space.dimensions.items():
            if self.options.discrete or isinstance(dimension, CategoricalDimension):
                values = self.space.values(name)
                params[name] = values[int(self._rng.integers(len(values)))]
            else:
                params[name] = draw(dimension, self._rng)
        return params, None


def draw(dimension: IntDimension | FloatDimension, rng: np.random.Generator) -> Any:
    """One value from a numeric dimension's distribution."""
    if isinstance(dimension, FloatDimension):
        if dimension.log:
            return float(math.exp(rng.uniform(math.log(dimension.low),
                                              math.log(dimension.high))))
        return float(rng.uniform(dimension.low, dimension.high))
    if dimension.log:
        value = math.exp(rng.uniform(math.log(dimension.low), math.log(dimension.high + 1)))
        return int(min(max(math.floor(value), dimension.low), dimension.high))
    steps = (dimension.high - dimension.low) // dimension.step
    return int(dimension.low + dimension.step * rng.integers(steps + 1))
