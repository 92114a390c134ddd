"""Dynamic covariates of every series over a run of periods, for the neural models.

Channels: the event covariates (``features.events``) when the panel has events, then every
channel of the panel's covariate tables (``data.covariate_tables``: sales prices and
promotions, exogenous series keyed by period, market, item or item attribute), standardised
with statistics fitted on the training periods. Each channel says whether it is future-known
(events, ``future_known`` columns) or past-only; a consumer may read a past-only channel at
history periods only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from salesfusion.data.covariate_tables import LOG_CHANNELS, CovariateTable
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.errors import InputError
from salesfusion.features.events import event_cube, event_names
from salesfusion.features.lags import forward_fill


@dataclass
class Covariates:
    values: np.ndarray  # (series, period, channel)
    names: list[str]
    future_known: np.ndarray  # (channel,) bool

    @property
    def width(self) -> int:
        return len(self.names)


def _transformed(values: pl.Expr, channel: str) -> pl.Expr:
    """Prices enter as logs (a ratio of prices becomes a difference); a non-positive price is
    treated as unknown."""
    values = values.cast(pl.Float64)
    if channel in LOG_CHANNELS:
        return pl.when(values > 0).then(values.log()).otherwise(None)
    return values


def fit_exogenous_scale(panel: Panel) -> dict[str, list[float]]:
    """Mean and standard deviation of each covariate channel (after ``_transformed``) over the
    panel's periods."""
    last = panel.data["timestamp"].max()
    scale = {}
    for table in panel.covariate_tables:
        seen = table.frame.filter(pl.col("timestamp") <= last)
        for channel in table.channels:
            values = seen.select(_transformed(pl.col(channel), channel)).to_series().drop_nulls()
            std = float(values.std()) if values.len() > 1 else 0.0
            scale[channel] = [float(values.mean()) if values.len() else 0.0,
                              std if std > 0 else 1.0]
    return scale


def covariate_cube(panel: Panel, keys: pl.DataFrame, periods: np.ndarray,
                   scale: dict[str, list[float]]) -> Covariates:
    """Covariates of the series ``keys`` over ``periods`` (history periods and, beyond the
    panel's end, forecast periods). ``scale`` comes from ``fit_exogenous_scale`` at fit time.

    A channel's missing values up to the panel's last period carry its last known value
    forward (a price holds until it changes); a period after it without a value (a past-only
    channel's always) takes the value of the panel's last period, so with no plan the current
    price and promotion state continue, and a plan for one future period changes that period
    only. Values before the first known one are the channel's mean (0 once standardised).
    """
    parts: list[np.ndarray] = []
    names: list[str] = []
    future_known: list[bool] = []
    if panel.events is not None:
        parts.append(event_cube(panel.events, keys, periods))
        names += event_names()
        future_known += [True] * len(event_names())
    period_frame = (pl.DataFrame({"timestamp": periods}).cast(pl.Datetime("us"))
                    .with_row_index("col"))
    known = int((period_frame["timestamp"] <= panel.data["timestamp"].max()).sum())
    for table in panel.covariate_tables:
        channels = [c for c in table.channels if c in scale]
        if not channels:
            continue
        for channel, matrix in zip(channels, table_matrices(table, channels, panel, keys,
                                                            period_frame), strict=True):
            if channel not in panel.future_known:
                # Past-only: nothing written after the panel's end is known at its end, even
                # where the table (kept whole) holds it; a window reaching past the end (a
                # launch after it) reads the last known value there.
                matrix[:, known:] = np.nan
            mean, std = scale[channel]
            parts.append(np.nan_to_num((filled(matrix, known) - mean) / std)[..., None])
            names.append(channel)
            future_known.append(channel in panel.future_known)
    values = (np.concatenate(parts, axis=-1) if parts
              else np.zeros((keys.height, len(periods), 0), dtype=np.float32))
    return Covariates(values=values.astype(np.float32), names=names,
                      future_known=np.array(future_known, dtype=bool))


def filled(matrix: np.ndarray, known: int) -> np.ndarray:
    """Forward-filled up to column ``known``; later gaps take column ``known - 1``'s value."""
    history = forward_fill(matrix[:, :known])
    if known in (0, matrix.shape[1]):
        return history if known else matrix
    future = matrix[:, known:]
    return np.concatenate([history, np.where(np.isnan(future), history[:, -1:], future)],
                          axis=1)


def table_matrices(table: CovariateTable, channels: list[str], panel: Panel,
                   keys: pl.DataFrame, period_frame: pl.DataFrame) -> list[np.ndarray]:
    """One (series x period) matrix per channel of the series ``keys`` over the periods of
    ``period_frame`` (``timestamp``, ``col``: its column), prices as logs, NaN where the table
    has no value."""
    series = keys.select(SERIES_KEY).with_row_index("row")
    if table.attribute is not None:
        if panel.items is None or table.attribute not in panel.items.columns:
            raise InputError(f"covariates {list(table.channels)} are keyed by the items "
                             f"column '{table.attribute}', which the data has no items table "
                             f"with")
        series = series.join(panel.items.select("item_id", table.attribute)
                             .unique("item_id", keep="first"), on="item_id", how="left")
    frame = table.frame.select(
        *table.keys, *[_transformed(pl.col(c), c).alias(c) for c in channels]
    ).with_columns(pl.col("timestamp").cast(pl.Datetime("us")))
    grid = (series.join(period_frame, how="cross")
            .join(frame, on=list(table.keys), how="left"))
    rows, cols = grid["row"].to_numpy(), grid["col"].to_numpy()
    matrices = []
    for channel in channels:
        matrix = np.full((keys.height, period_frame.height), np.nan)
        matrix[rows, cols] = grid[channel].fill_null(np.nan).to_numpy()
        matrices.append(matrix)
    return matrices
