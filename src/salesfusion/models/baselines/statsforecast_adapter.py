"""statsforecast models as local forecasters, each series forecast on its own, with a
per-series fallback that is counted.

A series is forecast by the model's own ``forecast(y, h, X, X_future, level)``: the call that
``StatsForecast.forecast`` makes for each series. The engine is not used because its
``fallback_model`` (statsforecast 2.1) swaps models silently: nothing says which series fell
back, and a report that hides that a third of the series got a mean is misleading.

The fallback, for series too short for the model (routed up front, by the model's own rule) and
for series on which the model raises or gives non-finite values: the mean of the series' last
``FALLBACK_WINDOW`` periods (all of them when fewer), through statsforecast's
``HistoricAverage``, so its interval comes from the same residual spread. Why the mean and not
the last value: a series shorter than the model's minimum has 1-6 points, too few to estimate a
trend or a smoothing weight; the mean is the least noisy level estimate there (the last value
carries one period's noise in full). On a long series that failed, the window keeps the mean to
its recent level.

``notes`` describe the latest forecast: each ``predict`` replaces them with its own counts, so a
backtest lists, per window, how many series fell back there.

Large panels (20k-1M series): a model with a closed form (``vectorised``: naive, seasonal
naive, moving average, Croston, TSB) computes those calls' numbers for the whole panel at once,
fallback, routing and notes included (``vectorised.py``). The others (ETS, ARIMA, ADIDA, iMAPA)
call the model per series; from ``parallel_min_series`` series on, in ``n_jobs`` forked
processes given contiguous chunks of series, their outputs and counts merged in series order, so
the forecasts and notes are those of one process (``series_pool.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
from pydantic import Field
from statsforecast import models as sf_models

from salesfusion.data.forecast_frame import quantile_name
from salesfusion.data.frequency import OFFSET_UNIT, SEASON_LENGTH
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.models.base import Forecaster
from salesfusion.models.baselines.series_pool import (
    PARALLEL_MIN_SERIES,
    FallbackTally,
    _Job,
    forecast_rows,
    pool_workers,
)
from salesfusion.models.baselines.vectorised import PanelForecast, SeriesMatrix, forecast_panel
from salesfusion.models.config import ModelConfig

FALLBACK_WINDOW = 8  # periods the fallback averages


class IntervalConfig(ModelConfig):
    interval_level: int = Field(80, ge=1, le=99, description=(
        "Central prediction interval (percent) whose bounds become the quantile columns."))


class SeasonalConfig(IntervalConfig):
    season_length: int | None = Field(None, ge=1, description=(
        "Periods per season; None: the frequency's (7 daily, 52 weekly, 12 monthly)."))


class ParallelConfig(ModelConfig):
    n_jobs: int | None = Field(None, ge=1, description=(
        "Processes forecasting the series of a large panel (2,000 series or more for ETS and "
        "ARIMA, 10,000 for ADIDA and iMAPA; smaller ones stay in this process); None: one per "
        "available core (1 inside a worker process of a pool); 1: this process. The forecasts "
        "do not depend on it."))


@dataclass
class Regressors:
    """Exogenous inputs of every series over ``periods`` (the history periods, then the
    forecast periods): ``values`` (series, period, channel)."""

    values: np.ndarray
    periods: np.ndarray
    names: list[str]


class StatsForecastModel(Forecaster):
    """Adapter: subclasses say which statsforecast model to use for a given season length and
    the fewest periods it takes."""

    # Series shorter than this many seasons get the non-seasonal variant (season length 1).
    seasons_needed: ClassVar[int] = 0
    label: ClassVar[str] = ""  # the statsforecast model, as notes name it
    vectorised: ClassVar[bool] = False  # panel_forecast gives the model's forecasts of a panel
    parallel_min_series: ClassVar[int] = PARALLEL_MIN_SERIES  # the fewest series for a pool

    def _model(self, season_length: int) -> Any:
        raise NotImplementedError

    def series_min_length(self, season_length: int, regressors: int) -> int:
        """The fewest periods the model forecasts from; shorter series get the fallback."""
        return 1

    def _short_rule(self) -> str:
        """``series_min_length``'s rule in words, for the notes."""
        return f"fewer than {self.series_min_length(1, 0)} periods"

    def fallback_window(self) -> int:
        return FALLBACK_WINDOW

    def _regressors(self, history: Panel, keys: pl.DataFrame, horizon: int) -> Regressors | None:
        """Exogenous inputs of the series ``keys`` (None: the model takes none)."""
        return None

    def _select_regressors(self, x: np.ndarray) -> np.ndarray:
        """The columns of ``x`` (one series' history, period x channel) the model may use."""
        return np.arange(x.shape[1])

    def _season_length(self, freq: str) -> int:
        return int(getattr(self.config, "season_length", None) or SEASON_LENGTH[freq])

    def _fit(self, panel: Panel) -> None:
        """Nothing global to learn: per-series parameters are estimated at predict time."""

    def _save_state(self, folder: Path) -> None:
        """The base class saves the history, which is all a local model needs."""

    def _load_state(self, folder: Path) -> None:
        pass

    def _predict(self, horizon: int, history: Panel, series: pl.DataFrame) -> pl.DataFrame:
        data = (history.data.join(series, on=SERIES_KEY, how="semi")
                .select(*SERIES_KEY, "timestamp", "y").sort(*SERIES_KEY, "timestamp"))
        spans = data.group_by(SERIES_KEY, maintain_order=True).agg(
            pl.len().alias("n"), pl.col("timestamp").max().alias("last"))
        lengths = spans["n"].to_numpy()
        ends = np.cumsum(lengths)
        y = data["y"].cast(pl.Float64).to_numpy()
        level = [int(self.params["interval_level"])] if self.supports_quantiles else None
        job = _Job(self, y, ends - lengths, ends, data["timestamp"].to_numpy(),
                   self._regressors(history, spans.select(SERIES_KEY), horizon), horizon, level,
                   self._season_length(history.freq))
        tally = FallbackTally(series=spans.height)
        out = np.full((spans.height, horizon, 3 if level else 1), np.nan)
        rows = (forecast_panel(self, job, lengths, out, tally) if self.vectorised
                else np.arange(spans.height))
        forecast_rows(job, rows, out, tally, self._workers(len(rows)))
        self._notes = self._describe(tally)
        return self._frame(spans, horizon, history.freq, out, level)

    def panel_forecast(self, matrix: SeriesMatrix, horizon: int,
                        season_length: int) -> PanelForecast:
        """The model's forecasts of ``matrix``'s rows, none too short for it."""
        raise NotImplementedError

    def _workers(self, series: int) -> int:
        """Processes forecasting ``series`` of this model's series (``n_jobs``, from
        ``parallel_min_series`` series on)."""
        return pool_workers(self.params.get("n_jobs"), series, self.parallel_min_series)

    def series_regressors(self, regressors: Regressors | None, row: int, stamps: np.ndarray,
                           horizon: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        if regressors is None or not regressors.names:
            return None, None
        positions = np.searchsorted(regressors.periods, stamps.astype(regressors.periods.dtype))
        future = np.arange(positions[-1] + 1, positions[-1] + 1 + horizon)
        x = regressors.values[row, positions].astype(np.float64)
        keep = self._select_regressors(x)
        if not len(keep):
            return None, None
        return x[:, keep], regressors.values[row][future][:, keep].astype(np.float64)

    def forecast_one(self, y: np.ndarray, x: np.ndarray | None, x_future: np.ndarray | None,
                      horizon: int, level: list[int] | None, season: int,
                      models: dict[int, Any], tally: FallbackTally) -> np.ndarray:
        """(horizon, 1 or 3) mean (and interval bounds) of one series."""
        width = 0 if x is None else x.shape[1]
        seasonal = (season > 1 and len(y) >= self.seasons_needed * season
                    and len(y) >= self.series_min_length(season, width))
        season_length = season if seasonal else 1
        if len(y) < self.series_min_length(season_length, width):
            tally.short += 1
            tally.longest_short = max(tally.longest_short, len(y))
            return self._fallback(y, horizon, level)
        if season_length not in models:
            models[season_length] = self._model(season_length)
        model = models[season_length]
        inputs: dict[str, Any] = {"X": x, "X_future": x_future} if x is not None else {}
        try:
            result = _columns(model.forecast(y=y, h=horizon, level=level, **inputs) if level
                              else model.forecast(y=y, h=horizon, **inputs), level)
            if not np.isfinite(result).all():
                raise ValueError("non-finite forecast")
        except Exception as exc:  # any model error: this series falls back, counted
            tally.failed += 1
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
            tally.errors[reason] = tally.errors.get(reason, 0) + 1
            return self._fallback(y, horizon, level)
        return result

    def _fallback(self, y: np.ndarray, horizon: int, level: list[int] | None) -> np.ndarray:
        recent = y[-self.fallback_window():]
        model = sf_models.HistoricAverage()
        result = (model.forecast(y=recent, h=horizon, level=level) if level
                  else model.forecast(y=recent, h=horizon))
        return _columns(result, level)

    def _describe(self, tally: FallbackTally) -> list[str]:
        notes = []
        window, label = self.fallback_window(), self.label or self.name
        if tally.short:
            notes.append(f"{tally.short} of {tally.series} series too short for {label} "
                         f"({self._short_rule()}): forecast by the mean of their periods"
                         + (f" (the last {window} at most)" if tally.longest_short > window
                            else ""))
        if tally.failed:
            commonest = max(tally.errors, key=tally.errors.__getitem__)
            notes.append(f"{label} failed on {tally.failed} of {tally.series} series "
                         f"({commonest}" + (f"; {len(tally.errors) - 1} other errors"
                                            if len(tally.errors) > 1 else "")
                         + f"): forecast by the mean of their last {window} periods")
        return notes

    def _frame(self, spans: pl.DataFrame, horizon: int, freq: str, out: np.ndarray,
               level: list[int] | None) -> pl.DataFrame:
        columns = {"y_pred": out[..., 0].ravel()}
        if level:
            tail = (100 - level[0]) / 200
            columns[quantile_name(round(tail, 4))] = out[..., 1].ravel()
            columns[quantile_name(round(1 - tail, 4))] = out[..., 2].ravel()
        # Each series continues from its own last period, as StatsForecast's dates do.
        frame = (spans.select(*SERIES_KEY, "last")
                 .with_columns(pl.int_ranges(1, horizon + 1).alias("step")).explode("step")
                 .with_columns(pl.col("last").dt.offset_by(
                     pl.format("{}" + OFFSET_UNIT[freq], pl.col("step")))
                     .cast(pl.Datetime("us")).alias("timestamp")))
        return frame.select(*SERIES_KEY, "timestamp").with_columns(
            pl.Series(name, values, dtype=pl.Float64) for name, values in columns.items())


def _columns(result: dict[str, np.ndarray], level: list[int] | None) -> np.ndarray:
    """statsforecast's forecast dict as a (horizon, 1 or 3) array: mean[, lo, hi]."""
    keys = ["mean", f"lo-{level[0]}", f"hi-{level[0]}"] if level else ["mean"]
    return np.stack([np.asarray(result[k], dtype=np.float64) for k in keys], axis=-1)
