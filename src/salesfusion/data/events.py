"""Live-stream / KOL events counted per (market, period, item): the panel's ``events`` table.

The covariates models read from it (per-series counts, audience, decay transforms) are
``features.events``.
"""

from __future__ import annotations

import polars as pl

from salesfusion.data.frequency import truncate_to_period


def period_events(events: pl.DataFrame, freq: str) -> pl.DataFrame:
    """Events per (market, period, item): ``market, timestamp, item_id, n_events, audience``."""
    frame = events.with_columns(truncate_to_period(pl.col("timestamp"), freq))
    if "item_id" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.String).alias("item_id"))
    audience = (pl.col("audience").cast(pl.Float64).fill_null(0.0).sum()
                if "audience" in frame.columns else pl.lit(0.0))
    return (frame.group_by("market", "timestamp", "item_id")
            .agg(pl.len().alias("n_events"), audience.alias("audience"))
            .sort("market", "timestamp"))
