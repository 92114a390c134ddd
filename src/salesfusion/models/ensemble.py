"""A registered ensemble of launch-anchored models, weighted on a validation part only.

``launch_ensemble`` holds out the latest-launched ``validation_share`` of the items launched in
its training panel (the launch protocol's split, inside ``fit``: no row of a held-out item and
no row at or after its first launch is fitted on), fits every member on the rest, forecasts the
held-out launches' first ``horizon`` periods and picks the convex weights, on a grid of step
``weight_step``, with the lowest WAPE over their observed periods. The members are then refit on
the whole panel and the forecast is the weighted sum of theirs. The weights never see the
periods a backtest scores: they come from the training panel alone. A panel without launches
(every series starts at its first period) gives equal weights, and a note says so.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field, field_validator

from salesfusion.data.launches import with_period_since_launch
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.errors import InputError
from salesfusion.models.base import Forecaster
from salesfusion.models.config import ModelConfig
from salesfusion.models.registry import create_model, model_class, register


@register
class LaunchEnsemble(Forecaster):
    """Weighted launch-model ensemble; weights chosen on the latest launches of its training
    panel."""

    name = "launch_ensemble"
    supports_cold_start = True
    supports_launch = True

    class Config(ModelConfig):
        members: list[str] = Field(
            ["multimodal_launch", "lightgbm_launch", "median_launch_curve"], min_length=1,
            description="Registered launch-anchored models to combine.")
        horizon: int = Field(8, ge=1, description=(
            "Periods from launch the weights are chosen on (and passed to members that take "
            "a horizon)."))
        validation_share: float = Field(0.2, gt=0, lt=1, description=(
            "Share of the training panel's launched items, the latest, held out to weigh."))
        weight_step: float = Field(0.1, gt=0, le=0.5, description="Grid step of the weights.")
        seed: int = Field(0, description="Passed to the members that take a seed.")

        @field_validator("members")
        @classmethod
        def _launch_members(cls, value: list[str]) -> list[str]:
            for name in value:
                if not model_class(name).supports_launch:  # unknown names raise here too
                    raise ValueError(f"member '{name}' cannot forecast from a launch date")
                if name == "launch_ensemble":
                    raise ValueError("an ensemble cannot hold itself")
            if len(set(value)) != len(value):
                raise ValueError(f"members are listed twice: {value}")
            return value

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"members": ["median_launch_curve", "lightgbm_launch"]}

    def _members(self) -> list[Forecaster]:
        c = self.config
        members = []
        for name in c.members:
            fields = model_class(name).Config.model_fields
            params = {"seed": c.seed} if "seed" in fields else {}
            members.append(create_model(name, horizon=c.horizon if "horizon" in fields
                                        else None, **params))
        return members

    # --- weights ------------------------------------------------------------------------------
    def _choose_weights(self, panel: Panel) -> np.ndarray:
        from salesfusion.evaluation.launch import LaunchProtocol

        c = self.config
        protocol = LaunchProtocol(horizon=c.horizon, test_fraction=c.validation_share,
                                  min_observed=1)
        try:
            split = protocol.split(panel, protocol.cutoff_periods(panel)[0])
        except InputError as exc:
            self._notes.append(f"no validation launches ({exc}): equal weights")
            return np.full(len(c.members), 1 / len(c.members))
        train = split.fit_panel(panel)
        actuals = (with_period_since_launch(panel.data.join(split.test_series, on=SERIES_KEY,
                                                            how="semi"))
                   .filter(pl.col("period_since_launch") <= c.horizon)
                   .select(*SERIES_KEY, "timestamp", "y"))
        forecasts = []
        for member in self._members():
            forecast = member.fit(train).predict_launch(split.test_series, c.horizon,
                                                        history=train)
            forecasts.append(actuals.join(forecast, on=[*SERIES_KEY, "timestamp"], how="left")
                             ["y_pred"].fill_null(0.0).clip(0).to_numpy())
        stacked, truth = np.column_stack(forecasts), actuals["y"].to_numpy()
        best, best_wape = None, np.inf
        for weights in _simplex(len(forecasts), c.weight_step):
            wape = np.abs(truth - stacked @ weights).sum() / max(np.abs(truth).sum(), 1e-9)
            if wape < best_wape - 1e-12:
                best, best_wape = weights, wape
        self._notes.append(
            f"weights {dict(zip(c.members, np.round(best, 3).tolist(), strict=True))} chosen "
            f"on {split.test_series.height} validation launches (WAPE {100 * best_wape:.2f})")
        return best

    # --- fit / predict ------------------------------------------------------------------------
    def _fit(self, panel: Panel) -> None:
        self._notes: list[str] = []
        self._weights = self._choose_weights(panel)
        self._fitted_members = [m.fit(panel) for m in self._members()]

    def _combine(self, forecasts: list[pl.DataFrame], keys: list[str]) -> pl.DataFrame:
        combined = forecasts[0].select(*keys, (pl.col("y_pred") * self._weights[0]))
        for weight, forecast in zip(self._weights[1:], forecasts[1:], strict=True):
            combined = combined.join(forecast.select(*keys, pl.col("y_pred").alias("_m")),
                                     on=keys, how="left").with_columns(
                pl.col("y_pred") + weight * pl.col("_m").fill_null(0.0)).drop("_m")
        return combined

    def _predict_launch(self, grid: pl.DataFrame, history: Panel) -> pl.DataFrame:
        horizon = int(grid["period_since_launch"].max())
        launches = grid.select(*SERIES_KEY, "launch").unique(maintain_order=True)
        forecasts = [m.predict_launch(launches, horizon, history=history)
                     for m in self._fitted_members]
        keys = [*SERIES_KEY, "timestamp"]
        return grid.join(self._combine(forecasts, keys), on=keys, how="left")

    def _predict(self, horizon: int, history: Panel, series: pl.DataFrame) -> pl.DataFrame:
        forecasts = [m.predict(horizon, history=history, series=series)
                     for m in self._fitted_members]
        return self._combine(forecasts, [*SERIES_KEY, "timestamp"])

    # --- persistence --------------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        for index, member in enumerate(self._fitted_members):
            member.save(folder / f"member_{index}")
        (folder / "ensemble.json").write_text(json.dumps(
            {"weights": self._weights.tolist(), "notes": self._notes}))

    def _load_state(self, folder: Path) -> None:
        state = json.loads((folder / "ensemble.json").read_text())
        self._weights, self._notes = np.array(state["weights"]), state["notes"]
        self._fitted_members = [Forecaster.load(folder / f"member_{i}")
                                for i in range(len(self.config.members))]


def _simplex(size: int, step: float) -> list[np.ndarray]:
    """Every weight vector of ``size`` non-negative multiples of ``step`` summing to 1."""
    units = round(1 / step)
    return [np.array(parts, dtype=float) / units
            for parts in itertools.product(range(units + 1), repeat=size)
            if sum(parts) == units]
