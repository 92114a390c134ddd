"""Covariates of launch rows, for launch models that read no sales history.

A launch row is one period of a launched series: ``item_id, market, launch, timestamp`` (the
launch period and the forecast period). A launch model cannot read a covariate the way a
history model does (a series has no history before its launch), so each channel of the panel
(``data.covariate_tables``, and the event covariates of ``features.events``) becomes features
by what a planner knows of it when the product launches:

- a future-known channel (a price plan, a promotion calendar, a scheduled live stream): its
  value in the forecast period, ``fk_<channel>``;
- a past-only channel (a search trend, a market index): its values over the ``window``
  periods before the launch, summarised as the last value ``pre_<channel>_last`` and the mean
  ``pre_<channel>_mean``. Periods after the history's last one are never read: a launch later
  than the history's end reads the latest known value in their place, as a forecast made at
  that end would.

Values are as the tables hold them (prices as logs, ``features.covariates``), carried forward
over gaps up to the history's end; NaN where unknown, which a tree model reads as missing. A
past-only channel keyed by the series itself (a price seen only where it sold, a review count)
has no value before the launch: ``unreadable`` names those so the model can say it could not
read them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from salesfusion.data.frequency import offset, period_range
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.features.covariates import filled, table_matrices
from salesfusion.features.events import event_cube, event_names
from salesfusion.features.lags import forward_fill


@dataclass(frozen=True)
class LaunchChannels:
    """The channels a launch model reads: ``future_known`` in the forecast period and
    ``past_only`` before the launch, event covariates (``events``) among the future-known."""

    future_known: tuple[str, ...]
    past_only: tuple[str, ...]
    events: bool

    @classmethod
    def of(cls, panel: Panel) -> LaunchChannels:
        tabled = [c for t in panel.covariate_tables for c in t.channels]
        return cls(future_known=tuple(c for c in tabled if c in panel.future_known),
                   past_only=tuple(c for c in tabled if c in panel.past_only),
                   events=panel.events is not None)

    def feature_names(self) -> list[str]:
        return ([f"fk_{name}" for name in (event_names() if self.events else [])]
                + [f"fk_{c}" for c in self.future_known]
                + [f"pre_{c}_{summary}" for c in self.past_only for summary in ("last", "mean")])

    def to_json(self) -> dict:
        return {"future_known": list(self.future_known), "past_only": list(self.past_only),
                "events": self.events}

    @classmethod
    def from_json(cls, data: dict) -> LaunchChannels:
        return cls(future_known=tuple(data["future_known"]), past_only=tuple(data["past_only"]),
                   events=bool(data["events"]))


def launch_covariates(panel: Panel, rows: pl.DataFrame, channels: LaunchChannels,
                      window: int) -> dict[str, np.ndarray]:
    """``channels.feature_names()`` -> values aligned with ``rows`` (see the module docstring).
    A channel ``panel`` lacks is all NaN."""
    keys = rows.select(SERIES_KEY).unique(maintain_order=True)
    last = panel.data["timestamp"].max()
    first = pl.select(offset(pl.lit(rows["launch"].min()), panel.freq, -window)).item()
    periods = period_range(min(first, last), max(rows["timestamp"].max(), last), panel.freq)
    period_frame = pl.DataFrame({"timestamp": periods}).with_row_index("col")
    known = int((periods <= last).sum())
    located = (rows.select(*SERIES_KEY, "launch", "timestamp")
               .join(keys.with_row_index("series"), on=SERIES_KEY, how="left",
                     maintain_order="left")
               .join(period_frame.rename({"col": "at"}), on="timestamp", how="left",
                     maintain_order="left")
               .join(period_frame.rename({"timestamp": "launch", "col": "launched"}),
                     on="launch", how="left", maintain_order="left"))
    series = located["series"].to_numpy()
    at = located["at"].to_numpy()
    launched = located["launched"].to_numpy()
    matrices = _matrices(panel, keys, period_frame, channels)
    columns: dict[str, np.ndarray] = {}
    if channels.events:
        cube = (event_cube(panel.events, keys, periods.to_numpy()) if panel.events is not None
                else np.full((keys.height, len(periods), len(event_names())), np.nan))
        for index, name in enumerate(event_names()):
            columns[f"fk_{name}"] = cube[series, at, index].astype(float)
    for channel in channels.future_known:
        columns[f"fk_{channel}"] = filled(matrices[channel], known)[series, at]
    # Before the launch, and never after the history's end: a later column reads the last
    # known one (clipped index), the value a forecast made at that end would see.
    before = launched[:, None] - np.arange(window, 0, -1)[None, :]
    readable = before >= 0
    before = np.clip(before, 0, max(known - 1, 0))
    for channel in channels.past_only:
        history = forward_fill(matrices[channel][:, :known]) if known else matrices[channel]
        values = np.where(readable, history[series[:, None], before], np.nan)
        columns[f"pre_{channel}_last"] = values[:, -1]
        # The mean of the window's known values; NaN (not numpy's warning) for a window
        # without any.
        counts = np.isfinite(values).sum(axis=1)
        totals = np.where(np.isfinite(values), values, 0.0).sum(axis=1)
        columns[f"pre_{channel}_mean"] = np.where(counts > 0, totals / np.maximum(counts, 1),
                                                  np.nan)
    return columns


def unreadable(columns: dict[str, np.ndarray], channels: LaunchChannels) -> list[str]:
    """The past-only channels without a single value before any launch of the rows."""
    return [c for c in channels.past_only if np.isnan(columns[f"pre_{c}_last"]).all()]


def _matrices(panel: Panel, keys: pl.DataFrame, period_frame: pl.DataFrame,
              channels: LaunchChannels) -> dict[str, np.ndarray]:
    wanted = {*channels.future_known, *channels.past_only}
    matrices = {c: np.full((keys.height, period_frame.height), np.nan) for c in wanted}
    for table in panel.covariate_tables:
        read = [c for c in table.channels if c in wanted]
        if read:
            matrices.update(zip(read, table_matrices(table, read, panel, keys, period_frame),
                                strict=True))
    return matrices
