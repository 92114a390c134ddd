"""Classic local baselines through statsforecast: naive, seasonal naive, moving average, ETS,
ARIMA (with the panel's future-known covariates as regressors) and the intermittent-demand
methods (Croston, ADIDA, iMAPA, TSB).

Each is a *local* model: its parameters are estimated per series from the history it forecasts
from, so ``fit`` learns nothing global (ARIMA keeps the covariates' scale) and ``predict``
re-estimates on the history it is given. A saved model keeps that history, so a loaded one gives
the same forecasts. Series too short for a model, or on which it fails, get a counted fallback
(``statsforecast_adapter``). Of these models only ETS and ARIMA raise on real inputs: ETS with a
multiplicative error on a series holding a zero, ARIMA on collinear regressors (dropped here per
series first); naive, seasonal naive and the intermittent methods forecast any non-empty series.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field
from statsforecast import models as sf_models

from salesfusion.data.frequency import extend_periods
from salesfusion.data.panel import Panel
from salesfusion.features.covariates import covariate_cube, fit_exogenous_scale
from salesfusion.models.baselines.statsforecast_adapter import (
    FallbackTally,
    IntervalConfig,
    ParallelConfig,
    Regressors,
    SeasonalConfig,
    StatsForecastModel,
)
from salesfusion.models.baselines.vectorised import (
    PanelForecast,
    SeriesMatrix,
    croston,
    naive,
    seasonal_naive,
    tsb,
    window_average,
)
from salesfusion.models.config import ModelConfig
from salesfusion.models.registry import register

# AutoARIMA runs on a handful of points, but its order search there is noise (with a regressor
# and 2-4 points its intervals are infinite): it gets this many periods, 2 more per regressor.
ARIMA_MIN_PERIODS = 7
# A regressor whose singular-value ratio against the intercept and the regressors kept before it
# is below this is (near-)collinear with them for that series: AutoARIMA's regression would be
# singular, so it is dropped (a channel constant over the history is the commonest case).
COLLINEAR_RATIO = 1e-6
# ADIDA and iMAPA take about 70 us a series: a pool pays for its start-up from about 6,000 series
# on two processes (measured on OR-weekly), so they keep to one process below this.
INTERMITTENT_PARALLEL_MIN = 10_000


@register
class Naive(StatsForecastModel):
    """The last observed value, repeated."""

    name = "naive"
    label = "Naive"
    supports_quantiles = True
    vectorised = True
    Config = IntervalConfig

    def _model(self, season_length: int) -> Any:
        return sf_models.Naive()

    def panel_forecast(self, matrix: SeriesMatrix, horizon: int,
                        season_length: int) -> PanelForecast:
        return naive(matrix, horizon)


@register
class SeasonalNaive(StatsForecastModel):
    """The value one season earlier; series shorter than one season fall back to naive."""

    name = "seasonal_naive"
    label = "SeasonalNaive"
    supports_quantiles = True
    seasons_needed = 1
    vectorised = True
    Config = SeasonalConfig

    def _model(self, season_length: int) -> Any:
        return (sf_models.SeasonalNaive(season_length=season_length) if season_length > 1
                else sf_models.Naive(alias="SeasonalNaive"))

    def panel_forecast(self, matrix: SeriesMatrix, horizon: int,
                        season_length: int) -> PanelForecast:
        return (seasonal_naive(matrix, horizon, season_length) if season_length > 1
                else naive(matrix, horizon))


@register
class MovingAverage(StatsForecastModel):
    """Mean of the last ``window`` periods; a series shorter than the window gets the mean of
    what it has (the adapter's fallback, with the window as its span)."""

    name = "moving_average"
    label = "WindowAverage"
    vectorised = True

    class Config(ModelConfig):
        window: int = Field(4, ge=1, description="Periods averaged.")

    def _model(self, season_length: int) -> Any:
        return sf_models.WindowAverage(window_size=int(self.params["window"]))

    def series_min_length(self, season_length: int, regressors: int) -> int:
        return int(self.params["window"])  # WindowAverage rejects shorter series

    def fallback_window(self) -> int:
        return int(self.params["window"])

    def panel_forecast(self, matrix: SeriesMatrix, horizon: int,
                        season_length: int) -> PanelForecast:
        return window_average(matrix, horizon, int(self.params["window"]))


@register
class ETS(StatsForecastModel):
    """AutoETS (error, trend, season selected by AICc); seasonal only with two full seasons."""

    name = "ets"
    label = "AutoETS"
    supports_quantiles = True
    seasons_needed = 2

    class Config(SeasonalConfig, ParallelConfig):
        model: str = Field("ZZZ", pattern="^[ZAM][ZANM][ZANM]$", description=(
            "statsforecast ETS spec: error, trend, season, each Z (selected), A, M or N."))

    def _spec(self, season_length: int) -> str:
        return self.params["model"] if season_length > 1 else self.params["model"][:2] + "N"

    def _model(self, season_length: int) -> Any:
        return sf_models.AutoETS(season_length=season_length, model=self._spec(season_length),
                                 alias="AutoETS")

    def series_min_length(self, season_length: int, regressors: int) -> int:
        # statsforecast's own rule (ets_f): "tiny datasets" unless n > parameters + 4, counting
        # alpha and l0, beta and b0 for an explicit trend, gamma and s for an explicit season.
        _, trend, season = self._spec(season_length)
        parameters = 2 + 2 * (trend in "AM") + 2 * (season in "AM")
        return parameters + 5


@register
class ARIMA(StatsForecastModel):
    """AutoARIMA (orders selected by AICc, stepwise) regressing on the panel's future-known
    covariates (events, ``future_known`` exogenous columns, standardised with the training
    periods' statistics); past-only columns are unknown over the horizon, so never used.
    Seasonal only with two full seasons."""

    name = "arima"
    label = "AutoARIMA"
    supports_quantiles = True
    seasons_needed = 2

    class Config(SeasonalConfig, ParallelConfig):
        covariates: bool = Field(True, description=(
            "Regress on the panel's future-known covariates; False: plain AutoARIMA."))
        max_p: int = Field(5, ge=0, le=5, description="Largest AR order searched.")
        max_q: int = Field(5, ge=0, le=5, description=(
            "Largest MA order searched (lower orders search faster: each candidate is a "
            "numerical optimisation per series)."))

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"max_p": 0, "max_q": 0}  # regression with differenced errors: ~10 ms a series

    def _model(self, season_length: int) -> Any:
        return sf_models.AutoARIMA(season_length=season_length, max_p=int(self.params["max_p"]),
                                   max_q=int(self.params["max_q"]), alias="AutoARIMA")

    def series_min_length(self, season_length: int, regressors: int) -> int:
        return ARIMA_MIN_PERIODS + 2 * regressors

    def _short_rule(self) -> str:
        return (f"fewer than {ARIMA_MIN_PERIODS} periods"
                + (", 2 more per regressor" if self.config.covariates else ""))

    def _fit(self, panel: Panel) -> None:
        self._scale = fit_exogenous_scale(panel) if self.config.covariates else {}

    def _save_state(self, folder: Path) -> None:
        (folder / "arima.json").write_text(json.dumps({"scale": self._scale}))

    def _load_state(self, folder: Path) -> None:
        self._scale = json.loads((folder / "arima.json").read_text())["scale"]

    def _regressors(self, history: Panel, keys: pl.DataFrame, horizon: int) -> Regressors | None:
        self._regressor_names: list[str] = []
        if not self.config.covariates:
            return None
        periods = extend_periods(history.periods.to_numpy().astype("datetime64[us]"),
                                 history.freq, horizon)
        cube = covariate_cube(history, keys, periods, self._scale)
        known = cube.future_known
        self._regressor_names = [n for n, k in zip(cube.names, known, strict=True) if k]
        return Regressors(values=cube.values[..., known], periods=periods,
                          names=self._regressor_names)

    def _select_regressors(self, x: np.ndarray) -> np.ndarray:
        """The channels independent of the intercept and of each other over this history,
        greedily in channel order."""
        kept: list[int] = []
        for column in range(x.shape[1]):
            design = np.hstack([np.ones((len(x), 1)), x[:, [*kept, column]]])
            if design.shape[1] > len(x):
                break
            values = np.linalg.svd(design, compute_uv=False)
            if values.min() / values.sum() > COLLINEAR_RATIO:
                kept.append(column)
        return np.array(kept, dtype=int)

    def _describe(self, tally: FallbackTally) -> list[str]:
        notes = super()._describe(tally)
        if self.config.covariates:
            notes.append(f"regressors: {', '.join(self._regressor_names)} (each series uses "
                         f"those not constant or collinear over its history)"
                         if self._regressor_names else
                         "no future-known covariates in the panel: plain AutoARIMA")
        return notes


@register
class Croston(StatsForecastModel):
    """Croston's method for intermittent demand (classic, smoothing 0.1)."""

    name = "croston"
    label = "CrostonClassic"
    vectorised = True

    def _model(self, season_length: int) -> Any:
        return sf_models.CrostonClassic()

    def panel_forecast(self, matrix: SeriesMatrix, horizon: int,
                        season_length: int) -> PanelForecast:
        return croston(matrix, horizon)


@register
class ADIDA(StatsForecastModel):
    """Aggregate-disaggregate intermittent demand approach."""

    name = "adida"
    label = "ADIDA"
    Config = ParallelConfig
    parallel_min_series = INTERMITTENT_PARALLEL_MIN

    def _model(self, season_length: int) -> Any:
        return sf_models.ADIDA()


@register
class IMAPA(StatsForecastModel):
    """Intermittent multiple aggregation prediction algorithm."""

    name = "imapa"
    label = "IMAPA"
    Config = ParallelConfig
    parallel_min_series = INTERMITTENT_PARALLEL_MIN

    def _model(self, season_length: int) -> Any:
        return sf_models.IMAPA()


@register
class TSB(StatsForecastModel):
    """Teunter-Syntetos-Babai: separately smoothed demand probability and size."""

    name = "tsb"
    label = "TSB"
    vectorised = True

    class Config(ModelConfig):
        alpha_d: float = Field(0.2, gt=0, le=1, description="Smoothing of the demand size.")
        alpha_p: float = Field(0.2, gt=0, le=1, description="Smoothing of the probability.")

    def _model(self, season_length: int) -> Any:
        return sf_models.TSB(alpha_d=float(self.params["alpha_d"]),
                             alpha_p=float(self.params["alpha_p"]))

    def panel_forecast(self, matrix: SeriesMatrix, horizon: int,
                        season_length: int) -> PanelForecast:
        return tsb(matrix, horizon, float(self.params["alpha_d"]), float(self.params["alpha_p"]))
