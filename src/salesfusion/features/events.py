"""Live-stream / KOL event covariates per series and period, with decay transforms.

Events are schedules (a live stream is announced before it airs), so they are future-known: the
covariates of a forecast period may use the events planned in it. Per (item, market, period):

- ``event_item``: events featuring the item in that market and period (an event without an item
  id is market-wide and counts for no single item);
- ``event_item_audience``: log1p of their summed audience (0 without an audience column);
- ``event_market``: log1p of all events in the market in the period (market-wide activity);
- ``event_decay_h<h>``: the decayed stock of the item's events with half-life ``h`` periods,
  ``stock_t = stock_{t-1} * 2^(-1/h) + event_item_t`` - the KOL decay transforms: how long an
  uplift lasts differs by market (seed 002), so a model weighs several half-lives per market
  rather than assume one.
"""

from __future__ import annotations

import numpy as np
import polars as pl

HALF_LIVES = (0.5, 1.0, 2.0, 4.0)


def event_names(half_lives: tuple[float, ...] = HALF_LIVES) -> list[str]:
    return (["event_item", "event_item_audience", "event_market"]
            + [f"event_decay_h{h:g}" for h in half_lives])


def event_cube(events: pl.DataFrame, keys: pl.DataFrame, periods: np.ndarray,
               half_lives: tuple[float, ...] = HALF_LIVES) -> np.ndarray:
    """(series, period, channel) event covariates for the series ``keys`` (item_id, market) over
    ``periods``; ``events`` as returned by ``data.events.period_events``. Channels follow
    ``event_names``."""
    n_series, n_periods = keys.height, len(periods)
    column = {p: i for i, p in enumerate(np.asarray(periods).astype("datetime64[us]"))}
    events = events.filter(pl.col("timestamp").is_in(pl.Series(periods).cast(pl.Datetime("us"))
                                                     .implode()))
    index = keys.with_row_index("row")
    item_count = np.zeros((n_series, n_periods))
    item_audience = np.zeros((n_series, n_periods))
    featured = events.filter(pl.col("item_id").is_not_null()).join(
        index, on=["item_id", "market"])
    if featured.height:
        cols = np.array([column[t] for t in featured["timestamp"].to_numpy()])
        np.add.at(item_count, (featured["row"].to_numpy(), cols), featured["n_events"].to_numpy())
        np.add.at(item_audience, (featured["row"].to_numpy(), cols),
                  featured["audience"].to_numpy())
    per_market = events.group_by("market", "timestamp").agg(pl.col("n_events").sum())
    market_count = np.zeros((n_series, n_periods))
    markets = keys["market"].to_numpy()
    for market, stamp, count in per_market.iter_rows():
        market_count[markets == market, column[np.datetime64(stamp, "us")]] = count
    channels = [item_count, np.log1p(item_audience), np.log1p(market_count)]
    for half_life in half_lives:
        keep = 2.0 ** (-1.0 / half_life)
        stock = np.zeros_like(item_count)
        running = np.zeros(n_series)
        for t in range(n_periods):
            running = running * keep + item_count[:, t]
            stock[:, t] = running
        channels.append(stock)
    return np.stack(channels, axis=-1).astype(np.float32)
