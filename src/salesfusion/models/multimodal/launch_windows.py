"""Launch windows of the multimodal model.

A launch forecast (``predict_launch``) is a window at the period before the launch with no
history: its future steps carry the calendar and known covariates (events) of the launch's own
periods, so a launch next season is forecast with that season's calendar. A window with no
history is scaled by its market's launch level (``launch_scale: launch_level``: the mean demand
of the training launches' first ``horizon`` periods, known however far ahead the launch is) or
by the market's running level before the launch (``market_level``). ``abroad`` is what the item
sold in the history's markets before the launch (read with ``cross_market``).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from salesfusion.data.frequency import offset, period_range
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.features.lags import WidePanel, to_wide
from salesfusion.models.multimodal.inputs import MultimodalInputs
from salesfusion.training.windows import (
    Windows,
    abroad_from_totals,
    item_totals,
    make_windows,
    market_levels,
)


def launch_windows(inputs: MultimodalInputs, grid: pl.DataFrame,
                   history: Panel) -> tuple[WidePanel, Windows]:
    """One window per launched series of ``grid`` (``item_id, market, launch``): no history,
    origin the period before the launch, future steps the launch's periods. Rows are ordered
    by launch, then as in ``grid``."""
    c = inputs.config
    launches = grid.select(*SERIES_KEY, "launch").unique(maintain_order=True)
    history_wide = to_wide(history)
    # What every launch group reads from the history, computed once.
    item_rows, totals = item_totals(history_wide, c.lookback)
    running = (market_levels(history_wide, c.lookback) if inputs.launch_levels is None
               else None)
    parts = []
    for (launch,), group in launches.group_by("launch", maintain_order=True):
        # The history period just before the launch (its last one for a later launch).
        index = int(np.searchsorted(history_wide.periods, np.datetime64(launch, "us")))
        # The lookback periods before the launch, all unobserved: a cold window whose
        # calendar and covariates are those of the launch's own periods.
        first = pl.select(offset(pl.lit(launch), history.freq, -c.lookback)).item()
        last = pl.select(offset(pl.lit(launch), history.freq, -1)).item()
        periods = period_range(first, last, history.freq).to_numpy()
        keys = group.select(SERIES_KEY)
        wide = WidePanel(keys=keys, periods=periods,
                         y=np.full((keys.height, len(periods)), np.nan),
                         price_local=None, fx_rate=None)
        cold = (inputs.cold_level(keys) if running is None
                else _running_level(keys, history_wide, running, index))
        windows = make_windows(wide, history.freq, c.lookback, c.horizon,
                               origins=np.array([len(periods) - 1]),
                               covariates=inputs.checked_covariates(history, wide),
                               cold_level=cold,
                               abroad=abroad_from_totals(item_rows, totals,
                                                         keys["item_id"].to_list(), index))
        parts.append((wide, windows))
    keys = pl.concat([wide.keys for wide, _ in parts])
    offsets = np.cumsum([0] + [wide.keys.height for wide, _ in parts[:-1]])
    # Only the series index is offset: adding 0 to the boolean masks would make them
    # integers, which attention backbones (gtm, transformer) refuse as padding masks.
    windows = Windows(*(np.concatenate(
        [getattr(w, f) + o if f == "series" else getattr(w, f)
         for (_, w), o in zip(parts, offsets, strict=True)])
        for f in Windows.__dataclass_fields__))
    wide = WidePanel(keys=keys, periods=parts[0][0].periods,
                     y=np.zeros((keys.height, 0)), price_local=None, fx_rate=None)
    return wide, windows


def _running_level(keys: pl.DataFrame, wide: WidePanel, levels: np.ndarray,
                   launch_index: int) -> np.ndarray:
    """``launch_scale: market_level``: each market's mean level (``market_levels`` of the
    history ``wide``) over the lookback periods before the launch (or before the history's end,
    for a later launch)."""
    at = int(np.clip(launch_index - 1, 0, len(wide.periods) - 1))
    by_market = dict(zip(wide.keys["market"].to_list(), levels[:, at], strict=True))
    return np.array([by_market.get(m, 0.0) for m in keys["market"]])
