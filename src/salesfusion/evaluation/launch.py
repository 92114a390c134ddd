"""The cold-start (launch) backtest: hold products (or products' markets) out by launch date
and score their first H periods from launch.

Scope ``item`` (new products): an item's launch is its first period in any market of the
panel. At a cutoff, items split into
three parts, no item in two: **test**, the items launched on or after the cutoff with at least
``min_observed`` periods (the horizon by default) observed in some market before the panel
ends; **validation**, the items launched in the ``validation_periods`` periods before the
cutoff (for model selection; ``LaunchSplit.validation_fit_panel`` is what a selection fits on);
**train**, the items launched before that. The model is fitted on the train and validation
items' rows before the cutoff only (no row of a test item, no row at or after the cutoff), then
forecasts every test series (item, market) for its first H periods from its own launch in that
market. Items launched after the cutoff with too few periods observed are in no part.

Scope ``market`` (new markets, the cross-border question): the test series are an item's
first periods in a market it enters on or after the cutoff, having sold elsewhere before it;
the model is fitted on every row before the cutoff, the item's other markets included, so it
can forecast the entry from the item's history abroad as well as its content. The validation
series are the market entries of the ``validation_periods`` before the cutoff.

RMSSE of a launch: M5 scales a series' RMSE by its own in-sample one-step naive RMSE, which a
new series does not have. The launch backtest scales it instead by its market's **launch
scale** (``launch_scale``): the root mean squared one-step difference of the training
launches' first H periods from launch in that market (the series the model was fitted on,
pooled; the step from "not yet selling" to the first period is not a difference, as M5 starts
a series at its first sale). So a launch RMSSE of 1 is an error as large as a typical
week-to-week swing of a new item in that market. A market with no training launch (nothing to
scale by) has no RMSSE; MASE stays null, being the absolute-error scale's question.
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
