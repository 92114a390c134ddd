"""One global LightGBM model over every series, direct multi-horizon.

Each training row is (series, origin t, step h): features known at t (lags, rolling statistics,
price and FX, the item's demand across markets), the step h, the calendar of period t+h, the
market and the dynamic covariates (``features.covariates``: events, prices, promotions,
exogenous series keyed by period, market, item or attribute): every channel's value at t, and
each future-known channel's value at t+h and its change from t (so a planned price or promotion
of period t+h moves that period's forecast only), with target y[t+h]. One model covers every
step, so there is no recursion and no accumulation of its own errors.

The default objective is L1 on a level-scaled target (units divided by the series' 13-period
mean + 1, rows weighted by that level): it minimises the total absolute error, so WAPE directly,
and lets one model serve series whose volumes differ by orders of magnitude. ``objective:
tweedie`` (or ``poisson``) trains the count likelihoods for non-negative, zero-inflated units
instead (on OR-weekly, Tweedie gave a WAPE about 10 points worse). The number of boosting rounds
is chosen by early stopping on the last ``horizon`` periods of the training data (never the test
part), then the model is refit on all of it with that many rounds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl
from pydantic import Field, field_validator

from salesfusion.data.forecast_frame import quantile_name
from salesfusion.data.frequency import extend_periods, periods_after
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.data.splits import ValidationPeriods
from salesfusion.errors import InputError
from salesfusion.features.calendar import calendar_features
from salesfusion.features.covariates import Covariates, covariate_cube, fit_exogenous_scale
from salesfusion.features.lags import WidePanel, origin_features, to_wide
from salesfusion.models.base import Forecaster
from salesfusion.models.baselines.boosting import (
    BoosterConfig,
    booster_params,
    fit_booster_probed,
)
from salesfusion.models.registry import register

# Features measured in units, divided by the series level when the target is level-scaled.
LEVEL_FEATURES = ("lag_", "mean_", "std_", "item_mean")


@register
class LightGBMForecaster(Forecaster):
    """One global LightGBM over every series, direct multi-horizon, lag features."""

    name = "lightgbm"

    class Config(BoosterConfig):
        horizon: int = Field(4, ge=1, description=(
            "Longest step trained for; longer forecasts are an error."))
        target_scaling: bool = Field(True, description=(
            "Divide units by the series' 13-period mean + 1 (rows weighted by it)."))
        tweedie_variance_power: float = Field(1.2, gt=1, lt=2)
        covariates: bool = Field(True, description=(
            "Read the dynamic covariates (events, prices, promotions, exogenous series); "
            "False: ablate them."))
        quantiles: list[float] = Field([0.1, 0.5, 0.9], description=(
            "Quantile levels forecast beside y_pred, from the early-stopping model's errors on "
            "the validation part (per step, in units of the series level); empty: none."))

        @field_validator("quantiles")
        @classmethod
        def _levels(cls, value: list[float]) -> list[float]:
            if any(not 0 < q < 1 for q in value) or len(set(value)) != len(value):
                raise ValueError(f"quantile levels must be distinct and lie strictly between "
                                 f"0 and 1: {value}")
            return sorted(value)

    @property
    def supports_quantiles(self) -> bool:
        return bool(self.config.quantiles)

    @property
    def min_history(self) -> int:
        return 2  # one origin and one target period

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"max_rounds": 40}

    def _design(self, history: Panel, target_steps: range | None,
                horizon: int) -> tuple[pl.DataFrame, np.ndarray, dict[str, np.ndarray]]:
        """Rows of (features, target) for training (``target_steps`` given) or the origin rows
        for prediction. Returns the keys, the feature matrix and side arrays."""
        wide = to_wide(history)
        features = origin_features(wide)
        n_periods = wide.y.shape[1]
        # Predicting reads covariates of the forecast periods too.
        periods = extend_periods(wide.periods, history.freq,
                                 horizon if target_steps is None else 0)
        future = periods_after(wide.periods[-1], history.freq, horizon).to_numpy()
        cube = self._cube(history, wide, periods)
        market_code = wide.keys["market"].replace_strict(
            self._markets, default=-1, return_dtype=pl.Int64).to_numpy().astype(float)
        has_history = features["age"] >= 1
        rows_s, rows_t, rows_h, targets, calendars = [], [], [], [], []
        if target_steps is not None:
            calendar = calendar_features(wide.periods, history.freq)
            # A history of n periods has targets 1..n-1 steps after an origin, no further.
            for h in (h for h in target_steps if h < n_periods):
                usable = has_history[:, : n_periods - h] & ~np.isnan(wide.y[:, h:])
                s_idx, t_idx = np.nonzero(usable)
                rows_s.append(s_idx)
                rows_t.append(t_idx)
                rows_h.append(np.full(len(s_idx), h))
                targets.append(wide.y[s_idx, t_idx + h])
                calendars.append({k: v[t_idx + h] for k, v in calendar.items()})
        else:
            calendar = calendar_features(future, history.freq)
            last = n_periods - 1
            s_all = np.nonzero(has_history[:, last])[0]
            for h in range(1, horizon + 1):
                rows_s.append(s_all)
                rows_t.append(np.full(len(s_all), last))
                rows_h.append(np.full(len(s_all), h))
                calendars.append({k: np.full(len(s_all), v[h - 1]) for k, v in calendar.items()})
        s_idx, t_idx, h_idx = map(np.concatenate, (rows_s, rows_t, rows_h))
        columns = {name: values[s_idx, t_idx] for name, values in features.items()}
        # Shop-wide momentum: recent vs longer-run demand over all series at the origin.
        with np.errstate(invalid="ignore", divide="ignore"):
            momentum = (np.nanmean(features["mean_4"], axis=0)
                        / np.nanmean(features["mean_13"], axis=0))
        columns["shop_momentum"] = momentum[t_idx]
        scale = np.nan_to_num(columns["mean_13"]) + 1.0
        if self.params["target_scaling"]:
            for name in columns:
                if name.startswith(LEVEL_FEATURES):
                    columns[name] = columns[name] / scale
        columns["level"] = scale
        columns["step"] = h_idx.astype(float)
        for name in calendars[0]:
            columns[name] = np.concatenate([c[name] for c in calendars])
        columns["market"] = market_code[s_idx]
        if cube is not None:
            columns.update(_covariate_columns(cube, s_idx, t_idx, h_idx))
        self._feature_names = list(columns)
        matrix = np.column_stack([columns[name] for name in self._feature_names])
        side = {"target": np.concatenate(targets) if targets else np.empty(0), "scale": scale,
                "target_index": t_idx + h_idx, "step": h_idx}
        keys = wide.keys[s_idx]
        if target_steps is None:
            keys = keys.with_columns(pl.Series("timestamp", future[h_idx - 1]))
        return keys, matrix, side

    def _cube(self, panel: Panel, wide: WidePanel, periods: np.ndarray) -> Covariates | None:
        """The covariates of ``wide``'s series over ``periods``."""
        if not self.config.covariates:
            return None
        cube = covariate_cube(panel, wide.keys, periods, self._covariate_scale)
        if self._covariate_names is None:  # fitting: these are the model's channels
            self._covariate_names = cube.names
        elif cube.names != self._covariate_names:
            raise InputError(f"model 'lightgbm' was trained with the covariates "
                             f"{self._covariate_names}; the data given has {cube.names}: give "
                             f"the same events, sales covariates and exogenous tables")
        return cube if cube.width else None

    def _fit(self, panel: Panel) -> None:
        self._markets = {m: i for i, m in enumerate(sorted(panel.data["market"].unique()))}
        self._covariate_scale = fit_exogenous_scale(panel) if self.config.covariates else {}
        self._covariate_names: list[str] | None = None
        horizon = int(self.params["horizon"])
        _, matrix, side = self._design(panel, range(1, horizon + 1), horizon)
        validation = ValidationPeriods(panel.data["timestamp"].n_unique(), horizon)
        is_validation = validation.is_validation(side["target_index"])
        label, weight = side["target"], None
        if self.params["target_scaling"]:
            label, weight = label / side["scale"], side["scale"]
        extra = ({"tweedie_variance_power": self.config.tweedie_variance_power}
                 if self.config.booster_objective == "tweedie" else {})
        self._booster, probed = fit_booster_probed(
            booster_params(self.config, **extra), self.config, matrix, label, is_validation,
            feature_names=self._feature_names, categorical=["market"], weight=weight)
        self._residual_quantiles = self._error_quantiles(side, is_validation, probed, horizon)
        periods = panel.data["timestamp"].n_unique()
        if horizon >= periods:
            later = (f"step {horizon} uses" if periods == horizon
                     else f"steps {periods}-{horizon} use")
            self._notes.append(f"{periods} periods of history: trained on steps 1-{periods - 1} "
                               f"ahead only; {later} what step {periods - 1} learned")

    def _error_quantiles(self, side: dict[str, np.ndarray], is_validation: np.ndarray,
                         probed: np.ndarray | None, horizon: int) -> dict[str, list[float]]:
        """Per level and step, the quantile of (actual - forecast) / series level over the
        validation rows, as forecast by the model that never saw them. Empirical quantiles
        rather than a quantile booster per level: one fit serves every level and the quantiles
        describe the very point forecast they sit beside. Levels whose column would repeat
        y_pred (0.5 of a median model) are left out."""
        self._notes = []
        levels = [q for q in self.config.quantiles
                  if not (q == 0.5 and self.config.point == "median")]
        if not levels:
            return {}
        if probed is None:
            self._notes.append("no quantiles: without early stopping on a validation part "
                               "there are no out-of-sample errors to draw them from")
            return {}
        scale = side["scale"][is_validation]
        forecast = probed * scale if self.params["target_scaling"] else probed
        error = (side["target"][is_validation] - forecast) / scale
        step = side["step"][is_validation]
        return {quantile_name(level): [float(np.quantile(error[step == h], level))
                              if (step == h).any() else 0.0 for h in range(1, horizon + 1)]
                for level in levels}

    def _predict(self, horizon: int, history: Panel, series: pl.DataFrame) -> pl.DataFrame:
        if horizon > int(self.params["horizon"]):
            raise InputError(f"model 'lightgbm' was trained for horizons up to "
                             f"{self.params['horizon']}, asked for {horizon}; set its "
                             f"'horizon' parameter")
        keys, matrix, side = self._design(history, None, horizon)
        predictions = self._booster.predict(matrix)
        if self.params["target_scaling"]:
            predictions = predictions * side["scale"]
        frame = keys.with_columns(pl.Series("y_pred", predictions, dtype=pl.Float64))
        for column, by_step in self._residual_quantiles.items():
            offset = np.asarray(by_step)[side["step"] - 1] * side["scale"]
            frame = frame.with_columns(pl.Series(column, np.maximum(predictions + offset, 0.0)))
        return frame.join(series, on=SERIES_KEY, how="semi")

    @property
    def has_feature_importance(self) -> bool:
        return self._fitted

    @property
    def booster(self) -> lgb.Booster:
        """The fitted booster (its trees, rounds and LightGBM's own importances)."""
        return self._booster

    @property
    def feature_names(self) -> list[str]:
        """The booster's feature columns, in the order of ``importance_design``'s matrix."""
        return list(self._feature_names)

    def importance_design(self, panel: Panel, horizon: int) -> tuple[np.ndarray, dict[str,
                                                                                   np.ndarray]]:
        """The training design of ``panel`` for steps 1..``horizon``: the feature matrix and
        its side arrays (``target``, ``target_index``, ``step``, ``scale``), so permutation
        importance can score shuffled copies with ``predict_design``."""
        _, matrix, side = self._design(self.prepared(panel), range(1, horizon + 1), horizon)
        return matrix, side

    def predict_design(self, matrix: np.ndarray, scale: np.ndarray | float) -> np.ndarray:
        """Units forecast for rows of ``importance_design``'s matrix (``scale``: the rows'
        ``scale`` side array; ignored unless the target is level-scaled), clipped at 0."""
        predictions = self._booster.predict(matrix)
        if self.params["target_scaling"]:
            predictions = predictions * scale
        return np.clip(predictions, 0.0, None)

    def _save_state(self, folder: Path) -> None:
        self._booster.save_model(str(folder / "booster.txt"))
        (folder / "lightgbm.json").write_text(json.dumps(
            {"markets": self._markets, "features": self._feature_names,
             "covariate_scale": self._covariate_scale,
             "covariate_names": self._covariate_names,
             "residual_quantiles": self._residual_quantiles}))

    def _load_state(self, folder: Path) -> None:
        state = json.loads((folder / "lightgbm.json").read_text())
        self._markets = state["markets"]
        self._feature_names = state["features"]
        self._covariate_scale = state["covariate_scale"]
        self._covariate_names = state["covariate_names"]
        self._residual_quantiles = state.get("residual_quantiles", {})  # absent before quantiles
        self._booster = lgb.Booster(model_file=str(folder / "booster.txt"))


def _covariate_columns(cube: Covariates, s_idx: np.ndarray, t_idx: np.ndarray,
                       h_idx: np.ndarray) -> dict[str, np.ndarray]:
    """Each channel at the origin; each future-known one also at the target period and as its
    change from the origin (a what-if price of period t+h reaches step h's row only)."""
    columns = {}
    for index, name in enumerate(cube.names):
        label = "cov_" + re.sub(r"[^0-9A-Za-z_]", "_", name)
        at_origin = cube.values[s_idx, t_idx, index]
        columns[label] = at_origin
        if cube.future_known[index]:
            at_target = cube.values[s_idx, t_idx + h_idx, index]
            columns[f"{label}_at_target"] = at_target
            columns[f"{label}_change"] = at_target - at_origin
    return columns
