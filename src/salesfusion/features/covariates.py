"""Dynamic covariates of every series over a run of periods, for the neural models.

Channels: the event covariates (``features.events``) when the panel has events, then each
declared exogenous column, standardised with statistics fitted on the training periods. Each
channel says whether it is future-known (events, ``future_known`` columns) or past-only; a
consumer may read a past-only channel at history periods only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from salesfusion.data.panel import Panel
from salesfusion.features.events import event_cube, event_names


@dataclass
class Covariates:
    values: np.ndarray  # (series, period, channel)
    names: list[str]
    future_known: np.ndarray  # (channel,) bool

    @property
    def width(self) -> int:
        return len(self.names)


def fit_exogenous_scale(panel: Panel) -> dict[str, list[float]]:
    """Mean and standard deviation of each exogenous column over the panel's periods."""
    if panel.exogenous is None:
        return {}
    last = panel.data["timestamp"].max()
    seen = panel.exogenous.filter(pl.col("timestamp") <= last)
    scale = {}
    for column in [*panel.past_only, *panel.future_known]:
        values = seen[column].cast(pl.Float64).drop_nulls()
        std = float(values.std()) if values.len() > 1 else 0.0
        scale[column] = [float(values.mean()) if values.len() else 0.0, std if std > 0 else 1.0]
    return scale


def covariate_cube(panel: Panel, keys: pl.DataFrame, periods: np.ndarray,
                   scale: dict[str, list[float]]) -> Covariates:
    """Covariates of the series ``keys`` over ``periods`` (history periods and, beyond the
    panel's end, forecast periods). ``scale`` comes from ``fit_exogenous_scale`` at fit time."""
    parts: list[np.ndarray] = []
    names: list[str] = []
    future_known: list[bool] = []
    if panel.events is not None:
        parts.append(event_cube(panel.events, keys, periods))
        names += event_names()
        future_known += [True] * len(event_names())
    columns = [c for c in [*panel.past_only, *panel.future_known] if c in scale]
    if panel.exogenous is not None and columns:
        on = ["timestamp", "market"] if "market" in panel.exogenous.columns else ["timestamp"]
        grid = (keys.select("market").with_row_index("row")
                .join(pl.DataFrame({"timestamp": periods}).cast(pl.Datetime("us"))
                      .with_row_index("col"), how="cross")
                .join(panel.exogenous.with_columns(pl.col("timestamp").cast(pl.Datetime("us"))),
                      on=on, how="left"))
        rows, cols = grid["row"].to_numpy(), grid["col"].to_numpy()
        for column in columns:
            mean, std = scale[column]
            matrix = np.zeros((keys.height, len(periods)), dtype=np.float32)
            values = (grid[column].cast(pl.Float64).to_numpy() - mean) / std
            matrix[rows, cols] = np.nan_to_num(values)
            parts.append(matrix[..., None])
            names.append(column)
            future_known.append(column in panel.future_known)
    values = (np.concatenate(parts, axis=-1) if parts
              else np.zeros((keys.height, len(periods), 0), dtype=np.float32))
    return Covariates(values=values.astype(np.float32), names=names,
                      future_known=np.array(future_known, dtype=bool))
