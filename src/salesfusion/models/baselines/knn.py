"""Cold-start analogues: forecast an item from the most similar items by text and attributes.

An item is described by TF-IDF of its text (character 3-5-grams, robust to the short, upper-case,
abbreviated titles of catalogues) joined with its standardised numeric and one-hot categorical
attributes. A series (item, market) is forecast as the similarity-weighted mean of the recent
demand level (mean of the last ``level_window`` periods at the origin) of the ``k`` most similar
*other* items sold in the same market; the item's own history is never used, so the backtest
measures what the forecast would have been had the item been new. A market with no other item
falls back to candidates from every market.

Launch-anchored (``predict_launch``): a launch is forecast as the similarity-weighted mean of the
``k`` most similar other items' own launch curves (their first H periods since launch in the
history, left-censored series left out as in ``data.launches``), in the same market or, with
fewer than two launched analogues there, each analogue's curve averaged over markets. At an age
where some analogues were not yet observed the weights of the observed ones are used.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import Field
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from salesfusion.data.frequency import periods_after
from salesfusion.data.launches import launch_rows
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.errors import InputError
from salesfusion.models.base import Forecaster
from salesfusion.models.config import ModelConfig
from salesfusion.models.registry import register


@register
class KNNAnalogue(Forecaster):
    """Cold-start analogues: the k most similar other items by text and attributes."""

    name = "knn_analogue"
    supports_cold_start = True
    supports_launch = True
    reads_history = False  # forecasts from content or age, never the series' own sales

    class Config(ModelConfig):
        k: int = Field(10, ge=1, description="Most similar items averaged.")
        level_window: int = Field(8, ge=1, description=(
            "Periods of an analogue's recent demand that make its level."))
        attribute_weight: float = Field(0.5, ge=0, le=1, description=(
            "Weight of the attribute block against the text block."))

    def _fit(self, panel: Panel) -> None:
        if panel.items is None or not (panel.static_text or panel.static_numeric
                                       or panel.static_categorical):
            raise InputError("model 'knn_analogue' needs an items table with text "
                             "(title/description) or attributes declared in the dataset spec")
        columns = ["item_id", *panel.static_text, *panel.static_numeric,
                   *panel.static_categorical]
        self._items = panel.items.select(columns).unique("item_id", keep="first",
                                                          maintain_order=True)
        self._roles = {"text": panel.static_text, "numeric": panel.static_numeric,
                       "categorical": panel.static_categorical}
        self._check_analogues(panel.data)
        self._build_index()

    def _check_analogues(self, sales: pl.DataFrame) -> None:
        """An analogue needs both content and history: with no item in both tables every
        forecast would be an average over nothing (NaN), so say why instead."""
        sold = sales.select("item_id").unique().sort("item_id")
        if sold.join(self._items.select("item_id"), on="item_id", how="semi").is_empty():
            raise InputError(
                "model 'knn_analogue': no item of the items table has sales history, so there "
                "is no analogue to forecast from (sales item ids "
                f"{sold['item_id'].head(3).to_list()}, items table "
                f"{self._items['item_id'].head(3).to_list()}); check that both tables name "
                "items the same way")

    def _build_index(self) -> None:
        items = self._items
        blocks = []
        if self._roles["text"]:
            text = items.select(pl.concat_str([pl.col(c).fill_null("") for c in
                                               self._roles["text"]], separator=" ")).to_series()
            vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), lowercase=True,
                                         min_df=1, sublinear_tf=True)
            blocks.append(vectorizer.fit_transform(text.to_list()))
        attributes = []
        for column in self._roles["numeric"]:
            values = items[column].cast(pl.Float64).to_numpy()
            known = np.isfinite(values)
            # A column with no value at all tells items apart by nothing: a constant 0 (the
            # median of no values would be NaN and poison every similarity).
            fill = np.median(values[known]) if known.any() else 0.0
            values = np.where(known, values, fill)
            spread = values.std() or 1.0
            attributes.append(((values - values.mean()) / spread)[:, None])
        for column in self._roles["categorical"]:
            codes = items[column].fill_null("<missing>").to_numpy()
            levels = np.unique(codes)
            attributes.append((codes[:, None] == levels[None, :]).astype(float))
        if attributes:
            block = normalize(np.hstack(attributes)) * float(self.params["attribute_weight"])
            blocks.append(sparse.csr_matrix(block))
        self._vectors = normalize(sparse.hstack(blocks).tocsr())
        self._row = {item: i for i, item in enumerate(items["item_id"].to_list())}

    def _predict(self, horizon: int, history: Panel, series: pl.DataFrame) -> pl.DataFrame:
        window = int(self.params["level_window"])
        last = history.data["timestamp"].max()
        levels = (history.data.sort("timestamp").group_by(SERIES_KEY)
                  .agg(pl.col("y").tail(window).mean().alias("level"))
                  .filter(pl.col("item_id").is_in(list(self._row)))
                  .sort(SERIES_KEY))  # a fixed candidate order keeps tie-breaking deterministic
        self._check_analogues(history.data)
        rows = []
        for (market,), targets in series.group_by("market", maintain_order=True):
            candidates = levels.filter(pl.col("market") == market)
            if candidates.height < 2:
                candidates = (levels.group_by("item_id").agg(pl.col("level").mean())
                              .sort("item_id"))
            rows.append(targets.with_columns(
                pl.Series("y_pred", self._analogue_levels(targets["item_id"], candidates))))
        forecast = pl.concat(rows)
        future = periods_after(last, history.freq, horizon)
        return forecast.join(pl.DataFrame({"timestamp": future}), how="cross").select(
            *SERIES_KEY, "timestamp", "y_pred")

    def _predict_launch(self, grid: pl.DataFrame, history: Panel) -> pl.DataFrame:
        horizon = int(grid["period_since_launch"].max())
        self._check_analogues(history.data)
        rows, _ = launch_rows(history, horizon)
        curves = (rows.filter(pl.col("item_id").is_in(list(self._row)))
                  .pivot(on="period_since_launch", index=SERIES_KEY, values="y",
                         sort_columns=True).sort(SERIES_KEY))
        ages = [str(a) for a in range(1, horizon + 1)]
        curves = curves.with_columns(pl.lit(None, dtype=pl.Float64).alias(a) for a in ages
                                     if a not in curves.columns).select(*SERIES_KEY, *ages)
        parts = []
        for (market,), targets in grid.select(SERIES_KEY).unique(maintain_order=True).group_by(
                "market", maintain_order=True):
            candidates = curves.filter(pl.col("market") == market)
            if candidates.height < 2:
                candidates = curves.group_by("item_id").agg(pl.col(ages).mean()).sort("item_id")
            if candidates.is_empty():
                raise InputError("model 'knn_analogue': the history holds no launch of an item "
                                 "with content, so there is no launch curve to forecast from")
            nearest, weights = self._neighbours(targets["item_id"], candidates["item_id"])
            values = candidates.select(ages).to_numpy().astype(float)[nearest]  # (t, k, H)
            known = np.isfinite(values)
            weight = np.where(known, weights[:, :, None], 0.0)
            total = weight.sum(axis=1)
            seen = known.sum(axis=1)
            mean = np.where(seen > 0, np.nan_to_num(values).sum(axis=1) / np.maximum(seen, 1),
                            np.nan)
            curve = np.where(total > 0, (weight * np.nan_to_num(values)).sum(axis=1)
                             / np.where(total > 0, total, 1.0), mean)
            parts.append(targets.join(pl.DataFrame({"period_since_launch": np.arange(
                1, horizon + 1)}), how="cross").with_columns(pl.Series(
                    "y_pred", curve.reshape(-1))))
        # An age no analogue reached keeps the last age one did.
        forecast = pl.concat(parts).with_columns(
            pl.col("y_pred").fill_nan(None).forward_fill().over(SERIES_KEY).fill_null(0.0))
        return grid.join(forecast, on=[*SERIES_KEY, "period_since_launch"], how="left")

    def _neighbours(self, targets: pl.Series, candidate_items: pl.Series
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Per target, the ``k`` most similar candidates other than itself (indices) and their
        similarities clipped at 0 as weights."""
        candidate_items = candidate_items.to_list()
        candidate_rows = np.array([self._row[i] for i in candidate_items])
        empty = sparse.csr_matrix((1, self._vectors.shape[1]))
        target_vectors = sparse.vstack([self._vectors[self._row[i]] if i in self._row else empty
                                        for i in targets.to_list()]).tocsr()
        similarity = (target_vectors @ self._vectors[candidate_rows].T).toarray()
        is_self = np.asarray(targets.to_list(), dtype=object)[:, None] == np.asarray(
            candidate_items, dtype=object)[None, :]
        similarity[is_self] = -np.inf
        k = min(int(self.params["k"]), max(1, len(candidate_items) - 1))
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        weights = np.clip(np.take_along_axis(similarity, nearest, axis=1), 0.0, None)
        weights[~np.isfinite(weights)] = 0.0
        return nearest, weights

    def _analogue_levels(self, targets: pl.Series, candidates: pl.DataFrame) -> np.ndarray:
        nearest, weights = self._neighbours(targets, candidates["item_id"])
        neighbour_levels = candidates["level"].to_numpy()[nearest]
        total = weights.sum(axis=1)
        weighted = (weights * neighbour_levels).sum(axis=1) / np.where(total > 0, total, 1.0)
        return np.where(total > 0, weighted, neighbour_levels.mean(axis=1))

    def _save_state(self, folder: Path) -> None:
        # The TF-IDF index is rebuilt deterministically from the items on load (no pickling).
        self._items.write_parquet(folder / "items.parquet")
        (folder / "knn.json").write_text(json.dumps(self._roles))

    def _load_state(self, folder: Path) -> None:
        self._items = pl.read_parquet(folder / "items.parquet")
        self._roles = json.loads((folder / "knn.json").read_text())
        self._build_index()
