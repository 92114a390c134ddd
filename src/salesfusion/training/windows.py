"""History windows and targets for neural models, from the dense (series x period) panel.

A sample is (series s, origin t): the ``lookback`` periods up to and including t, right-aligned,
with a mask that is False before the series' launch (or before the panel starts), and the next
``horizon`` periods as targets (masked where unknown). Values are divided by a per-sample level
known at the origin: the mean of the observed history + 1, or, with no history (cold start),
the series' ``cold_level`` + 1 when one is given (the multimodal model gives its market's
typical launch level), else the mean level of the market's series at that origin + 1. Origins
one period before launch are kept, so models learn to forecast a launch from content alone.

Each sample also carries ``abroad``: log(1 + the mean demand per period of the same item in the
panel's other markets over the lookback window), what the item sells elsewhere at the origin
(0 for an item sold nowhere else), which the multimodal model reads with ``cross_market``.

History steps carry the scaled value, the calendar (sine/cosine of the position in the year)
and every dynamic covariate; the ``future`` steps (the forecast periods) carry their calendar
and the future-known covariates only (events, declared future-known exogenous columns).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from salesfusion.data.frequency import extend_periods
from salesfusion.features.calendar import CALENDAR_WIDTH, year_position
from salesfusion.features.covariates import Covariates
from salesfusion.features.lags import WidePanel


def feature_widths(covariates: Covariates | None) -> tuple[int, int]:
    """(history step width, future step width) of windows built with ``covariates``."""
    if covariates is None:
        return 1 + CALENDAR_WIDTH, CALENDAR_WIDTH
    return (1 + CALENDAR_WIDTH + covariates.width,
            CALENDAR_WIDTH + int(covariates.future_known.sum()))


def extended_periods(wide: WidePanel, freq: str, horizon: int) -> np.ndarray:
    """The panel's periods followed by the ``horizon`` periods after its end."""
    return extend_periods(wide.periods, freq, horizon)


@dataclass
class Windows:
    """Arrays of n samples: history (n, L, F), history_mask (n, L), target (n, H), target_mask
    (n, H), level (n,), series (n,) row in the wide panel, origin (n,) period index, future
    (n, H, G) known inputs of the forecast periods, abroad (n,) log(1 + the item's mean demand
    per period in the other markets over the window)."""

    history: np.ndarray
    history_mask: np.ndarray
    target: np.ndarray
    target_mask: np.ndarray
    level: np.ndarray
    series: np.ndarray
    origin: np.ndarray
    future: np.ndarray
    abroad: np.ndarray

    def __len__(self) -> int:
        return len(self.series)

    def subset(self, keep: np.ndarray) -> Windows:
        return Windows(*(getattr(self, f)[keep] for f in self.__dataclass_fields__))

    def transformed(self, forward: Callable[[np.ndarray], np.ndarray]) -> Windows:
        """The windows with ``forward`` applied to the observed scaled values (the history's
        first channel and the targets); masked entries stay 0."""
        history = self.history.copy()
        history[..., 0] = np.where(self.history_mask, forward(history[..., 0]), 0.0)
        target = np.where(self.target_mask, forward(self.target), 0.0).astype(np.float32)
        return replace(self, history=history, target=target)


def market_levels(wide: WidePanel, lookback: int) -> np.ndarray:
    """(series, period) mean level of the series' market at each origin (for cold start)."""
    values = np.where(np.isnan(wide.y), 0.0, wide.y)
    observed = (~np.isnan(wide.y)).astype(float)
    kernel = np.ones(lookback)
    sums = np.apply_along_axis(lambda r: np.convolve(r, kernel)[: len(r)], 1, values)
    counts = np.apply_along_axis(lambda r: np.convolve(r, kernel)[: len(r)], 1, observed)
    markets = wide.keys["market"].to_numpy()
    out = np.zeros_like(values)
    for market in np.unique(markets):
        rows = markets == market
        with np.errstate(invalid="ignore", divide="ignore"):
            level = sums[rows].sum(0) / counts[rows].sum(0)
        out[rows] = np.nan_to_num(level)
    return out


def _rolling_mean(values: np.ndarray, lookback: int) -> np.ndarray:
    """Mean over the ``lookback`` periods ending at each period (earlier periods count as 0)."""
    sums = np.cumsum(values, axis=1)
    sums[:, lookback:] = sums[:, lookback:] - sums[:, :-lookback].copy()
    return sums / lookback


def item_totals(wide: WidePanel, lookback: int) -> tuple[dict[str, int], np.ndarray]:
    """Each item's row and the (items, period) mean of its demand over every market in the
    ``lookback`` periods ending at each period."""
    items, codes = np.unique(wide.keys["item_id"].to_numpy(), return_inverse=True)
    totals = np.zeros((len(items), wide.y.shape[1]))
    np.add.at(totals, codes, np.nan_to_num(wide.y))
    return {item: row for row, item in enumerate(items)}, _rolling_mean(totals, lookback)


def abroad_at_launch(history: WidePanel, lookback: int, items: list[str],
                     launch_index: int) -> np.ndarray:
    """``abroad`` of launches of ``items`` in markets ``history`` does not hold them in: the
    items' mean demand over ``history``'s markets in the lookback before ``launch_index``
    (clipped to the history's last period), log(1 + mean)."""
    return abroad_from_totals(*item_totals(history, lookback), items, launch_index)


def abroad_from_totals(rows: dict[str, int], totals: np.ndarray, items: list[str],
                       launch_index: int) -> np.ndarray:
    """``abroad_at_launch`` from ``item_totals`` computed once for many launches."""
    at = int(np.clip(launch_index - 1, 0, totals.shape[1] - 1))
    return np.log1p(np.array([totals[rows[i], at] if i in rows else 0.0 for i in items]))


def make_windows(wide: WidePanel, freq: str, lookback: int, horizon: int,
                 origins: np.ndarray | None = None,
                 covariates: Covariates | None = None,
                 cold_level: np.ndarray | None = None,
                 abroad: np.ndarray | None = None) -> Windows:
    """Samples at ``origins`` (period indices; default: every origin with a target or a launch
    ahead). For prediction pass the last index: targets are then all masked. ``covariates``
    span ``extended_periods(wide, freq, horizon)``; ``cold_level`` (one value per series) scales
    the samples that have no observed history; ``abroad`` (one value per series) replaces the
    abroad input computed from ``wide`` (launch windows, whose wide panel holds no market)."""
    y = wide.y
    n_series, n_periods = y.shape
    launch = np.where(~np.isnan(y).all(axis=1), np.argmax(~np.isnan(y), axis=1), n_periods)
    if origins is None:
        origins = np.arange(n_periods - 1)
    calendar = year_position(extended_periods(wide, freq, horizon), freq)
    if cold_level is None:
        cold = market_levels(wide, lookback)
    else:
        cold = np.broadcast_to(np.asarray(cold_level, dtype=float)[:, None], y.shape)
    if abroad is None:
        rows, totals = item_totals(wide, lookback)
        codes = np.array([rows[i] for i in wide.keys["item_id"]], dtype=int)
        elsewhere = totals[codes] - _rolling_mean(np.nan_to_num(y), lookback)
        abroad_matrix = np.log1p(np.clip(elsewhere, 0, None))
    else:
        abroad_matrix = np.broadcast_to(np.asarray(abroad, dtype=float)[:, None], y.shape)
    s_idx, t_idx = np.meshgrid(np.arange(n_series), origins, indexing="ij")
    s_idx, t_idx = s_idx.ravel(), t_idx.ravel()
    # Keep origins at or after launch - 1 (the launch itself is forecast from content).
    keep = t_idx >= launch[s_idx] - 1
    s_idx, t_idx = s_idx[keep], t_idx[keep]

    offsets = np.arange(-lookback + 1, 1)
    positions = t_idx[:, None] + offsets[None, :]
    inside = positions >= 0
    history = np.where(inside, y[s_idx[:, None], np.clip(positions, 0, None)], np.nan)
    history_mask = ~np.isnan(history)
    observed_count = history_mask.sum(1)
    level = np.where(observed_count > 0,
                     np.nansum(np.where(history_mask, history, 0.0), 1) / np.maximum(
                         observed_count, 1),
                     cold[s_idx, t_idx]) + 1.0

    future = t_idx[:, None] + np.arange(1, horizon + 1)[None, :]
    in_panel = future < n_periods
    target = np.where(in_panel, y[s_idx[:, None], np.clip(future, None, n_periods - 1)], np.nan)
    target_mask = ~np.isnan(target)
    scaled_history = np.where(history_mask, history / level[:, None], 0.0)
    scaled_target = np.where(target_mask, target / level[:, None], 0.0)
    past_at = np.clip(positions, 0, n_periods - 1)
    history_parts = [scaled_history[..., None], calendar[past_at]]
    future_parts = [calendar[future]]
    if covariates is not None and covariates.width:
        history_parts.append(covariates.values[s_idx[:, None], past_at])
        future_parts.append(covariates.values[s_idx[:, None], future][
            ..., covariates.future_known])
    features = np.concatenate(history_parts, axis=-1)
    return Windows(history=features.astype(np.float32), history_mask=history_mask,
                   target=scaled_target.astype(np.float32), target_mask=target_mask,
                   level=level.astype(np.float32), series=s_idx, origin=t_idx,
                   future=np.concatenate(future_parts, axis=-1).astype(np.float32),
                   abroad=abroad_matrix[s_idx, t_idx].astype(np.float32))
