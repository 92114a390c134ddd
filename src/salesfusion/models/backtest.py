"""The rolling-origin backtest of one model, on the base interface (``Forecaster.backtest``), so
every model is evaluated the same way: a fit at each window's origin and its forecast joined to
the actuals and the origin context. The metrics over the forecasts are ``evaluation``'s."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

import polars as pl

from salesfusion.data.forecast_frame import CONTEXT_COLUMNS, FORECAST_COLUMNS, quantile_columns
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.data.splits import BacktestProtocol
from salesfusion.scoring.scales import origin_context

if TYPE_CHECKING:
    from salesfusion.models.base import Forecaster


@dataclass(frozen=True)
class WindowDone:
    """One finished window of one model's backtest."""

    model: str
    window: int  # 0-based
    windows: int
    origin: date | datetime
    seconds: float  # wall time of this window's fit (when refitted) and predict
    refitted: bool
    notes: tuple[str, ...] = ()  # what the fitted model noted (fallbacks, masked inputs)

def run_backtest(model: Forecaster, panel: Panel, protocol: BacktestProtocol,
                 on_window: Callable[[WindowDone], None] | None = None) -> pl.DataFrame:
    """Forecast every window of the protocol; returns one row per forecast point.

    Columns: ``item_id, market, timestamp, model, window, y_true, y_pred``, any quantile
    columns, and ``y_last, mase_scale, rmsse_scale, revenue_weight`` (so metrics can be
    recomputed from the file alone).
    Forecasts (and quantiles) are clipped at 0: demand is never negative. Series are forecast
    when they have history at the origin and actuals in the window. ``on_window`` hears of each
    finished window (its origin, wall time and the fitted model's notes).
    """
    frames = []
    fitted: Forecaster | None = None
    for window in range(protocol.windows):
        frame, fitted, done = backtest_window(
            model, panel, protocol, window, None if protocol.refit else fitted)
        frames.append(frame)
        if on_window:
            on_window(done)
    return pl.concat(frames, how="diagonal")


def backtest_window(model: Forecaster, panel: Panel, protocol: BacktestProtocol, window: int,
                    fitted: Forecaster | None = None) -> tuple[pl.DataFrame, Forecaster,
                                                                WindowDone]:
    """Window ``window`` of ``run_backtest``: a fit of ``model`` on the history up to its origin
    (unless ``fitted`` is given), its scored forecast, the fitted model and the window's
    report."""
    started = time.perf_counter()
    origin = protocol.origins(panel.periods)[window]
    history = panel.until(origin)
    refitted = fitted is None
    if fitted is None:
        fitted = model.clone().fit(history)
    frame = forecast_window(fitted, panel, history, protocol.horizon, model.name, window)
    return frame, fitted, WindowDone(
        model=model.name, window=window, windows=protocol.windows, origin=origin,
        seconds=time.perf_counter() - started, refitted=refitted,
        notes=tuple(getattr(fitted, "notes", ())))


def forecast_window(fitted: Forecaster, panel: Panel, history: Panel, horizon: int,
                    model_name: str, window: int) -> pl.DataFrame:
    """``fitted``'s forecast of the ``horizon`` periods of ``panel`` after ``history``'s last
    one, joined to the actuals: every series with history and actuals there, scored rows with
    the origin context (one window of ``run_backtest``)."""
    origin = history.periods.max()
    periods = panel.periods
    test_end = periods.filter(periods > origin).head(horizon).max()
    actuals = panel.data.filter((pl.col("timestamp") > origin)
                                & (pl.col("timestamp") <= test_end))
    wanted = actuals.select(SERIES_KEY).unique().join(
        history.data.select(SERIES_KEY).unique(), on=SERIES_KEY, how="semi")
    forecast = fitted.predict(horizon, history=history, series=wanted)
    joined, quantiles = scored_window(
        actuals.select(*SERIES_KEY, "timestamp", pl.col("y").alias("y_true")), forecast,
        model_name, window)
    joined = joined.join(origin_context(history, horizon), on=SERIES_KEY, how="left")
    return joined.select(*FORECAST_COLUMNS, *quantiles, *CONTEXT_COLUMNS)


def scored_window(actuals: pl.DataFrame, forecast: pl.DataFrame, model_name: str,
                  window: int) -> tuple[pl.DataFrame, list[str]]:
    """``actuals`` (keys, timestamp, ``y_true``) joined to ``forecast`` clipped at 0 (demand is
    never negative), labelled with the model and window; and the forecast's quantile columns."""
    quantiles = quantile_columns(forecast.columns)
    clipped = forecast.with_columns(pl.col("y_pred", *quantiles).clip(lower_bound=0.0))
    joined = (actuals.join(clipped, on=[*SERIES_KEY, "timestamp"], how="inner")
              .with_columns(pl.lit(model_name).alias("model"),
                            pl.lit(window, dtype=pl.Int64).alias("window")))
    return joined, quantiles
