"""Registered ensembles of registered models, weighted on a validation part of their own
training panel only.

``ensemble`` (series with history) holds out the training panel's last ``horizon`` periods, fits
every member on the periods before them and forecasts the held-out periods of every series.
``launch_ensemble`` (launches) holds out the latest-launched ``validation_share`` of the items
launched in its training panel (the launch protocol's split, inside ``fit``: no row of a
held-out item and no row at or after its first launch is fitted on), fits every member on the
rest and forecasts the held-out launches' first ``horizon`` periods; a panel without launches
(every series starts at its first period) gives equal weights, and a note says so.

Both then pick the convex weights, on a grid of step ``weight_step``, with the lowest WAPE over
the held-out observations, refit the members on the whole panel and forecast the weighted sum of
theirs. The weights never see the periods a backtest scores: they come from the training panel
alone. Members that take a ``seed`` get the ensemble's; members that take a ``horizon`` get it.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field, field_validator

from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.errors import InputError
from salesfusion.models.base import Forecaster
from salesfusion.models.config import ModelConfig
from salesfusion.models.registry import create_model, model_class, register

KEYS = [*SERIES_KEY, "timestamp"]


class EnsembleConfig(ModelConfig):
    members: list[str] = Field(["lightgbm", "multimodal"], min_length=1,
                               description="Registered models to combine.")
    horizon: int = Field(4, ge=1, description=(
        "Periods the weights are chosen on (and passed to members that take a horizon)."))
    weight_step: float = Field(0.1, gt=0, le=0.5, description="Grid step of the weights.")
    seed: int = Field(0, description="Passed to the members that take a seed.")

    @field_validator("members")
    @classmethod
    def _distinct_members(cls, value: list[str]) -> list[str]:
        for name in value:
            model_class(name)  # an unknown name is an error listing the registered models
            if issubclass(model_class(name), _WeightedEnsemble):
                raise ValueError(f"member '{name}' is an ensemble: ensembles do not nest")
        if len(set(value)) != len(value):
            raise ValueError(f"members are listed twice: {value}")
        return value


class _WeightedEnsemble(Forecaster):
    """Shared machinery: members, weight search, combination and persistence."""

    Config = EnsembleConfig

    def _members(self) -> list[Forecaster]:
        c = self.config
        members = []
        for name in c.members:
            fields = model_class(name).Config.model_fields
            params = {"seed": c.seed} if "seed" in fields else {}
            members.append(create_model(name, horizon=c.horizon if "horizon" in fields
                                        else None, **params))
        return members

    def _validation(self, panel: Panel) -> tuple[list[np.ndarray], np.ndarray, str] | None:
        """Each member's held-out forecasts aligned with the held-out actuals, and what the
        part was; None when the panel has no part to hold out."""
        raise NotImplementedError

    def _choose_weights(self, panel: Panel) -> np.ndarray:
        members = self.config.members
        found = self._validation(panel)
        if found is None:
            return np.full(len(members), 1 / len(members))
        forecasts, truth, part = found
        stacked = np.column_stack(forecasts)
        best, best_wape = None, np.inf
        for weights in _simplex(len(members), self.config.weight_step):
            wape = np.abs(truth - stacked @ weights).sum() / max(np.abs(truth).sum(), 1e-9)
            if wape < best_wape - 1e-12:
                best, best_wape = weights, wape
        self._notes.append(f"weights {dict(zip(members, np.round(best, 3).tolist(), strict=True))}"
                           f" chosen on {part} (WAPE {100 * best_wape:.2f})")
        return best

    def _fit(self, panel: Panel) -> None:
        self._notes: list[str] = []
        self._weights = self._choose_weights(panel)
        self._fitted_members = [m.fit(panel) for m in self._members()]
        for member in self._fitted_members:
            self._notes += [f"{member.name}: {note}" for note in member.notes]

    def _combine(self, forecasts: list[pl.DataFrame]) -> pl.DataFrame:
        combined = forecasts[0].select(*KEYS, pl.col("y_pred") * self._weights[0])
        for weight, forecast in zip(self._weights[1:], forecasts[1:], strict=True):
            combined = combined.join(forecast.select(*KEYS, pl.col("y_pred").alias("_m")),
                                     on=KEYS, how="left").with_columns(
                pl.col("y_pred") + weight * pl.col("_m").fill_null(0.0)).drop("_m")
        return combined

    def _predict(self, horizon: int, history: Panel, series: pl.DataFrame) -> pl.DataFrame:
        return self._combine([m.predict(horizon, history=history, series=series)
                              for m in self._fitted_members])

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


@register
class Ensemble(_WeightedEnsemble):
    """Weighted ensemble of models of series with history; weights chosen on the training
    panel's last ``horizon`` periods."""

    name = "ensemble"

    @property
    def min_history(self) -> int:
        # The members fit on the panel without its last horizon periods first.
        return self.config.horizon + max(m.min_history for m in self._members())

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"members": ["naive", "moving_average"]}

    def _validation(self, panel: Panel) -> tuple[list[np.ndarray], np.ndarray, str] | None:
        horizon = self.config.horizon
        start = panel.periods[-horizon]
        train = panel.until(panel.periods[-horizon - 1])
        held = panel.data.filter(pl.col("timestamp") >= start).join(
            train.data.select(SERIES_KEY).unique(), on=SERIES_KEY, how="semi")
        forecasts = []
        for member in self._members():
            forecast = member.fit(train).predict(horizon, history=train)
            forecasts.append(held.join(forecast, on=KEYS, how="left")["y_pred"].fill_null(0.0)
                             .clip(0).to_numpy())
        return forecasts, held["y"].to_numpy(), f"the last {horizon} periods"


@register
class LaunchEnsemble(_WeightedEnsemble):
    """Weighted launch-model ensemble; weights chosen on the latest launches of its training
    panel."""

    name = "launch_ensemble"
    supports_cold_start = True
    supports_launch = True

    class Config(EnsembleConfig):
        members: list[str] = Field(
            ["multimodal_launch", "lightgbm_launch", "median_launch_curve"], min_length=1,
            description="Registered launch-anchored models to combine.")
        horizon: int = Field(8, ge=1, description=(
            "Periods from launch the weights are chosen on (and passed to members that take "
            "a horizon)."))
        validation_share: float = Field(0.2, gt=0, lt=1, description=(
            "Share of the training panel's launched items, the latest, held out to weigh."))

        @field_validator("members")
        @classmethod
        def _launch_members(cls, value: list[str]) -> list[str]:
            for name in value:
                if not model_class(name).supports_launch:
                    raise ValueError(f"member '{name}' cannot forecast from a launch date")
            return value

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"members": ["median_launch_curve", "lightgbm_launch"]}

    def _validation(self, panel: Panel) -> tuple[list[np.ndarray], np.ndarray, str] | None:
        from salesfusion.evaluation.launch import LaunchProtocol

        c = self.config
        protocol = LaunchProtocol(horizon=c.horizon, test_fraction=c.validation_share,
                                  min_observed=1)
        try:
            split = protocol.split(panel, protocol.cutoff_periods(panel)[0])
        except InputError as exc:
            self._notes.append(f"no validation launches ({exc}): equal weights")
            return None
        train = split.fit_panel(panel)
        actuals = split.test_actuals(panel, c.horizon)
        forecasts = []
        for member in self._members():
            forecast = member.fit(train).predict_launch(split.test_series, c.horizon,
                                                        history=train)
            forecasts.append(actuals.join(forecast, on=KEYS, how="left")["y_pred"]
                             .fill_null(0.0).clip(0).to_numpy())
        return (forecasts, actuals["y"].to_numpy(),
                f"{split.test_series.height} validation launches")

    def _predict_launch(self, grid: pl.DataFrame, history: Panel) -> pl.DataFrame:
        horizon = int(grid["period_since_launch"].max())
        launches = grid.select(*SERIES_KEY, "launch").unique(maintain_order=True)
        forecasts = [m.predict_launch(launches, horizon, history=history)
                     for m in self._fitted_members]
        return grid.join(self._combine(forecasts), on=KEYS, how="left")


def _simplex(size: int, step: float) -> list[np.ndarray]:
    """Every weight vector of ``size`` non-negative multiples of ``step`` summing to 1."""
    units = round(1 / step)
    return [np.array(parts, dtype=float) / units
            for parts in itertools.product(range(units + 1), repeat=size)
            if sum(parts) == units]
