"""Calendar features of period starts; the period arithmetic itself is ``data.frequency``."""

from __future__ import annotations

import numpy as np
import polars as pl

# The channels a neural model's window step carries for the calendar (``year_position``).
CALENDAR_CHANNELS: tuple[str, ...] = ("year_sin", "year_cos")
CALENDAR_WIDTH = len(CALENDAR_CHANNELS)


def calendar_features(timestamps: np.ndarray, freq: str) -> dict[str, np.ndarray]:
    """Calendar position of each period start: week of year, month, and (daily) day of week."""
    series = pl.Series(timestamps).cast(pl.Datetime("us"))
    features = {"month": series.dt.month().to_numpy().astype(np.float32)}
    if freq in ("D", "W"):
        features["week_of_year"] = series.dt.week().to_numpy().astype(np.float32)
    if freq == "D":
        features["day_of_week"] = series.dt.weekday().to_numpy().astype(np.float32)
    return features


def year_position(periods: np.ndarray, freq: str) -> np.ndarray:
    """(T, ``CALENDAR_WIDTH``) sine/cosine of the position in the year of each period: the
    ``CALENDAR_CHANNELS``, so that the last week of a year sits next to the first."""
    features = calendar_features(periods, freq)
    position = (features["week_of_year"] / 52.0 if "week_of_year" in features
                else features["month"] / 12.0)
    angle = 2 * np.pi * position
    return np.stack([np.sin(angle), np.cos(angle)], axis=1).astype(np.float32)
