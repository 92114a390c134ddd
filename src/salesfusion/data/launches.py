"""Launches in a panel: a series' launch is its first period in the panel, an item's launch its
earliest over markets, and ``period_since_launch`` counts a series' periods from 1 at launch.

A series that starts at the panel's first period may have been selling before the data begin
(left-censored): its first periods are not a launch. ``launch_rows`` leaves such series out
whenever the panel holds any series launched later.
"""

from __future__ import annotations

import polars as pl

from salesfusion.data.frequency import OFFSET_UNIT, truncate_to_period
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.errors import InputError

LAUNCH_COLUMNS = ["item_id", "market", "launch"]


def with_period_since_launch(data: pl.DataFrame) -> pl.DataFrame:
    """``data`` with ``period_since_launch`` (1 at each series' first period). A panel is
    regular from a series' launch on, so the count of earlier rows is the age."""
    return data.sort(*SERIES_KEY, "timestamp").with_columns(
        pl.col("timestamp").rank("ordinal").over(SERIES_KEY).cast(pl.Int64)
        .alias("period_since_launch"))


def item_launches(data: pl.DataFrame) -> pl.DataFrame:
    """``item_id, launch``: each item's first period in any market."""
    return data.group_by("item_id").agg(pl.col("timestamp").min().alias("launch")).sort("item_id")


def launch_rows(panel: Panel, length: int) -> tuple[pl.DataFrame, bool]:
    """The first ``length`` periods of every launch in the panel (``item_id, market,
    period_since_launch, y``) and whether they are true launches: False when every series starts
    at the panel's first period, so that running series stand in for launches."""
    aged = with_period_since_launch(panel.data).filter(pl.col("period_since_launch") <= length)
    first = panel.data["timestamp"].min()
    launched = aged.filter((pl.col("period_since_launch") == 1) & (pl.col("timestamp") > first))
    if launched.height:
        aged = aged.join(launched.select(SERIES_KEY), on=SERIES_KEY, how="semi")
    return aged.select(*SERIES_KEY, "period_since_launch", "y"), launched.height > 0


def launch_grid(launches: pl.DataFrame, horizon: int, freq: str) -> pl.DataFrame:
    """One row per launch and period since launch (1..``horizon``): ``item_id, market, launch,
    period_since_launch, timestamp``; the launch is the period holding the given date."""
    missing = [c for c in LAUNCH_COLUMNS if c not in launches.columns]
    if missing:
        raise InputError(f"launches need columns {LAUNCH_COLUMNS}; missing {missing}")
    if launches["launch"].null_count():
        item = launches.filter(pl.col("launch").is_null())["item_id"][0]
        raise InputError(f"launches: item {item!r} has no launch date")
    frame = launches.select(
        pl.col("item_id").cast(pl.String), pl.col("market").cast(pl.String),
        truncate_to_period(pl.col("launch").cast(pl.Datetime("us")), freq).alias("launch"),
    ).unique(maintain_order=True)
    doubled = frame.filter(pl.struct("item_id", "market").is_duplicated())
    if doubled.height:
        item, market = doubled.row(0)[:2]
        raise InputError(f"launches: item {item!r} in {market!r} is given two launch dates")
    steps = pl.DataFrame({"period_since_launch": pl.int_range(1, horizon + 1, eager=True)})
    step = (pl.col("period_since_launch") - 1).cast(pl.String) + OFFSET_UNIT[freq]
    return frame.join(steps, how="cross").with_columns(
        pl.col("launch").dt.offset_by(step).alias("timestamp"))


def covered_launches(launches: pl.DataFrame, history: Panel) -> pl.DataFrame:
    """The launched series that ``history`` already holds, with their first period there."""
    starts = history.series().select(*SERIES_KEY, "start")
    return launches.select(SERIES_KEY).unique().join(starts, on=SERIES_KEY, how="inner")


POOLED = "<all>"  # the group of every market (or category) pooled
MIN_LAUNCHES = 3  # launched series a market needs for a level of its own


def launch_levels(panel: Panel, length: int) -> dict[str, float]:
    """Mean demand over the first ``length`` periods of the panel's launches (``launch_rows``),
    per market with at least ``MIN_LAUNCHES`` of them, and pooled over every market
    (``POOLED``): the scale of a launch, which a market's running series do not give."""
    rows, _ = launch_rows(panel, length)
    levels = {POOLED: float(rows["y"].mean() or 0.0)}
    per_market = (rows.group_by("market")
                  .agg(pl.col("y").mean().alias("level"),
                       (pl.col("period_since_launch") == 1).sum().alias("launches"))
                  .filter(pl.col("launches") >= MIN_LAUNCHES))
    levels.update(zip(per_market["market"].to_list(), per_market["level"].to_list(),
                      strict=True))
    return levels
