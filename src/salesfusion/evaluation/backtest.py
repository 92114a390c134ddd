"""Rolling-origin backtests and their metrics tables, the same for every model."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import polars as pl

from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.evaluation.metrics import CONTEXT_COLUMNS, evaluate, quantile_columns
from salesfusion.evaluation.progress import WindowDone
from salesfusion.evaluation.protocol import BacktestProtocol

if TYPE_CHECKING:
    from salesfusion.models.base import Forecaster

FORECAST_COLUMNS = ["item_id", "market", "timestamp", "model", "window", "y_true", "y_pred"]


def origin_context(history: Panel, horizon: int = 1) -> pl.DataFrame:
    """Per series at the origin: the last observed value, the MASE and RMSSE scales
    (in-sample mean absolute, and root mean squared, one-step difference) and WRMSSE's weight,
    the series' revenue over the last ``horizon`` periods (null without revenue or prices)."""
    step = pl.col("y").diff()
    recent = history.periods.sort().tail(horizon).min()
    revenue = _revenue(history.data.columns)
    weight = (pl.lit(None, dtype=pl.Float64) if revenue is None
              else revenue.filter(pl.col("timestamp") >= recent).sum().cast(pl.Float64))
    return (history.data.sort(*SERIES_KEY, "timestamp").group_by(SERIES_KEY, maintain_order=True)
            .agg(pl.col("y").last().alias("y_last"), step.abs().mean().alias("mase_scale"),
                 (step**2).mean().sqrt().alias("rmsse_scale"), weight.alias("revenue_weight")))


def _revenue(columns: list[str]) -> pl.Expr | None:
    """A period's revenue in the seller's currency: the panel's ``revenue`` where known, else
    units times ``price``; None when the panel has neither."""
    units_at_price = pl.col("y") * pl.col("price") if "price" in columns else None
    if "revenue" in columns:
        return pl.col("revenue").fill_null(units_at_price if units_at_price is not None else 0.0)
    return units_at_price


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


def model_rows(forecasts: pl.DataFrame, model_name: str) -> pl.DataFrame:
    """One model's rows with its own columns only: quantile columns of one model must not leak
    into another's rows after a diagonal concat."""
    rows = forecasts.filter(pl.col("model") == model_name)
    return rows.select([c for c in rows.columns if rows[c].null_count() < rows.height
                        or c in FORECAST_COLUMNS])


def metrics_table(forecasts: pl.DataFrame, segment_column: str = "market") -> pl.DataFrame:
    """Metrics per model, window (each and ``all``) and segment (``all`` and each value of
    ``segment_column``), long form: ``model, window, segment, metric, value``."""
    parts = []
    for model_name in forecasts["model"].unique(maintain_order=True):
        rows = model_rows(forecasts, model_name)
        parts.extend(_grouped(rows, model_name, segment_column))
    columns = ["model", "window", "segment", "metric", "value"]
    return (pl.concat([part.select(columns) for part in parts])
            .sort("model", "window", "segment", "metric"))


def _grouped(rows: pl.DataFrame, model_name: str, segment_column: str) -> Iterable[pl.DataFrame]:
    rows = rows.with_columns(pl.col("window").cast(pl.Utf8))
    every = rows.with_columns(pl.lit("all").alias("window"))
    for frame in (rows, every):
        yield _label(evaluate(frame, ["window"]), model_name, "all")
        per_segment = evaluate(frame, ["window", segment_column])
        yield _label(per_segment.rename({segment_column: "segment"}), model_name, None)


def _label(frame: pl.DataFrame, model_name: str, segment: str | None) -> pl.DataFrame:
    frame = frame.with_columns(pl.lit(model_name).alias("model"))
    if segment is not None:
        frame = frame.with_columns(pl.lit(segment).alias("segment"))
    return frame


def series_metrics(forecasts: pl.DataFrame) -> pl.DataFrame:
    """Metrics per model and series over all windows (long form)."""
    return pl.concat(
        evaluate(forecasts.filter(pl.col("model") == name), ["item_id", "market"])
        .with_columns(pl.lit(name).alias("model"))
        for name in forecasts["model"].unique(maintain_order=True))
