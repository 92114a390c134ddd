"""Launch-curve references: what any new-product forecast must beat.

A launch curve is demand by period since launch (1 at a series' first period in the panel). Both
models learn curves at ``fit`` from the training series' first ``max_age`` periods (series that
start at the panel's first period are left out as left-censored whenever later launches exist,
see ``data.launches``); at each age a curve summarises the series observed at that age, and past
a curve's last age its last value holds.

- ``mean_launch_curve``: the mean per period since launch, per market for a market with at
  least ``min_series`` launched series, else the global curve (every market pooled).
- ``median_launch_curve``: the same with the median (a preset: ``point: median``).
- ``category_launch_curve``: the mean per period since launch per value of a static attribute
  (``attribute``; the first declared categorical one when not set; numeric values count as
  categories), pooled over markets; a value with fewer than ``min_series`` series, unseen in
  training or missing falls back to the global curve.

``point`` (every curve; ``mean`` unless preset) picks the summary, and so what ``y_pred`` is: the
mean curve's forecasts add up to the training launches' mean total, what a planner orders from;
the median is below it on skewed launches (most new items sell little, a few a lot), so it
minimises WAPE while under-forecasting the total.

``predict_launch`` forecasts a launch's periods by the curve at ages 1..H. The ordinary
``predict`` forecasts a series by the curve at its age in each forecast period (a series the
history lacks launches at the first forecast period), so the rolling backtest runs them too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl
from pydantic import Field

from salesfusion.data.frequency import periods_after
from salesfusion.data.launches import POOLED, launch_rows
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.errors import InputError
from salesfusion.models.base import Forecaster
from salesfusion.models.config import ModelConfig
from salesfusion.models.registry import register

GLOBAL = POOLED  # the pooled curve's group


class _LaunchCurve(Forecaster):
    """Shared machinery: curves as ``group, period_since_launch, value`` and their lookup."""

    supports_cold_start = True
    supports_launch = True
    reads_history = False  # forecasts from content or age, never the series' own sales

    class Config(ModelConfig):
        max_age: int = Field(52, ge=1, description="Periods since launch a curve covers.")
        min_series: int = Field(3, ge=1, description=(
            "Launched series a group needs for its own curve; fewer: the global curve."))
        point: Literal["mean", "median"] = Field("mean", description=(
            "What y_pred is: mean (expected demand; totals add up) or median (minimises "
            "absolute error, so WAPE, and lies below the mean on skewed launches)."))

    def _fit(self, panel: Panel) -> None:
        rows, launched = launch_rows(panel, int(self.params["max_age"]))
        self._notes = [] if launched else [
            "every series starts at the panel's first period: curves come from running series"]
        self._curves = self._learn(rows, panel)

    def _learn(self, rows: pl.DataFrame, panel: Panel) -> pl.DataFrame:
        raise NotImplementedError

    def _group_of(self, targets: pl.DataFrame, history: Panel) -> pl.DataFrame:
        """``targets`` with ``group``: the curve each series is forecast by."""
        raise NotImplementedError

    def _curve(self, rows: pl.DataFrame, by: list[str]) -> pl.DataFrame:
        value = pl.col("y").median() if self.params["point"] == "median" else pl.col("y").mean()
        keys = by or [pl.lit(GLOBAL).alias("group")]
        curves = rows.group_by(*keys, "period_since_launch").agg(value.alias("value"))
        if by:
            curves = curves.rename({by[0]: "group"})
        return curves.select(pl.col("group").cast(pl.String), "period_since_launch", "value")

    def _lookup(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` (``group, period_since_launch``) with ``y_pred``: the group's curve at that
        age, its last value past its end."""
        ends = self._curves.group_by("group").agg(pl.col("period_since_launch").max()
                                                  .alias("_end"))
        frame = frame.join(ends, on="group", how="left").with_columns(
            pl.min_horizontal("period_since_launch", "_end").alias("_age"))
        return frame.join(self._curves.rename({"period_since_launch": "_age", "value": "y_pred"}),
                          on=["group", "_age"], how="left").drop("_end", "_age")

    def _predict_launch(self, grid: pl.DataFrame, history: Panel) -> pl.DataFrame:
        return self._lookup(self._group_of(grid, history)).drop("group")

    def curve_values(self, rows: pl.DataFrame, history: Panel) -> np.ndarray:
        """The fitted curve's value for each of ``rows`` (``item_id, market,
        period_since_launch``), in their order: the reference a launch model corrects."""
        if not self._fitted:
            raise InputError(f"model '{self.name}' is not fitted")
        indexed = rows.select(*SERIES_KEY, "period_since_launch").with_row_index("_row")
        return (self._lookup(self._group_of(indexed, history)).sort("_row")["y_pred"]
                .fill_null(0.0).to_numpy().astype(float))

    def _predict(self, horizon: int, history: Panel, series: pl.DataFrame) -> pl.DataFrame:
        ages = history.data.group_by(SERIES_KEY).agg(pl.len().cast(pl.Int64).alias("_seen"))
        future = periods_after(history.data["timestamp"].max(), history.freq, horizon)
        steps = pl.DataFrame({"timestamp": future,
                              "_step": pl.int_range(1, horizon + 1, eager=True)})
        grid = (series.join(ages, on=SERIES_KEY, how="left").join(steps, how="cross")
                .with_columns((pl.col("_seen").fill_null(0) + pl.col("_step"))
                              .alias("period_since_launch")))
        forecast = self._lookup(self._group_of(grid, history))
        return forecast.select(*SERIES_KEY, "timestamp", "y_pred")

    def _save_state(self, folder: Path) -> None:
        self._curves.write_parquet(folder / "curves.parquet")

    def _load_state(self, folder: Path) -> None:
        self._curves = pl.read_parquet(folder / "curves.parquet")


@register
class MeanLaunchCurve(_LaunchCurve):
    """Mean demand by period since launch, per market when it has enough launches."""

    name = "mean_launch_curve"

    def _learn(self, rows: pl.DataFrame, panel: Panel) -> pl.DataFrame:
        counts = rows.filter(pl.col("period_since_launch") == 1).group_by("market").len()
        own = counts.filter(pl.col("len") >= int(self.params["min_series"]))["market"]
        per_market = self._curve(rows.filter(pl.col("market").is_in(own.to_list())),
                                 ["market"])
        return pl.concat([self._curve(rows, []), per_market]).sort(
            "group", "period_since_launch")

    def _group_of(self, targets: pl.DataFrame, history: Panel) -> pl.DataFrame:
        known = self._curves["group"].unique().to_list()
        return targets.with_columns(pl.when(pl.col("market").is_in(known))
                                    .then(pl.col("market")).otherwise(pl.lit(GLOBAL))
                                    .alias("group"))


@register
class MedianLaunchCurve(MeanLaunchCurve):
    """Median demand by period since launch, per market when it has enough launches: the
    reference that minimises WAPE, kept beside the mean curve (same model, ``point: median``)."""

    name = "median_launch_curve"
    preset_params: ClassVar[dict[str, Any]] = {"point": "median"}


@register
class CategoryLaunchCurve(_LaunchCurve):
    """Mean demand by period since launch per value of a static attribute."""

    name = "category_launch_curve"

    class Config(_LaunchCurve.Config):
        attribute: str | None = Field(None, description=(
            "Items-table column whose values make the groups; the first static categorical "
            "attribute when not set."))

    @classmethod
    def test_params(cls) -> dict[str, object]:
        return {"attribute": "weight"}  # the conformance shop declares no categorical column

    def _fit(self, panel: Panel) -> None:
        attribute = self.params["attribute"] or next(iter(panel.static_categorical), None)
        if attribute is None:
            raise InputError("model 'category_launch_curve' needs a static attribute: declare "
                             "static_categorical in the dataset spec or set attribute=")
        if panel.items is None or attribute not in panel.items.columns:
            columns = [] if panel.items is None else panel.items.columns
            raise InputError(f"model 'category_launch_curve': attribute {attribute!r} is not a "
                             f"column of the items table (columns: {columns})")
        self._attribute = attribute
        self._categories = self._category_table(panel.items)
        super()._fit(panel)

    def _category_table(self, items: pl.DataFrame) -> pl.DataFrame:
        return items.select("item_id", pl.col(self._attribute).cast(pl.String)
                            .alias("category")).unique("item_id", keep="first").sort("item_id")

    def _learn(self, rows: pl.DataFrame, panel: Panel) -> pl.DataFrame:
        rows = rows.join(self._categories, on="item_id", how="left")
        counts = (rows.filter(pl.col("period_since_launch") == 1).drop_nulls("category")
                  .group_by("category").len())
        own = counts.filter(pl.col("len") >= int(self.params["min_series"]))["category"]
        per_category = self._curve(rows.filter(pl.col("category").is_in(own.to_list())),
                                   ["category"])
        # A category named like the pooled group would be read as it: keep them apart.
        per_category = per_category.with_columns((pl.lit("=") + pl.col("group")).alias("group"))
        return pl.concat([self._curve(rows, []), per_category]).sort(
            "group", "period_since_launch")

    def _group_of(self, targets: pl.DataFrame, history: Panel) -> pl.DataFrame:
        # Items added to the history's items table after fit (new launches) are looked up there.
        categories = self._categories
        if history.items is not None and self._attribute in history.items.columns:
            categories = pl.concat([self._category_table(history.items), categories]).unique(
                "item_id", keep="first")
        known = self._curves["group"].unique().to_list()
        group = pl.lit("=") + pl.col("category")
        return (targets.join(categories, on="item_id", how="left")
                .with_columns(pl.when(group.is_in(known)).then(group).otherwise(pl.lit(GLOBAL))
                              .alias("group")).drop("category"))

    def _save_state(self, folder: Path) -> None:
        super()._save_state(folder)
        self._categories.write_parquet(folder / "categories.parquet")
        (folder / "category.json").write_text(json.dumps({"attribute": self._attribute}))

    def _load_state(self, folder: Path) -> None:
        super()._load_state(folder)
        self._categories = pl.read_parquet(folder / "categories.parquet")
        self._attribute = json.loads((folder / "category.json").read_text())["attribute"]
