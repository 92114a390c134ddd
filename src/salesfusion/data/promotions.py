"""Promotion calendars given as date ranges, expanded to the panel's periods.

A shop plans promotions as ranges ("20 % off shoes in DE from 2024-03-28 to 2024-04-02"), not
as a value per week. ``promotions:`` in the spec lists such calendars: roles ``start`` and
``end`` (inclusive dates; a time of day is ignored) and, as an exogenous table, any of
``market``, ``item_id`` or ``attribute`` (with ``attribute_of``) as keys; a calendar without
keys applies to every series. Each calendar becomes one future-known covariate, named by its
``name`` (default ``promo_share``): the share of the period's days inside a range, so a daily
panel reads 0 or 1, a weekly panel 3/7 for a promotion from Friday to Sunday, and a monthly one
the fraction of the month's days. A share rather than a 0/1 flag keeps a two-day flash sale
from weighing like a week-long one in a weekly or monthly panel.

The rules (errors name the file, column, data row and value, exit 2):

- ``end`` before ``start`` is refused, as is a blank start, end or key cell.
- A market, item or attribute value that no other table knows (the sales and markets tables
  for markets, the sales and items tables for items, the items table's ``attribute_of``
  columns for attribute values) is refused: it is a misspelt key that would reach no series.
- Overlapping ranges of the same key count each day once (a day is on promotion or not):
  calendars often hold a site-wide sale and a longer campaign that cover the same days.
- A calendar says when there is *no* promotion too: every key the data knows gets 0 on the
  days outside its ranges, from the first sales day until a year after the last one (or the
  last range's end, when later), so forecasts up to a year ahead read "no promotion planned"
  instead of carrying the last value forward, and a key without any range reads 0, not the
  channel's mean.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import polars as pl

from salesfusion.data.columns import first_rows
from salesfusion.data.findings import first_ids, listed
from salesfusion.data.frequency import TRUNCATE_EVERY, offset, truncate_to_period
from salesfusion.errors import InputError

if TYPE_CHECKING:
    from salesfusion.data.spec import DatasetSpec, PromotionSpec

KEYS = ("item_id", "market", "attribute")
# Key role -> the values the data knows for it, given the calendar (its attribute_of columns).
Known = dict[str, Callable[["PromotionSpec"], pl.Series]]
# How far past the last sales day a calendar's "no promotion" days reach (see the docstring).
FUTURE_DAYS = 366


def calendar_keys(table: PromotionSpec) -> list[str]:
    return [k for k in KEYS if k in table.columns]


def promotion_ranges(spec: DatasetSpec, frames: list[pl.DataFrame],
                     loaded: dict[str, pl.DataFrame]) -> list[pl.DataFrame]:
    """Each loaded calendar (roles as columns, file order) checked, as ranges: its keys,
    ``start``, ``end`` (midnights) and ``on`` (True for a promotion, False for the background
    range of every known key over the data's span); ``period_shares`` expands them."""
    sales = loaded["sales"]
    first_day = sales["timestamp"].min().replace(hour=0, minute=0, second=0, microsecond=0)
    last_day = sales["timestamp"].max() + timedelta(days=FUTURE_DAYS)
    known = _known_values(loaded)
    out = []
    for table, frame in zip(spec.promotions, frames, strict=True):
        where = str(spec.resolve(table.path))
        keys = calendar_keys(table)
        ranges = frame.select(*keys, pl.col("start").dt.truncate("1d"),
                              pl.col("end").dt.truncate("1d"))
        backwards = ranges["end"] < ranges["start"]
        if backwards.any():
            shown = ranges["start"].dt.strftime("%Y-%m-%d") + " to " + \
                ranges["end"].dt.strftime("%Y-%m-%d")
            raise InputError(f"{where}: column '{table.columns['end']}' (role end) is before "
                             f"column '{table.columns['start']}' (role start): "
                             f"{first_rows(backwards, shown)}")
        for key in keys:
            values = known[key](table)
            unknown = ~frame[key].is_in(values.implode())
            if unknown.any():
                noun = {"item_id": "item", "market": "market", "attribute": "value"}[key]
                raise InputError(f"{where}: column '{table.columns[key]}' (role {key}) names "
                                 f"an unknown {noun} (not in {_source(key, table)}): "
                                 f"{first_rows(unknown, frame[key])}; known: "
                                 f"{listed(first_ids(values.sort()))}")
        background = _universe(keys, table, known, sales, ranges)
        span_end = max(last_day, ranges["end"].max())
        out.append(pl.concat([
            ranges.with_columns(pl.lit(True).alias("on")),
            background.with_columns(pl.lit(first_day).cast(pl.Datetime("us")).alias("start"),
                                    pl.lit(span_end).cast(pl.Datetime("us")).alias("end"),
                                    pl.lit(False).alias("on")).drop("_one", strict=False)]))
    return out


def _known_values(loaded: dict[str, pl.DataFrame]) -> Known:
    """Key role -> a function of the calendar giving the values the data knows for it."""
    def column(table: str, name: str) -> pl.Series:
        frame = loaded.get(table)
        return frame[name].drop_nulls() if frame is not None and name in frame.columns \
            else pl.Series(name, [], pl.Utf8)

    markets = pl.concat([column("sales", "market"), column("markets", "market")]).unique()
    items = pl.concat([column("sales", "item_id"), column("items", "item_id")]).unique()
    return {"market": lambda _: markets, "item_id": lambda _: items,
            "attribute": lambda table: pl.concat(
                [column("items", a).cast(pl.Utf8) for a in table.attribute_of]).unique()}


def _source(key: str, table: PromotionSpec) -> str:
    if key == "attribute":
        return f"the items table's {', '.join(table.attribute_of)}"
    return "the sales or markets table" if key == "market" else "the sales or items table"


def _universe(keys: list[str], table: PromotionSpec, known: Known, sales: pl.DataFrame,
              ranges: pl.DataFrame) -> pl.DataFrame:
    """Every key the calendar's covariate is read at: the sold (item, market) pairs for an
    item-and-market calendar, else every combination of the known values of its keys; plus
    the calendar's own keys."""
    if not keys:  # one background range for every series; the column is dropped after
        return pl.DataFrame({"_one": [0]})
    if set(keys) == {"item_id", "market"}:
        combos = sales.select(keys).unique()
    else:
        combos = pl.DataFrame({keys[0]: known[keys[0]](table)})
        for key in keys[1:]:
            combos = combos.join(pl.DataFrame({key: known[key](table)}), how="cross")
    return pl.concat([combos.select(keys), ranges.select(keys)]).unique()


def period_shares(ranges: pl.DataFrame, keys: list[str], freq: str, name: str) -> pl.DataFrame:
    """``promotion_ranges``' frame at ``freq``: ``keys``, ``timestamp`` (period starts) and
    ``name``, the share of the period's days inside a promotion (each day counted once), for
    every period its ranges reach."""
    group = keys or ["_all"]
    if not keys:
        ranges = ranges.with_columns(pl.lit(0).alias("_all"))
    days = (ranges.filter(pl.col("on"))
            .select(*group, pl.datetime_ranges("start", "end", "1d", time_unit="us")
                    .alias("day"))
            .explode("day").unique()
            .group_by(*group, truncate_to_period(pl.col("day"), freq).alias("timestamp"))
            .agg(pl.len().alias("_days")))
    grid = (ranges.group_by(*group).agg(pl.col("start").min(), pl.col("end").max())
            .select(*group, pl.datetime_ranges(truncate_to_period(pl.col("start"), freq),
                                               truncate_to_period(pl.col("end"), freq),
                                               TRUNCATE_EVERY[freq], time_unit="us")
                    .alias("timestamp"))
            .explode("timestamp"))
    length = (offset(pl.col("timestamp"), freq, 1) - pl.col("timestamp")).dt.total_days()
    return (grid.join(days, on=[*group, "timestamp"], how="left")
            .select(*keys, "timestamp",
                    (pl.col("_days").fill_null(0) / length).cast(pl.Float64).alias(name))
            .sort(*keys, "timestamp"))
