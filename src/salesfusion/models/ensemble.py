"""Registered ensembles of registered models, weighted on a validation part of their own
training panel only.

Both validate on ``validation_folds`` parts of the training panel, pooled, never one slice.
``ensemble`` (series with history) holds out the training panel's last ``horizon`` periods, then
the ``horizon`` before them, and so on (as many as the members' history allows), fits every
member on the periods before each part and forecasts its periods of every series.
``launch_ensemble`` (launches) holds out launch cohorts (``data.launch_folds``): the
latest-launched ``validation_share`` of the items launched in its training panel, then the share
before them, and so on, each split as the launch protocol splits (no row of a held-out item and
no row at or after its cohort's first launch is fitted on); when the launches fall on too few
dates to roll (a range launched on one date), the launched items dealt into groups, each held out
in turn. It fits every member on the rest and forecasts the held-out launches' first
``horizon`` periods. With nothing to weigh on (a panel without launches), the ensemble uses its
``fallback_member`` alone, or equal weights without one, and a warning note says which.

Both then pick the convex weights, on a grid of step ``weight_step`` that includes each member
alone (so the ensemble never scores worse than its best member on that part), with the lowest
score by ``metric`` (``scoring.selection``: ``rmsse`` by default, ``wape``, ``mae``,
``bias_abs`` or ``pinball``) over the held-out observations, refit the members on the whole
panel and forecast
the weighted sum of theirs (and of the quantile columns every member gives). The weights never
see the periods a backtest scores: they come from the training panel alone. Members that take a
``seed`` get the ensemble's; members that take a ``horizon`` get it.

RMSSE scales each held-out series by its ``rmsse_scale``: a series with history by its own (the
backtest's ``origin_context`` of the part the members were fitted on), a launch by its market's
launch scale (the launch backtest's ``launch_scale``). An ensemble saved before ``metric``
existed was weighted by WAPE and loads as ``metric: wape``.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field, field_validator, model_validator

from salesfusion.data.forecast_frame import quantile_columns
from salesfusion.data.launch_folds import launch_folds
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.models.base import Forecaster
from salesfusion.models.config import ModelConfig, PointForecast
from salesfusion.models.registry import create_model, model_class, register
from salesfusion.scoring.scales import launch_scale, origin_context
from salesfusion.scoring.selection import (
    DEFAULT_METRIC,
    METRIC_HELP,
    MetricUnavailable,
    SelectionMetric,
    metric_label,
    selection_score,
)

KEYS = [*SERIES_KEY, "timestamp"]
FOLD = "_fold"  # which validation part a held-out row belongs to


class EnsembleConfig(ModelConfig):
    members: list[str] = Field(["lightgbm", "multimodal"], min_length=1,
                               description="Registered models to combine.")
    horizon: int = Field(4, ge=1, description=(
        "Periods the weights are chosen on (and passed to members that take a horizon)."))
    weight_step: float = Field(0.1, gt=0, le=0.5, description="Grid step of the weights.")
    seed: int = Field(0, description="Passed to the members that take a seed.")
    metric: SelectionMetric = Field(DEFAULT_METRIC, description=METRIC_HELP)
    validation_folds: int = Field(3, ge=1, description=(
        "Validation parts the weights are chosen on, pooled (1: the latest part alone)."))
    fallback_member: str | None = Field(None, description=(
        "The member used alone when there is nothing to weigh on (no validation part, or the "
        "metric undefined on it); None: equal weights. Either way the notes warn."))

    @model_validator(mode="after")
    def _fallback_is_a_member(self) -> EnsembleConfig:
        if self.fallback_member is not None and self.fallback_member not in self.members:
            raise ValueError(f"fallback_member '{self.fallback_member}' is not one of the "
                             f"members {self.members}")
        return self

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

    @property
    def point(self) -> PointForecast:
        # A weighted mean of means is a mean; one median member makes the blend no mean (it is
        # then reported as the median-like forecast it leans to).
        return "mean" if all(m.point == "mean" for m in self._members()) else "median"

    @property
    def supports_quantiles(self) -> bool:
        # The quantile columns every member gives are combined like y_pred.
        return all(m.supports_quantiles for m in self._members())

    def _validation(self, panel: Panel) -> tuple[list[pl.DataFrame], pl.DataFrame, str] | None:
        """Each member's held-out forecasts (``y_pred`` and quantiles, row-aligned with the
        held-out part), the held-out part (keys, ``y_true``, ``rmsse_scale``), and what the part
        was; None when the panel has no part to hold out."""
        raise NotImplementedError

    def _choose_weights(self, panel: Panel) -> np.ndarray:
        members, metric = self.config.members, self.config.metric
        if metric == "pinball" and not self.supports_quantiles:
            lacking = [m.name for m in self._members() if not m.supports_quantiles]
            raise MetricUnavailable(f"{self.name}: metric pinball needs quantile forecasts "
                                    f"but member(s) {', '.join(lacking)} give none; set "
                                    f"another metric or members that forecast quantiles")
        found = self._validation(panel)
        if found is None:
            return self._unweighed("nothing to weigh the members on")
        forecasts, held, part = found
        if metric == "rmsse" and held["rmsse_scale"].drop_nulls().is_empty():
            # No series of the part has a scale (launches in markets without a training
            # launch): say so rather than fail the fit; WAPE needs no scale.
            self._notes.append(f"no RMSSE scale for {part}: weights chosen by WAPE instead")
            metric = "wape"
        columns = [c for c in forecasts[0].columns if all(c in f.columns for f in forecasts)]
        stacked = {c: np.column_stack([f[c].to_numpy() for f in forecasts]) for c in columns}
        best, best_score = None, np.inf
        for weights in _simplex(len(members), self.config.weight_step):
            combined = held.with_columns(pl.Series(c, stacked[c] @ weights) for c in columns)
            score = selection_score(combined, metric, f"{self.name}'s members' forecasts")
            if score is not None and score < best_score - 1e-12:
                best, best_score = weights, score
        if best is None:  # undefined on every grid point (e.g. every actual 0 for WAPE)
            return self._unweighed(f"{metric_label(metric)} undefined on {part}")
        label = metric_label(metric)
        spread = _fold_scores(held.with_columns(pl.Series(c, stacked[c] @ best)
                                                for c in columns), metric, self.name)
        self._notes.append(f"weights {dict(zip(members, np.round(best, 3).tolist(), strict=True))}"
                           f" chosen on {part} by {label} ({label} {best_score:.4g}{spread})")
        return best

    def _unweighed(self, why: str) -> np.ndarray:
        """The weights without a validation part to choose them on: the configured
        ``fallback_member`` alone, else equal weights; a warning note says which and why."""
        members, fallback = self.config.members, self.config.fallback_member
        if fallback is None:
            self._notes.append(f"warning: {why}: equal weights (set fallback_member to use "
                               f"one member alone)")
            return np.full(len(members), 1 / len(members))
        self._notes.append(f"warning: {why}: member '{fallback}' alone (fallback_member)")
        return np.array([float(name == fallback) for name in members])

    def _fit(self, panel: Panel) -> None:
        self._notes: list[str] = []
        self._weights = self._choose_weights(panel)
        self._fitted_members = [m.fit(panel) for m in self._members()]
        for member in self._fitted_members:
            self._notes += [f"{member.name}: {note}" for note in member.notes]

    def _combine(self, forecasts: list[pl.DataFrame]) -> pl.DataFrame:
        # Quantiles are averaged level by level (Vincentization) where every member gives the
        # level: the combined band is what pinball-weighted members promise.
        shared = [q for q in quantile_columns(forecasts[0].columns)
                  if all(q in f.columns for f in forecasts)]
        values = ["y_pred", *shared]
        combined = forecasts[0].select(*KEYS, *(pl.col(c) * self._weights[0] for c in values))
        for weight, forecast in zip(self._weights[1:], forecasts[1:], strict=True):
            combined = combined.join(
                forecast.select(*KEYS, *(pl.col(c).alias(f"_m{c}") for c in values)),
                on=KEYS, how="left").with_columns(
                pl.col(c) + weight * pl.col(f"_m{c}").fill_null(0.0) for c in values
            ).drop(f"_m{c}" for c in values)
        return combined

    def _predict(self, horizon: int, history: Panel, series: pl.DataFrame) -> pl.DataFrame:
        return self._combine([m.predict(horizon, history=history, series=series)
                              for m in self._fitted_members])

    def _save_state(self, folder: Path) -> None:
        for index, member in enumerate(self._fitted_members):
            member.save(folder / f"member_{index}")
        (folder / "ensemble.json").write_text(json.dumps(
            {"weights": self._weights.tolist(), "notes": self._notes,
             "metric": self.config.metric}))

    def _load_state(self, folder: Path) -> None:
        state = json.loads((folder / "ensemble.json").read_text())
        self._weights, self._notes = np.array(state["weights"]), state["notes"]
        # Saved before the metric was configurable: its weights were chosen by WAPE.
        self.config = self.config.model_copy(update={"metric": state.get("metric", "wape")})
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
        horizon, periods = self.config.horizon, panel.periods
        needed = max(m.min_history for m in self._members())
        parts = []
        for fold in range(self.config.validation_folds):
            end = len(periods) - fold * horizon  # the part is periods[end - horizon:end]
            if fold and end - horizon < needed:
                break  # too little history before this part for the members
            train = panel.until(periods[end - horizon - 1])
            held = (panel.data.filter(pl.col("timestamp").is_between(periods[end - horizon],
                                                                      periods[end - 1]))
                    .join(origin_context(train).select(*SERIES_KEY, "rmsse_scale"),
                          on=SERIES_KEY, how="inner")
                    .select(*KEYS, pl.col("y").cast(pl.Float64).alias("y_true"),
                            "rmsse_scale", pl.lit(fold).alias(FOLD)))
            parts.append((held, [_aligned(held, member.fit(train).predict(horizon,
                                                                         history=train))
                                 for member in self._members()]))
        what = (f"the last {horizon} periods" if len(parts) == 1 else
                f"the last {len(parts)} runs of {horizon} periods")
        return _pooled(parts, what)


@register
class LaunchEnsemble(_WeightedEnsemble):
    """Weighted launch-model ensemble; weights chosen on the latest launches of its training
    panel."""

    name = "launch_ensemble"
    supports_cold_start = True
    supports_launch = True

    class Config(EnsembleConfig):
        members: list[str] = Field(
            ["multimodal_launch", "lightgbm_launch", "mean_launch_curve"], min_length=1,
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
        return {"members": ["mean_launch_curve", "lightgbm_launch"]}

    def _validation(self, panel: Panel) -> tuple[list[np.ndarray], np.ndarray, str] | None:

        c = self.config
        folds, how = launch_folds(panel, c.horizon, c.validation_share, c.validation_folds,
                                  c.seed)
        if not folds:
            self._notes.append(f"no validation launches: {how}")
            return None
        parts = []
        for index, fold in enumerate(folds):
            held = (fold.actuals.join(launch_scale(fold.fit, c.horizon), on="market",
                                      how="left")
                    .select(*KEYS, pl.col("y").cast(pl.Float64).alias("y_true"),
                            pl.col("rmsse_scale").cast(pl.Float64), pl.lit(index).alias(FOLD)))
            parts.append((held, [_aligned(held, member.fit(fold.fit).predict_launch(
                fold.launches, c.horizon, history=fold.fit)) for member in self._members()]))
        launches = sum(fold.launches.height for fold in folds)
        return _pooled(parts, f"{launches} validation launches in {how}")

    def _predict_launch(self, grid: pl.DataFrame, history: Panel) -> pl.DataFrame:
        horizon = int(grid["period_since_launch"].max())
        launches = grid.select(*SERIES_KEY, "launch").unique(maintain_order=True)
        forecasts = [m.predict_launch(launches, horizon, history=history)
                     for m in self._fitted_members]
        return grid.join(self._combine(forecasts), on=KEYS, how="left")


def _pooled(parts: list[tuple[pl.DataFrame, list[pl.DataFrame]]], what: str
            ) -> tuple[list[pl.DataFrame], pl.DataFrame, str] | None:
    """The validation parts' held-out rows and each member's forecasts of them, stacked."""
    if not parts:
        return None
    held = pl.concat([h for h, _ in parts])
    members = len(parts[0][1])
    return ([pl.concat([forecasts[m] for _, forecasts in parts]) for m in range(members)],
            held, what)


def _fold_scores(combined: pl.DataFrame, metric: SelectionMetric, owner: str) -> str:
    """The chosen weights' score on each validation part, as ``; per part a-b`` (empty for
    one part): how much the choice moves from part to part."""
    scores = [selection_score(part, metric, f"{owner}'s members' forecasts")
              for _, part in combined.group_by(FOLD, maintain_order=True)]
    scores = [s for s in scores if s is not None]
    if len(scores) < 2:
        return ""
    return f"; per part {min(scores):.4g}-{max(scores):.4g} over {len(scores)}"


def _aligned(held: pl.DataFrame, forecast: pl.DataFrame) -> pl.DataFrame:
    """A member's ``y_pred`` and quantile columns on the held-out rows, in their order: a
    missing forecast counts as 0 and demand is clipped at 0, as a backtest scores it."""
    values = ["y_pred", *quantile_columns(forecast.columns)]
    return (held.select(KEYS).join(forecast.select(*KEYS, *values), on=KEYS, how="left",
                                   maintain_order="left")
            .select(pl.col(values).cast(pl.Float64).fill_null(0.0).clip(lower_bound=0.0)))


def _simplex(size: int, step: float) -> list[np.ndarray]:
    """Every weight vector of ``size`` non-negative multiples of ``step`` summing to 1."""
    units = round(1 / step)
    return [np.array(parts, dtype=float) / units
            for parts in itertools.product(range(units + 1), repeat=size)
            if sum(parts) == units]
