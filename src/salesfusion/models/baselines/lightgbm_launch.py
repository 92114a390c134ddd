"""The LightGBM launch reference: one global LightGBM that forecasts a launch from content.

Each training row is one period of a launched series (its first ``max_age`` periods, the series
chosen by the rule of ``data.launches.launch_rows``): the item's static attributes (categorical
ones as LightGBM categories, numeric ones as they are), a text embedding of its title and
description (a registered text encoder, ``tfidf`` by default, fitted on the items table), the
calendar of its launch period and of the forecast period, the market, the period since launch,
and the panel's covariates as a planner knows them at the launch
(``features.launch_covariates``: future-known channels and events in the forecast period,
past-only ones summarised over the ``pre_launch_periods`` before the launch); the target is that
period's units. Nothing of the series' own sales is a feature, so a product that has never sold
is forecast the same way as one in training. The model's notes list the covariates it read and
those it could not (a past-only channel with no value before any launch).

Text vectors and attribute values are kept for every item of the items table seen at ``fit``
(in a launch backtest and in ``predict --launch`` that table holds the items still to launch);
an item first seen later has its attributes read from the history's items table and no text
vector (missing to LightGBM), and a note says so. The number of boosting rounds is chosen by
early stopping on the latest-launched fifth of the launched series, or with
``validation_folds`` above 1 on the mean loss over that many launch folds (rolling cohorts, or
item groups when launches share too few dates: ``data.launch_folds``; a note gives the rounds
and the loss's spread across the folds), then the model is refit on all of them. ``predict``
forecasts a series by its age in each forecast period (a series the history lacks launches at
the first forecast period), as the launch curves do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import lightgbm as lgb
import numpy as np
import polars as pl
from pydantic import Field

from salesfusion.components import ENCODERS
from salesfusion.data.frequency import periods_after
from salesfusion.data.launch_folds import fold_masks
from salesfusion.data.launches import launch_rows, with_period_since_launch
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.encoders.inputs import Catalogue, build_encoder, encode_catalogue
from salesfusion.features.calendar import calendar_features
from salesfusion.features.launch_covariates import LaunchChannels, launch_covariates, unreadable
from salesfusion.models.base import Forecaster
from salesfusion.models.baselines.boosting import (
    BoosterConfig,
    booster_params,
    fit_booster,
    fit_booster_folds,
)
from salesfusion.models.config import encoder_of
from salesfusion.models.registry import create_model, register

MIN_EARLY_STOPPING_SERIES = 10  # fewer launched series: train max_rounds without a probe
VALIDATION_SHARE = 0.2  # of the launches, per rolling validation cohort
LOG_LINK = ("tweedie", "poisson")  # objectives whose raw score is the log of the forecast
REFERENCE_FLOOR = 1e-3  # units: the least a reference curve is read as, on a log link


@register
class LightGBMLaunch(Forecaster):
    """One global LightGBM over attributes, text, launch calendar, market and age."""

    name = "lightgbm_launch"
    supports_cold_start = True
    supports_launch = True
    reads_history = False  # forecasts from content or age, never the series' own sales

    class Config(BoosterConfig):
        max_age: int = Field(26, ge=1, description=(
            "Periods since launch trained on; older ages are forecast as this one."))
        text_encoder: Annotated[str | None, encoder_of("text")] = Field(
            "tfidf", description="Registered text encoder of titles and descriptions (None: "
                                 "no text).")
        text_dim: int = Field(16, ge=1, description=(
            "Embedding size, for text encoders that take one (tfidf)."))
        num_leaves: int = Field(15, ge=2)
        min_data_in_leaf: int = Field(20, ge=1)
        max_rounds: int = Field(400, ge=1, description="Most boosting rounds.")
        early_stopping_rounds: int = Field(40, ge=1, description=(
            "Rounds without improvement on the validation launches before stopping."))
        validation_folds: int = Field(1, ge=1, description=(
            "Launch folds the rounds are chosen on, by their mean loss: rolling cohorts of a "
            "fifth of the launches each, or item groups when launches share too few dates "
            "(data.launch_folds); 1: the latest-launched fifth alone (the default: 3 folds "
            "were no better on the synthetic launch benchmark, benchmarks/launch_signal.py)."))
        covariates: bool = Field(True, description=(
            "Read the panel's covariates (future-known in the forecast period, past-only "
            "before the launch)."))
        pre_launch_periods: int = Field(13, ge=1, description=(
            "Periods before a launch a past-only covariate is summarised over."))
        reference: Literal["mean_launch_curve", "median_launch_curve"] | None = Field(
            None, description=(
                "A launch curve fitted on the same launches whose value at each row is the "
                "booster's base score: the trees learn the deviations from it that the "
                "features explain, and with few rounds (early stopping, when the features "
                "carry no signal) the forecast stays near the curve. None: from the mean."))

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"max_rounds": 40}

    # --- item content -------------------------------------------------------------------------
    def _item_table(self, panel: Panel) -> pl.DataFrame:
        """``item_id``, the raw attribute values and ``text_<i>`` (null where an item has no
        text) of every item of the panel's items table."""
        if panel.items is None:
            return pl.DataFrame({"item_id": []}, schema={"item_id": pl.String})
        catalogue = Catalogue.from_panel(panel)
        table = catalogue.items.select("item_id", *self._categorical, *self._numeric)
        encoder_name = self.params["text_encoder"]
        if encoder_name is None:
            return table
        if not catalogue.has("text"):
            self._notes.append("the items table has no title or description: no text features")
            return table
        params = ({"dim": int(self.params["text_dim"])}
                  if "dim" in ENCODERS.get(encoder_name).default_params else {})
        encoded = encode_catalogue(catalogue, "text",
                                   build_encoder(catalogue, "text", encoder_name, **params))
        vectors = np.where(encoded.mask[:, None], encoded.vectors, np.nan)
        return table.with_columns(pl.Series(f"text_{i}", vectors[:, i], dtype=pl.Float64)
                                  for i in range(vectors.shape[1]))

    def _items_for(self, history: Panel) -> pl.DataFrame:
        """The fitted item table, with the attributes of items only ``history`` knows."""
        table = self._items
        if history.items is None:
            return table
        attributes = [c for c in (*self._categorical, *self._numeric) if c in history.items.columns]
        later = (history.items.select("item_id", *attributes)
                 .unique("item_id", keep="first").join(table.select("item_id"), on="item_id",
                                                       how="anti"))
        note = (f"{later.height} item(s) not in the items table at fit have no text "
                f"features")
        if later.height and self._text_columns and note not in self._notes:
            self._notes.append(note)
        return pl.concat([table, later.cast({c: table.schema[c] for c in attributes})],
                         how="diagonal")

    # --- design -------------------------------------------------------------------------------
    def _design(self, rows: pl.DataFrame, items: pl.DataFrame, panel: Panel) -> np.ndarray:
        """The feature matrix of ``rows`` (``item_id, market, launch, period_since_launch,
        timestamp``); ``panel`` holds the covariates."""
        # Rows and features must stay aligned with the labels and the grid: keep rows' order.
        joined = rows.join(items, on="item_id", how="left", maintain_order="left")
        columns: dict[str, np.ndarray] = {
            "market": joined["market"].replace_strict(self._markets, default=None,
                                                      return_dtype=pl.Float64).to_numpy(),
            "period_since_launch": joined["period_since_launch"].to_numpy().astype(float)}
        for name in self._categorical:
            columns[f"cat_{name}"] = (joined[name].cast(pl.String).replace_strict(
                self._vocabulary[name], default=None, return_dtype=pl.Float64).to_numpy())
        for name in self._numeric:
            columns[f"num_{name}"] = joined[name].cast(pl.Float64).to_numpy()
        for name in self._text_columns:
            columns[name] = joined[name].cast(pl.Float64).to_numpy()
        for prefix, stamps in (("launch_", joined["launch"]), ("", joined["timestamp"])):
            for key, values in calendar_features(stamps.to_numpy(), self.freq).items():
                columns[prefix + key] = values.astype(float)
        if self._channels is not None:
            columns.update(launch_covariates(panel, rows, self._channels,
                                             int(self.params["pre_launch_periods"])))
        self._feature_names = list(columns)
        return np.column_stack(list(columns.values())).astype(float)

    @property
    def booster(self) -> lgb.Booster:
        """The fitted booster (its trees, rounds and LightGBM's own importances)."""
        return self._booster

    @property
    def feature_names(self) -> list[str]:
        """The booster's feature columns."""
        return list(self._feature_names)

    # --- fit / predict ------------------------------------------------------------------------
    def _fit(self, panel: Panel) -> None:
        self._notes: list[str] = []
        self._markets = {m: float(i) for i, m in enumerate(sorted(panel.data["market"].unique()))}
        items = panel.items
        self._categorical = [c for c in panel.static_categorical
                             if items is not None and c in items.columns]
        self._numeric = [c for c in panel.static_numeric
                         if items is not None and c in items.columns]
        self._vocabulary = {
            c: {v: float(i) for i, v in enumerate(
                items[c].cast(pl.String).drop_nulls().unique().sort().to_list())}
            for c in self._categorical}
        self._items = self._item_table(panel)
        self._text_columns = [c for c in self._items.columns if c.startswith("text_")]
        self._channels = LaunchChannels.of(panel) if self.params["covariates"] else None
        unread = [*panel.future_known, *panel.past_only]
        if unread and self._channels is None:  # said, not silent
            self._notes.append(f"covariates not read: {', '.join(unread)} (covariates: false)")
        rows, launched = launch_rows(panel, int(self.params["max_age"]))
        if not launched:
            self._notes.append("every series starts at the panel's first period: trained on "
                               "running series as if launched there")
        starts = panel.series().select(*SERIES_KEY, pl.col("start").alias("launch"))
        dated = with_period_since_launch(panel.data.select(*SERIES_KEY, "timestamp"))
        rows = (rows.join(starts, on=SERIES_KEY, how="left", maintain_order="left")
                .join(dated, on=[*SERIES_KEY, "period_since_launch"], how="left",
                      maintain_order="left"))
        matrix = self._design(rows, self._items, panel)
        self._note_channels(matrix)
        label = rows["y"].to_numpy().astype(float)
        categorical = ["market", *[f"cat_{c}" for c in self._categorical]]
        reference = self.params["reference"]
        self._reference = (create_model(reference).fit(panel) if reference is not None
                           else None)
        base = self._base_score(rows, panel)
        folds = int(self.params["validation_folds"])
        if folds == 1:
            self._booster = fit_booster(booster_params(self.config), self.config, matrix,
                                        label, _latest_launches(rows),
                                        feature_names=self._feature_names,
                                        categorical=categorical, init_score=base)
            return
        enough = rows.select(SERIES_KEY).n_unique() >= MIN_EARLY_STOPPING_SERIES
        masks = (fold_masks(rows, panel.data["timestamp"].min(), VALIDATION_SHARE, folds,
                            self.config.seed) if enough else [])
        self._booster, note = fit_booster_folds(
            booster_params(self.config), self.config, matrix, label, masks,
            feature_names=self._feature_names, categorical=categorical, init_score=base)
        if note is not None:
            self._notes.append(note)

    def _base_score(self, rows: pl.DataFrame, history: Panel) -> np.ndarray | None:
        """The reference curve at ``rows`` on the objective's link scale (None without one)."""
        if self._reference is None:
            return None
        values = self._reference.curve_values(rows, history)
        if self.config.booster_objective in LOG_LINK:
            # A curve at 0 (an age no launch sold at) would be log 0: a floor far below any
            # demand the trees could correct from.
            return np.log(np.maximum(values, REFERENCE_FLOOR))
        return values

    def _note_channels(self, matrix: np.ndarray) -> None:
        """Which covariates the training design read, and which it could not."""
        if self._channels is None or not self._channels.feature_names():
            return
        index = {name: i for i, name in enumerate(self._feature_names)}
        columns = {name: matrix[:, index[name]] for name in self._channels.feature_names()}
        blind = unreadable(columns, self._channels)
        read = [c for c in [*(["events"] if self._channels.events else []),
                            *self._channels.future_known, *self._channels.past_only]
                if c not in blind]
        if read:
            self._notes.append(f"covariates read: {', '.join(read)}")
        if blind:
            self._notes.append(f"covariates not read: {', '.join(blind)} (past-only, with no "
                               f"value before any launch)")

    def _forecast(self, grid: pl.DataFrame, history: Panel) -> pl.DataFrame:
        max_age = int(self.params["max_age"])
        rows = grid.with_columns(pl.col("period_since_launch").clip(upper_bound=max_age))
        matrix = self._design(rows, self._items_for(history), history)
        base = self._base_score(rows, history)
        if base is None:
            values = self._booster.predict(matrix)
        else:
            raw = self._booster.predict(matrix, raw_score=True) + base
            values = np.exp(raw) if self.config.booster_objective in LOG_LINK else raw
        return grid.with_columns(pl.Series("y_pred", values, dtype=pl.Float64))

    def _predict_launch(self, grid: pl.DataFrame, history: Panel) -> pl.DataFrame:
        return self._forecast(grid, history)

    def _predict(self, horizon: int, history: Panel, series: pl.DataFrame) -> pl.DataFrame:
        future = periods_after(history.data["timestamp"].max(), history.freq, horizon)
        seen = history.series().select(*SERIES_KEY, pl.col("length").cast(pl.Int64).alias("_seen"),
                                       pl.col("start").alias("launch"))
        steps = pl.DataFrame({"timestamp": future,
                              "_step": pl.int_range(1, horizon + 1, eager=True)})
        grid = (series.join(seen, on=SERIES_KEY, how="left").join(steps, how="cross")
                .with_columns((pl.col("_seen").fill_null(0) + pl.col("_step"))
                              .alias("period_since_launch"),
                              pl.col("launch").fill_null(future[0])))
        return self._forecast(grid, history).select(*SERIES_KEY, "timestamp", "y_pred")

    # --- persistence --------------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        self._booster.save_model(str(folder / "booster.txt"))
        self._items.write_parquet(folder / "launch_items.parquet")
        (folder / "lightgbm_launch.json").write_text(json.dumps(
            {"markets": self._markets, "categorical": self._categorical,
             "numeric": self._numeric, "vocabulary": self._vocabulary,
             "features": self._feature_names, "notes": self._notes,
             "channels": self._channels.to_json() if self._channels is not None else None}))
        if self._reference is not None:
            self._reference.save(folder / "reference")

    def _load_state(self, folder: Path) -> None:
        state = json.loads((folder / "lightgbm_launch.json").read_text())
        self._markets, self._vocabulary = state["markets"], state["vocabulary"]
        self._categorical, self._numeric = state["categorical"], state["numeric"]
        self._feature_names, self._notes = state["features"], state["notes"]
        # Models saved before covariates were read hold no channels, as if covariates: false.
        channels = state.get("channels")
        self._channels = LaunchChannels.from_json(channels) if channels else None
        self._items = pl.read_parquet(folder / "launch_items.parquet")
        self._text_columns = [c for c in self._items.columns if c.startswith("text_")]
        self._booster = lgb.Booster(model_file=str(folder / "booster.txt"))
        self._reference = (Forecaster.load(folder / "reference")
                           if self.params.get("reference") else None)


def _latest_launches(rows: pl.DataFrame) -> np.ndarray | None:
    """A mask of the rows of the latest-launched fifth of the series (the early-stopping part),
    or None when there are too few series to spare one."""
    launches = rows.select(*SERIES_KEY, "launch").unique().sort("launch", *SERIES_KEY)
    if launches.height < MIN_EARLY_STOPPING_SERIES:
        return None
    latest = launches.tail(max(1, launches.height // 5)).select(
        *SERIES_KEY, pl.lit(True).alias("_latest"))
    return (rows.select(SERIES_KEY).join(latest, on=SERIES_KEY, how="left",
                                         maintain_order="left")["_latest"]
            .fill_null(False).to_numpy())
