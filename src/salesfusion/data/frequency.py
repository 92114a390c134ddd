"""Everything the package knows about panel frequencies: day, week (Monday start) and month.

Period arithmetic (truncation to a period start, offsets, ranges), season lengths and the
matching pandas aliases live here only, at the bottom of the layers, so that panel building,
features and models agree on what a period is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

import numpy as np
import polars as pl

Frequency = Literal["D", "W", "M"]
FREQUENCIES: tuple[str, ...] = get_args(Frequency)
TRUNCATE_EVERY = {"D": "1d", "W": "1w", "M": "1mo"}  # polars' weeks start on Monday
OFFSET_UNIT = {"D": "d", "W": "w", "M": "mo"}
PERIOD_DAYS = {"D": 1, "W": 7, "M": 30}  # nominal: a month counts as 30 days
SEASON_LENGTH = {"D": 7, "W": 52, "M": 12}
PANDAS_FREQ = {"D": "D", "W": "W-MON", "M": "MS"}  # period starts, as pandas names them


def truncate_to_period(expr: pl.Expr, freq: str) -> pl.Expr:
    """The start of the period each timestamp falls in."""
    return expr.dt.truncate(TRUNCATE_EVERY[freq])


def offset(expr: pl.Expr, freq: str, periods: int) -> pl.Expr:
    """Shift period starts by a whole number of periods."""
    return expr.dt.offset_by(f"{periods}{OFFSET_UNIT[freq]}")


def period_range(start: object, end: object, freq: str) -> pl.Series:
    """Every period start from ``start`` to ``end`` inclusive."""
    return pl.datetime_range(start, end, TRUNCATE_EVERY[freq], eager=True, time_unit="us")


def periods_after(last: datetime, freq: str, horizon: int) -> pl.Series:
    """The ``horizon`` period starts that follow period ``last``."""
    first = pl.select(offset(pl.lit(last), freq, 1)).item()
    final = pl.select(offset(pl.lit(last), freq, horizon)).item()
    return period_range(first, final, freq).alias("timestamp")


def extend_periods(periods: np.ndarray, freq: str, horizon: int) -> np.ndarray:
    """``periods`` (ascending period starts) followed by the ``horizon`` periods after the last,
    in the same dtype: the history and forecast periods a covariate cube spans."""
    periods = np.asarray(periods)
    if horizon == 0:
        return periods
    future = periods_after(periods[-1], freq, horizon).to_numpy()
    return np.concatenate([periods, future.astype(periods.dtype)])
