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

import numpy as np
from scipy import sparse

from salesfusion.data.frequency import extend_periods
from salesfusion.features.calendar import CALENDAR_WIDTH, year_position
from salesfusion.features.covariates import Covariates
from salesfusion.features.lags import WidePanel
from salesfusion.training.window_source import SampleIndex, Windows, WindowSource

__all__ = ["SampleIndex", "WindowSource", "Windows", "make_windows", "window_samples"]


def feature_widths(covariates: Covariates | None) -> tuple[int, int]:
    """(history step width, future step width) of windows built with ``covariates``."""
    if covariates is None:
        return 1 + CALENDAR_WIDTH, CALENDAR_WIDTH
    return (1 + CALENDAR_WIDTH + covariates.width,
            CALENDAR_WIDTH + int(covariates.future_known.sum()))


def extended_periods(wide: WidePanel, freq: str, horizon: int) -> np.ndarray:
    """The panel's periods followed by the ``horizon`` periods after its end."""
    return extend_periods(wide.periods, freq, horizon)


def market_levels(wide: WidePanel, lookback: int) -> np.ndarray:
    """(series, period) mean level of the series' market at each origin (for cold start)."""
    observed = ~np.isnan(wide.y)
    names, codes = np.unique(wide.keys["market"].to_numpy(), return_inverse=True)
    # A (markets x series) indicator product sums each market's series at once (no loop).
    members = sparse.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))),
                                shape=(len(names), len(codes)))
    sums = _trailing_sum(np.asarray(members @ np.where(observed, wide.y, 0.0)), lookback)
    counts = _trailing_sum(np.asarray(members @ observed.astype(float)), lookback)
    with np.errstate(invalid="ignore", divide="ignore"):
        level = np.nan_to_num(sums / counts)
    return level[codes]


def _trailing_sum(values: np.ndarray, lookback: int) -> np.ndarray:
    """Sum over the ``lookback`` periods ending at each period (earlier periods count as 0)."""
    sums = np.cumsum(values, axis=1)
    sums[:, lookback:] = sums[:, lookback:] - sums[:, :-lookback].copy()
    return sums


def _rolling_mean(values: np.ndarray, lookback: int) -> np.ndarray:
    """Mean over the ``lookback`` periods ending at each period (earlier periods count as 0)."""
    return _trailing_sum(values, lookback) / lookback


def item_totals(wide: WidePanel, lookback: int) -> tuple[dict[str, int], np.ndarray]:
    """Each item's row and the (items, period) mean of its demand over every market in the
    ``lookback`` periods ending at each period."""
    items, _, totals = _item_totals(wide, lookback)
    return {item: row for row, item in enumerate(items)}, totals


def _item_totals(wide: WidePanel, lookback: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The items, each series' item row and the items' trailing mean demand."""
    items, codes = np.unique(wide.keys["item_id"].to_numpy(), return_inverse=True)
    totals = np.zeros((len(items), wide.y.shape[1]))
    np.add.at(totals, codes, np.nan_to_num(wide.y))
    return items, codes, _rolling_mean(totals, lookback)


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
    """Every sample of ``window_samples`` (same arguments), materialised."""
    return window_samples(wide, freq, lookback, horizon, origins, covariates, cold_level,
                          abroad).gather()


def window_samples(wide: WidePanel, freq: str, lookback: int, horizon: int,
                   origins: np.ndarray | None = None,
                   covariates: Covariates | None = None,
                   cold_level: np.ndarray | None = None,
                   abroad: np.ndarray | None = None) -> SampleIndex:
    """Samples at ``origins`` (period indices; default: every origin with a target or a launch
    ahead), gathered lazily (``SampleIndex.gather``). For prediction pass the last index:
    targets are then all masked. ``covariates`` span ``extended_periods(wide, freq, horizon)``;
    ``cold_level`` (one value per series) scales the samples that have no observed history;
    ``abroad`` (one value per series) replaces the abroad input computed from ``wide`` (launch
    windows, whose wide panel holds no market)."""
    y = wide.y
    n_series, n_periods = y.shape
    observed = ~np.isnan(y)
    launch = np.where(observed.any(axis=1), np.argmax(observed, axis=1), n_periods)
    if origins is None:
        origins = np.arange(n_periods - 1)
    if cold_level is None:
        cold = market_levels(wide, lookback)
    else:
        cold = np.asarray(cold_level, dtype=float)[:, None]
    if abroad is None:
        _, codes, totals = _item_totals(wide, lookback)
        elsewhere = totals[codes] - _rolling_mean(np.nan_to_num(y), lookback)
        abroad_matrix = np.log1p(np.clip(elsewhere, 0, None)).astype(np.float32)
    else:
        abroad_matrix = np.asarray(abroad, dtype=float)[:, None].astype(np.float32)
    source = WindowSource(y=y, calendar=year_position(extended_periods(wide, freq, horizon),
                                                      freq),
                          lookback=lookback, horizon=horizon, covariates=covariates, cold=cold,
                          abroad=abroad_matrix)
    # Series-major like a (series, origin) grid; int32 halves the index of a large panel.
    origins = np.asarray(origins, dtype=np.int32)
    s_idx = np.repeat(np.arange(n_series, dtype=np.int32), len(origins))
    t_idx = np.tile(origins, n_series)
    # Keep origins at or after launch - 1 (the launch itself is forecast from content).
    keep = t_idx >= launch[s_idx] - 1
    return SampleIndex(source, s_idx[keep], t_idx[keep])
