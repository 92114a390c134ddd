"""Which series a benchmark keeps: the active ones, judged only on periods before its test part."""

from __future__ import annotations

import polars as pl

from salesfusion.data.panel import SERIES_KEY, Panel


def holdout_length(horizon: int, windows: int, step: int | None) -> int:
    """Periods from the first test period of a rolling-origin backtest to the panel's end:
    ``windows`` forecasts of ``horizon`` periods whose origins are ``step`` (default: the
    horizon) periods apart, the last ending on the panel's last period."""
    return horizon + (step or horizon) * (windows - 1)


def keep_active_series(panel: Panel, holdout: int, lookback: int, min_nonzero: int) -> Panel:
    """Keep series with at least ``min_nonzero`` non-zero periods among the ``lookback`` periods
    before the last ``holdout`` periods (the test part, which selection never looks at)."""
    periods = panel.periods.sort()
    test_start = periods[len(periods) - holdout]
    start_index = periods.to_list().index(test_start)
    window_start = periods[max(0, start_index - lookback)]
    counts = (panel.data.filter(pl.col("timestamp").is_between(window_start, test_start,
                                                               closed="left"))
              .group_by(SERIES_KEY).agg((pl.col("y") > 0).sum().alias("nonzero")))
    active = counts.filter(pl.col("nonzero") >= min_nonzero)
    kept = panel.select_series(active)
    kept.log = {**panel.log, "series": kept.n_series, "rows": kept.data.height,
                "series_dropped_inactive": panel.n_series - kept.n_series}
    return kept
