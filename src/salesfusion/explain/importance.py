"""Permutation importance of a fitted LightGBM forecaster's inputs, grouped by modality.

Gradient attributions need a differentiable model; a tree ensemble is explained by what its
accuracy loses when an input is scrambled. For one forecast origin, the rows the model forecasts
(every series with history at the origin, steps 1..horizon) are scored with their actuals; then
each input group's columns are permuted together across the rows (seeded, ``repeats`` times) and
the WAPE increase is the group's importance. Permuting a group's columns together keeps the
group's internal structure (a lag with its rolling means) and breaks only its link to the target
and to the other groups.

Groups: ``history`` (lags, rolling statistics, age, time since the last sale, the item's demand
across markets, shop momentum, level), ``calendar`` (month, week, day, step), ``market``,
``price_fx`` (the origin's local price, its ratio to the 26-period mean, FX rate and change),
``events`` (the live-stream channels) and one group per other covariate channel
(``covariate:price``, ``covariate:promo``, ``covariate:trend_by_category``...).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from salesfusion.data.panel import Panel
from salesfusion.errors import InputError
from salesfusion.models.base import Forecaster

CALENDAR = ("month", "week_of_year", "day_of_week", "step")
PRICE_FX = ("price_local", "price_ratio", "fx_rate", "fx_change_4")


def feature_group(feature: str) -> str:
    """The input group of one of LightGBM's feature columns."""
    if feature in CALENDAR:
        return "calendar"
    if feature == "market":
        return "market"
    if feature in PRICE_FX:
        return "price_fx"
    if feature.startswith("cov_event_"):
        return "events"
    if feature.startswith("cov_"):
        channel = feature.removeprefix("cov_").removesuffix("_at_target").removesuffix("_change")
        return f"covariate:{channel}"
    return "history"


def permutation_importance(model: Forecaster, panel: Panel, origin: datetime,
                           repeats: int = 5, seed: int = 0) -> pl.DataFrame:
    """WAPE increase when each input group is permuted, for the forecasts made at ``origin``
    (``model`` fitted on ``panel.until(origin)``) and scored on ``panel``'s actuals of the
    ``model``'s horizon after it. Columns: ``group, features, wape, wape_permuted, increase,
    increase_sd`` (mean and sample standard deviation over the repeats), largest first."""
    if not model.has_feature_importance:
        raise InputError(f"model '{model.name}' has no feature matrix to permute (permutation "
                         f"importance needs a fitted 'lightgbm')")
    if repeats < 1:
        raise InputError(f"repeats must be at least 1, got {repeats}")
    horizon = int(model.params["horizon"])
    periods = panel.periods.to_list()
    if origin not in periods or periods.index(origin) + horizon >= len(periods):
        raise InputError(f"origin {origin:%Y-%m-%d} must be a period of the panel with "
                         f"{horizon} periods of actuals after it")
    cut = panel.until(periods[periods.index(origin) + horizon])
    matrix, side = model.importance_design(cut, horizon)
    origin_index = periods.index(origin)
    rows = (side["target_index"] - side["step"]) == origin_index
    if not rows.any():
        raise InputError(f"no series has history at {origin:%Y-%m-%d} and actuals after it")
    matrix, target = matrix[rows], side["target"][rows]
    scale = side["scale"][rows]

    def wape(features: np.ndarray) -> float:
        predicted = model.predict_design(features, scale)
        return float(np.abs(target - predicted).sum() / max(np.abs(target).sum(), 1e-12) * 100)

    baseline = wape(matrix)
    names = model.feature_names
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        groups.setdefault(feature_group(name), []).append(index)
    rng = np.random.default_rng(seed)
    out = []
    for group, columns in groups.items():
        scores = []
        for _ in range(repeats):
            permuted = matrix.copy()
            permuted[:, columns] = matrix[rng.permutation(len(matrix))][:, columns]
            scores.append(wape(permuted))
        out.append({"group": group, "features": ", ".join(names[i] for i in columns),
                    "wape": baseline, "wape_permuted": float(np.mean(scores)),
                    "increase": float(np.mean(scores)) - baseline,
                    "increase_sd": float(np.std(scores, ddof=1)) if repeats > 1 else 0.0})
    return pl.DataFrame(out).sort("increase", descending=True)
