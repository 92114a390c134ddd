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


def rolling_cutoffs(launches: pl.Series, share: float, folds: int) -> list[tuple[datetime,
                                                                               datetime | None]]:
    """The (cutoff, later cutoff) of each rolling cohort, latest first, from the launch dates
    ``launches`` (one per launched item, after the panel's first period): fold k holds out the
    launches in [cutoff, later); a cohort too small to part from the later one is skipped."""
    candidates = launches.sort()
    made: list[tuple[datetime, datetime | None]] = []
    later: datetime | None = None
    for fold in range(folds):
        position = int(len(candidates) * (1 - share * (fold + 1)))
        if position < 0:
            break
        cutoff = candidates[min(position, len(candidates) - 1)]
        if later is not None and cutoff >= later:
            continue
        made.append((cutoff, later))
        later = cutoff
    return made


def item_groups(items: pl.Series, folds: int, seed: int) -> list[list[str]]:
    """The items dealt at random (``seed``) into ``folds`` groups (fewer with fewer items)."""
    order = np.random.default_rng(seed).permutation(items.len())
    return [group.tolist() for group in
            np.array_split(items.to_numpy()[order], min(folds, items.len()))]


def fold_masks(rows: pl.DataFrame, first: datetime, share: float, folds: int, seed: int
               ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, validation) row masks of training rows (``item_id, launch, timestamp``: a
    series' periods; ``first``: the panel's first period) folded as ``launch_folds`` folds a
    panel, for a model that chooses its own settings (boosting rounds) on them. Rolling: a
    cohort's rows validate, the rows before its cutoff of the items launched before it train;
    by item group: a group's rows validate, every other row trains."""
    launched = (rows.group_by("item_id").agg(pl.col("launch").min())
                .filter(pl.col("launch") > first))
    if launched.is_empty():
        return []
    item_launch = rows.select("item_id").join(launched, on="item_id", how="left",
                                              maintain_order="left")["launch"]
    masks = []
    if folds == 1 or launched["launch"].n_unique() > folds:
        for cutoff, later in rolling_cutoffs(launched["launch"], share, folds):
            held = (item_launch >= cutoff).fill_null(False).to_numpy()
            if later is not None:
                held &= (item_launch < later).fill_null(False).to_numpy()
            # Series running from the first period (no launch) train as the history they are.
            train = ((item_launch < cutoff).fill_null(True).to_numpy()
                     & (rows["timestamp"] < cutoff).to_numpy())
            if held.any() and train.any():
                masks.append((train, held))
        return masks
    for group in item_groups(launched["item_id"], folds, seed):
        held = rows["item_id"].is_in(group).to_numpy()
        masks.append((~held, held))
    return masks


def _rolling(panel: Panel, horizon: int, share: float, folds: int) -> list[LaunchFold]:
    protocol = LaunchProtocol(horizon=horizon, test_fraction=share, min_observed=1)
    candidates = (item_launches(protocol.observable(panel))
                  .filter(pl.col("launch") > panel.data["timestamp"].min())["launch"])
    made: list[LaunchFold] = []
    for cutoff, later in rolling_cutoffs(candidates, share, folds):
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
    return made


def _grouped(panel: Panel, items: pl.Series, horizon: int, folds: int,
             seed: int) -> list[LaunchFold]:
    starts = panel.series().select(*SERIES_KEY, pl.col("start").alias("launch"))
    made = []
    for held in item_groups(items, folds, seed):
        launches = starts.filter(pl.col("item_id").is_in(held)).sort(SERIES_KEY)
        fit = replace(panel, data=panel.data.filter(~pl.col("item_id").is_in(held)))
        made.append(LaunchFold(fit=fit, launches=launches,
                               actuals=_actuals(panel, launches, horizon)))
    return made


def _actuals(panel: Panel, launches: pl.DataFrame, horizon: int) -> pl.DataFrame:
    return (with_period_since_launch(panel.data.join(launches, on=SERIES_KEY, how="semi"))
            .filter(pl.col("period_since_launch") <= horizon)
            .select(*SERIES_KEY, "timestamp", "period_since_launch", "y"))
