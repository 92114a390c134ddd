"""Validation folds of launches inside a training panel: what a launch model selection (the
launch ensemble's weights) is scored on, over several cohorts rather than one slice.

The launched items are those whose first period comes after the panel's first (a series
running from the first period may predate the data). Two ways to fold them:

- **rolling cohorts**, when launches fall on enough distinct periods (at least one more than
  the folds): fold 1 holds out the latest ``share`` of the launches, fold 2 the ``share``
  before them, and so on, each split as the launch protocol splits at a cutoff
  (``data.launch_splits``): the fold trains on the items launched before its cutoff, on their
  rows before it, and is scored on its own cohort's first periods;
- **grouped K-fold by item**, when they do not (a range launched on one date): the launched
  items are dealt into ``folds`` groups at random (``seed``); a fold holds one group out, every
  row of its items, and trains on every other series whole. Launches sharing a date cannot be
  split by time; this still scores each item by a model that never saw it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import polars as pl

from salesfusion.data.launch_splits import LaunchProtocol
from salesfusion.data.launches import item_launches, with_period_since_launch
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.errors import InputError


@dataclass(frozen=True)
class LaunchFold:
    """``fit``: what the fold's models train on; ``launches``: the held-out series
    (``item_id, market, launch``); ``actuals``: their observed rows in the first ``horizon``
    periods from launch (``item_id, market, timestamp, period_since_launch, y``)."""

    fit: Panel
    launches: pl.DataFrame
    actuals: pl.DataFrame


def launch_folds(panel: Panel, horizon: int, share: float, folds: int,
                 seed: int) -> tuple[list[LaunchFold], str]:
    """The folds (see the module docstring) and how they were made, in words; no fold when
    the panel has no launch after its first period (or, rolling, no item before the latest
    cohort to train on)."""
    first = panel.data["timestamp"].min()
    launched = item_launches(panel.data).filter(pl.col("launch") > first)
    if launched.is_empty():
        return [], "no launch after the panel's first period"
    dates = launched["launch"].n_unique()
    if folds == 1 or dates > folds:
        made = _rolling(panel, horizon, share, folds)
        return made, f"{len(made)} rolling launch cohort(s)"
    made = _grouped(panel, launched["item_id"], horizon, folds, seed)
    return made, (f"{len(made)} folds of the {launched.height} items launched on "
                  f"{dates} date(s), grouped by item")


def _rolling(panel: Panel, horizon: int, share: float, folds: int) -> list[LaunchFold]:
    protocol = LaunchProtocol(horizon=horizon, test_fraction=share, min_observed=1)
    candidates = (item_launches(protocol.observable(panel))
                  .filter(pl.col("launch") > panel.data["timestamp"].min())["launch"].sort())
    made: list[LaunchFold] = []
    later: datetime | None = None  # the cutoff of the previous (later) fold
    for fold in range(folds):
        position = int(len(candidates) * (1 - share * (fold + 1)))
        if position < 0:
            break
        cutoff = candidates[min(position, len(candidates) - 1)]
        if later is not None and cutoff >= later:
            continue  # a cohort too small to part from the later one at this share
        try:
            split = protocol.split(panel, cutoff)
        except InputError:  # nothing launched before the cutoff to train on
            break
        launches = split.test_series
        if later is not None:  # the later folds' launches are theirs
            launches = launches.filter(pl.col("launch") < later)
        if launches.height:
            made.append(LaunchFold(fit=split.fit_panel(panel), launches=launches,
                                   actuals=_actuals(panel, launches, horizon)))
        later = cutoff
    return made


def _grouped(panel: Panel, items: pl.Series, horizon: int, folds: int,
             seed: int) -> list[LaunchFold]:
    order = np.random.default_rng(seed).permutation(items.len())
    groups = np.array_split(items.to_numpy()[order], min(folds, items.len()))
    starts = panel.series().select(*SERIES_KEY, pl.col("start").alias("launch"))
    made = []
    for group in groups:
        held = group.tolist()
        launches = starts.filter(pl.col("item_id").is_in(held)).sort(SERIES_KEY)
        fit = replace(panel, data=panel.data.filter(~pl.col("item_id").is_in(held)))
        made.append(LaunchFold(fit=fit, launches=launches,
                               actuals=_actuals(panel, launches, horizon)))
    return made


def _actuals(panel: Panel, launches: pl.DataFrame, horizon: int) -> pl.DataFrame:
    return (with_period_since_launch(panel.data.join(launches, on=SERIES_KEY, how="semi"))
            .filter(pl.col("period_since_launch") <= horizon)
            .select(*SERIES_KEY, "timestamp", "period_since_launch", "y"))
