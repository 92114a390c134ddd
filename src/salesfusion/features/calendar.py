"""Period arithmetic and calendar features for day, week (Monday start) and month panels."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

TRUNCATE_EVERY = {"D": "1d", "W": "1w", "M": "1mo"}  # polars' weeks start on Monday
PERIOD_DAYS = {"D": 1, "W": 7, "M": 30}
SEASON_LENGTH = {"D": 7, "W": 52, "M": 12}


def truncate_to_period(expr: pl.Expr, freq: str) -> pl.Expr:
    """The start of the period each timestamp falls in."""
    return expr.dt.truncate(TRUNCATE_EVERY[freq])


def offset(expr: pl.Expr, freq: str, periods: int) -> pl.Expr:
    """Shift period starts by a whole number of periods."""
    unit = {"D": "d", "W": "w", "M": "mo"}[freq]
    return expr.dt.offset_by(f"{periods}{unit}")


def period_range(start: object, end: object, freq: str) -> pl.Series:
    """Every period start from ``start`` to ``end`` inclusive."""
    return pl.datetime_range(start, end, TRUNCATE_EVERY[freq], eager=True, time_unit="us")


def periods_after(last: datetime, freq: str, horizon: int) -> pl.Series:
    """The ``horizon`` period starts that follow period ``last``."""
    first = pl.select(offset(pl.lit(last), freq, 1)).item()
    final = pl.select(offset(pl.lit(last), freq, horizon)).item()
    return period_range(first, final, freq).alias("timestamp")


def calendar_features(timestamps: np.ndarray, freq: str) -> dict[str, np.ndarray]:
    """Calendar position of each period start: week of year, month, and (daily) day of week."""
    series = pl.Series(timestamps).cast(pl.Datetime("us"))
    features = {"month": series.dt.month().to_numpy().astype(np.float32)}
    if freq in ("D", "W"):
        features["week_of_year"] = series.dt.week().to_numpy().astype(np.float32)
    if freq == "D":
        features["day_of_week"] = series.dt.weekday().to_numpy().astype(np.float32)
    return features
