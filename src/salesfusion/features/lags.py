"""Lag, rolling-window, price and FX features of every series at every possible forecast origin.

Features at origin ``t`` use periods ``<= t`` only, so a model trained on (origin, horizon)
pairs never sees the future. Computed on a dense (series x period) matrix with cumulative sums,
because per-row window functions over ~100k rows and ~50 origins are the hot path of training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from salesfusion.data.panel import SERIES_KEY, Panel

LAGS = (1, 2, 3, 4, 5, 6, 7, 8)
MEAN_WINDOWS = (4, 8, 13, 26)


@dataclass
class WidePanel:
    """The panel as dense matrices: row = series (``keys`` order), column = period.

    ``y`` is NaN before a series' launch (masked, "did not exist").
    """

    keys: pl.DataFrame
    periods: np.ndarray
    y: np.ndarray
    price_local: np.ndarray | None
    fx_rate: np.ndarray | None


def to_wide(panel: Panel) -> WidePanel:
    data = panel.data
    keys = data.select(SERIES_KEY).unique(maintain_order=True)
    periods = np.sort(data["timestamp"].unique().to_numpy())
    row = data.join(keys.with_row_index("row"), on=SERIES_KEY)["row"].to_numpy()
    col = np.searchsorted(periods, data["timestamp"].to_numpy())

    def dense(column: str) -> np.ndarray:
        matrix = np.full((keys.height, len(periods)), np.nan)
        matrix[row, col] = data[column].cast(pl.Float64).fill_null(np.nan).to_numpy()
        return matrix

    price = forward_fill(dense("price_local")) if "price_local" in data.columns else None
    fx = forward_fill(dense("fx_rate")) if "fx_rate" in data.columns else None
    return WidePanel(keys=keys, periods=periods, y=dense("y"), price_local=price, fx_rate=fx)


def forward_fill(matrix: np.ndarray) -> np.ndarray:
    """Each row's NaNs replaced by the row's last earlier value (NaN before the first)."""
    valid = ~np.isnan(matrix)
    index = np.where(valid, np.arange(matrix.shape[1]), 0)
    np.maximum.accumulate(index, axis=1, out=index)
    filled = matrix[np.arange(matrix.shape[0])[:, None], index]
    seen = np.maximum.accumulate(valid, axis=1)
    return np.where(seen, filled, np.nan)


def _window_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the valid values among the last ``window`` periods up to and including t."""
    valid = ~np.isnan(values)
    csum = np.concatenate([np.zeros((values.shape[0], 1)),
                           np.cumsum(np.where(valid, values, 0.0), axis=1)], axis=1)
    ccount = np.concatenate([np.zeros((values.shape[0], 1)), np.cumsum(valid, axis=1)], axis=1)
    end = np.arange(1, values.shape[1] + 1)
    start = np.maximum(end - window, 0)
    count = ccount[:, end] - ccount[:, start]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (csum[:, end] - csum[:, start]) / count, np.nan)


def _lag(values: np.ndarray, k: int) -> np.ndarray:
    """Value at t-k+1 (lag 1 is the value at the origin itself)."""
    shifted = np.full_like(values, np.nan)
    if k - 1 >= values.shape[1]:  # a history shorter than the lag: unknown everywhere
        return shifted
    shifted[:, k - 1:] = values[:, : values.shape[1] - k + 1]
    return shifted


def origin_features(wide: WidePanel) -> dict[str, np.ndarray]:
    """Every feature as a (series x origin) matrix."""
    y = wide.y
    valid = ~np.isnan(y)
    features: dict[str, np.ndarray] = {f"lag_{k}": _lag(y, k) for k in LAGS}
    for window in MEAN_WINDOWS:
        features[f"mean_{window}"] = _window_mean(y, window)
    squared_mean = _window_mean(y**2, 8)
    features["std_8"] = np.sqrt(np.maximum(squared_mean - features["mean_8"] ** 2, 0.0))
    nonzero = np.where(valid, (y > 0).astype(float), np.nan)
    features["nonzero_share_13"] = _window_mean(nonzero, 13)
    features["mean_all"] = _window_mean(y, y.shape[1])
    features["age"] = np.cumsum(valid, axis=1).astype(float)
    last_sale = np.where(valid & (y > 0), np.arange(y.shape[1]), -1)
    np.maximum.accumulate(last_sale, axis=1, out=last_sale)
    features["since_sale"] = np.where(last_sale >= 0, np.arange(y.shape[1]) - last_sale, np.nan)
    item_codes = wide.keys["item_id"].to_numpy()
    features["item_mean_4"] = _group_mean(features["mean_4"], item_codes)
    if wide.price_local is not None:
        features["price_local"] = wide.price_local
        with np.errstate(invalid="ignore", divide="ignore"):
            features["price_ratio"] = wide.price_local / _window_mean(wide.price_local, 26)
    if wide.fx_rate is not None:
        features["fx_rate"] = wide.fx_rate
        with np.errstate(invalid="ignore", divide="ignore"):
            features["fx_change_4"] = wide.fx_rate / _lag(wide.fx_rate, 5)
    return features


def _group_mean(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Mean over the series of the same item (all its markets), per origin."""
    _, inverse = np.unique(groups, return_inverse=True)
    filled = np.where(np.isnan(values), 0.0, values)
    sums = np.zeros((inverse.max() + 1, values.shape[1]))
    counts = np.zeros_like(sums)
    np.add.at(sums, inverse, filled)
    np.add.at(counts, inverse, ~np.isnan(values))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts)[inverse]
