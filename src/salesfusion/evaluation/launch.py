"""The cold-start (launch) backtest: hold products (or products' markets) out by launch date
and score their first H periods from launch.

Which series are tested, validated and trained on at each cutoff is the launch split's
(``data.launch_splits``: scopes ``item`` and ``market``, fixed test items); a launch's RMSSE is
scaled by its market's launch scale (``scoring.scales.launch_scale``). This module fits each
model on the split's training part, forecasts every test series from its own launch, and scores
the forecasts overall and per period since launch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import polars as pl

from salesfusion.data.forecast_frame import FORECAST_COLUMNS, model_rows
from salesfusion.data.launch_splits import LaunchProtocol
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.models.backtest import WindowDone, scored_window
from salesfusion.scoring.metrics import evaluate
from salesfusion.scoring.scales import launch_scale

if TYPE_CHECKING:
    from salesfusion.models.base import Forecaster


def run_launch_backtest(model: Forecaster, panel: Panel, protocol: LaunchProtocol,
                        on_window: Callable[[WindowDone], None] | None = None) -> pl.DataFrame:
    """Forecast every test series' first H periods from launch at each cutoff.

    Columns as the rolling backtest's (``item_id, market, timestamp, model, window, y_true,
    y_pred``, quantiles) plus ``period_since_launch`` and ``rmsse_scale`` (the market's launch
    scale, ``launch_scale``, so RMSSE can be recomputed from the file); a launch has no history,
    so MASE and the direction metrics, which need one, are null. Forecasts are clipped at 0.
    """
    frames = []
    for window, cutoff in enumerate(protocol.cutoff_periods(panel)):
        started = time.perf_counter()
        split = protocol.split(panel, cutoff)
        train = split.fit_panel(panel)
        fitted = model.clone().fit(train)
        forecast = fitted.predict_launch(split.test_series, protocol.horizon, history=train)
        actuals = split.test_actuals(panel, protocol.horizon).select(
            *SERIES_KEY, "timestamp", pl.col("y").alias("y_true"))
        joined, quantiles = scored_window(actuals, forecast, model.name, window)
        joined = joined.join(launch_scale(train, protocol.horizon), on="market", how="left")
        frames.append(joined.select(*FORECAST_COLUMNS, "period_since_launch", *quantiles,
                                    "rmsse_scale"))
        if on_window:
            on_window(WindowDone(
                model=model.name, window=window, windows=protocol.windows, origin=cutoff,
                seconds=time.perf_counter() - started, refitted=True,
                notes=tuple(getattr(fitted, "notes", ()))))
    return pl.concat(frames, how="diagonal")


def since_launch_metrics(forecasts: pl.DataFrame) -> pl.DataFrame:
    """Metrics per model and period since launch over every window (long form: ``model,
    period_since_launch, metric, value``)."""
    parts = []
    for name in forecasts["model"].unique(maintain_order=True):
        rows = model_rows(forecasts, name)
        parts.append(evaluate(rows, ["period_since_launch"])
                     .with_columns(pl.lit(name).alias("model")))
    return (pl.concat(parts).select("model", "period_since_launch", "metric", "value")
            .sort("model", "period_since_launch", "metric"))
