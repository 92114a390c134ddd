"""Classic local baselines through statsforecast: naive, seasonal naive, moving average, ETS and
the intermittent-demand methods (Croston, ADIDA, iMAPA, TSB).

Each is a *local* model: its parameters are estimated per series from the history it forecasts
from, so ``fit`` learns nothing global and ``predict`` re-estimates on the history it is given
(``StatsForecast.forecast`` fits and forecasts in one pass). A saved model keeps that history, so
a loaded one gives the same forecasts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import polars as pl
from pydantic import Field
from statsforecast import StatsForecast
from statsforecast import models as sf_models

from salesfusion.data.frequency import OFFSET_UNIT, PANDAS_FREQ, SEASON_LENGTH
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.models.base import Forecaster
from salesfusion.models.config import ModelConfig
from salesfusion.models.registry import register


class IntervalConfig(ModelConfig):
    interval_level: int = Field(80, ge=1, le=99, description=(
        "Central prediction interval (percent) whose bounds become the quantile columns."))


class SeasonalConfig(IntervalConfig):
    season_length: int | None = Field(None, ge=1, description=(
        "Periods per season; None: the frequency's (7 daily, 52 weekly, 12 monthly)."))


class StatsForecastModel(Forecaster):
    """Adapter: subclasses say which statsforecast model to use for a given season length."""

    # Series shorter than this many seasons get the non-seasonal variant (season length 1).
    seasons_needed: ClassVar[int] = 0

    def _model(self, season_length: int) -> Any:
        raise NotImplementedError

    def _season_length(self, freq: str) -> int:
        return int(getattr(self.config, "season_length", None) or SEASON_LENGTH[freq])

    def _fit(self, panel: Panel) -> None:
        """Nothing global to learn: per-series parameters are estimated at predict time."""

    def _save_state(self, folder: Path) -> None:
        """The base class saves the history, which is all a local model needs."""

    def _load_state(self, folder: Path) -> None:
        pass

    def _predict(self, horizon: int, history: Panel, series: pl.DataFrame) -> pl.DataFrame:
        data = history.data.join(series, on=SERIES_KEY, how="semi").select(
            *SERIES_KEY, "timestamp", "y")
        season = self._season_length(history.freq)
        lengths = data.group_by(SERIES_KEY).agg(pl.len().alias("n"))
        seasonal = lengths.filter(pl.col("n") >= self.seasons_needed * season) if season > 1 \
            else lengths.clear()
        groups = [(seasonal, season),
                  (lengths.join(seasonal, on=SERIES_KEY, how="anti"), 1)]
        parts = [self._forecast_group(data.join(keys, on=SERIES_KEY, how="semi"), horizon,
                                      history.freq, season_length)
                 for keys, season_length in groups if keys.height]
        return pl.concat(parts)

    def _forecast_group(self, data: pl.DataFrame, horizon: int, freq: str,
                        season_length: int) -> pl.DataFrame:
        keys = data.select(SERIES_KEY).unique(maintain_order=True).with_row_index("unique_id")
        long = (data.join(keys, on=SERIES_KEY).select("unique_id", pl.col("timestamp").alias("ds"),
                                                     pl.col("y").cast(pl.Float64))
                .to_pandas())
        model = self._model(season_length)
        engine = StatsForecast(models=[model], freq=PANDAS_FREQ[freq], n_jobs=1)
        level = [self.params["interval_level"]] if self.supports_quantiles else None
        result = engine.forecast(df=long, h=horizon, level=level)
        if isinstance(result, pd.DataFrame) and "unique_id" not in result.columns:
            result = result.reset_index()
        alias = str(model)
        columns = {alias: "y_pred"}
        if level:
            tail = (100 - level[0]) / 200
            columns[f"{alias}-lo-{level[0]}"] = f"q{round(tail, 4)}"
            columns[f"{alias}-hi-{level[0]}"] = f"q{round(1 - tail, 4)}"
        frame = pl.from_pandas(result[["unique_id", "ds", *columns]]).rename(
            {"ds": "timestamp", **columns})
        frame = frame.with_columns(pl.col("unique_id").cast(pl.UInt32),
                                   pl.col("timestamp").cast(pl.Datetime("us")))
        return (frame.join(keys, on="unique_id").select(*SERIES_KEY, "timestamp",
                                                         *columns.values())
                .with_columns(pl.col(c).cast(pl.Float64) for c in columns.values()))


@register
class Naive(StatsForecastModel):
    """The last observed value, repeated."""

    name = "naive"
    supports_quantiles = True
    Config = IntervalConfig

    def _model(self, season_length: int) -> Any:
        return sf_models.Naive()


@register
class SeasonalNaive(StatsForecastModel):
    """The value one season earlier; series shorter than one season fall back to naive."""

    name = "seasonal_naive"
    supports_quantiles = True
    seasons_needed = 1
    Config = SeasonalConfig

    def _model(self, season_length: int) -> Any:
        return (sf_models.SeasonalNaive(season_length=season_length) if season_length > 1
                else sf_models.Naive(alias="SeasonalNaive"))


@register
class MovingAverage(StatsForecastModel):
    """Mean of the last ``window`` periods (fewer when the series is shorter)."""

    name = "moving_average"

    class Config(ModelConfig):
        window: int = Field(4, ge=1, description="Periods averaged.")

    def _model(self, season_length: int) -> Any:
        return sf_models.WindowAverage(window_size=int(self.params["window"]))

    def _forecast_group(self, data: pl.DataFrame, horizon: int, freq: str,
                        season_length: int) -> pl.DataFrame:
        window = int(self.params["window"])
        lengths = data.group_by(SERIES_KEY).agg(pl.len().alias("n"))
        short = lengths.filter(pl.col("n") < window)
        if short.height == 0:
            return super()._forecast_group(data, horizon, freq, season_length)
        # WindowAverage rejects series shorter than its window; average what there is instead.
        long_part = data.join(short, on=SERIES_KEY, how="anti")
        parts = [super()._forecast_group(long_part, horizon, freq, season_length)] \
            if long_part.height else []
        short_means = (data.join(short, on=SERIES_KEY, how="semi").group_by(SERIES_KEY)
                       .agg(pl.col("y").mean().alias("y_pred"),
                            pl.col("timestamp").max().alias("last")))
        steps = pl.DataFrame({"step": np.arange(1, horizon + 1)})
        unit = OFFSET_UNIT[freq]
        flat = short_means.join(steps, how="cross").with_columns(
            pl.col("last").dt.offset_by(pl.format("{}" + unit, pl.col("step"))).alias("timestamp"))
        parts.append(flat.select(*SERIES_KEY, "timestamp", "y_pred"))
        return pl.concat(parts)


@register
class ETS(StatsForecastModel):
    """AutoETS (error, trend, season selected by AICc); seasonal only with two full seasons."""

    name = "ets"
    supports_quantiles = True
    seasons_needed = 2

    class Config(SeasonalConfig):
        model: str = Field("ZZZ", pattern="^[ZAM][ZANM][ZANM]$", description=(
            "statsforecast ETS spec: error, trend, season, each Z (selected), A, M or N."))

    def _model(self, season_length: int) -> Any:
        spec = self.params["model"] if season_length > 1 else self.params["model"][:2] + "N"
        return sf_models.AutoETS(season_length=season_length, model=spec, alias="AutoETS")


@register
class Croston(StatsForecastModel):
    """Croston's method for intermittent demand (classic, smoothing 0.1)."""

    name = "croston"

    def _model(self, season_length: int) -> Any:
        return sf_models.CrostonClassic()


@register
class ADIDA(StatsForecastModel):
    """Aggregate-disaggregate intermittent demand approach."""

    name = "adida"

    def _model(self, season_length: int) -> Any:
        return sf_models.ADIDA()


@register
class IMAPA(StatsForecastModel):
    """Intermittent multiple aggregation prediction algorithm."""

    name = "imapa"

    def _model(self, season_length: int) -> Any:
        return sf_models.IMAPA()


@register
class TSB(StatsForecastModel):
    """Teunter-Syntetos-Babai: separately smoothed demand probability and size."""

    name = "tsb"

    class Config(ModelConfig):
        alpha_d: float = Field(0.2, gt=0, le=1, description="Smoothing of the demand size.")
        alpha_p: float = Field(0.2, gt=0, le=1, description="Smoothing of the probability.")

    def _model(self, season_length: int) -> Any:
        return sf_models.TSB(alpha_d=float(self.params["alpha_d"]),
                             alpha_p=float(self.params["alpha_p"]))
