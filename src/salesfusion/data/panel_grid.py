"""The panel's rows, built on integer codes: every (series, period) from a series' launch to its
end, with the period aggregates joined on.

A marketplace panel has millions of series and tens of millions of rows. Grouping, joining and
sorting them on the item and market strings of every row took most of the build's time and
memory (1M series x 52 weeks: 70 s and an 18 GB peak). Here the keys are coded once (polars
categoricals: a u32 per row), the series table (one row per series) is the only thing sorted by
the strings, and the rows are generated already in that order as integer ranges, so the large
frames are joined on one integer and never sorted.
"""

from __future__ import annotations

import polars as pl

SERIES_KEY = ["item_id", "market"]
_KEY = "_series_code"  # one integer per (item, market) pair of codes


def aggregate_periods(frame: pl.DataFrame, sums: dict[str, pl.Expr], means: dict[str, pl.Expr],
                      one_row_per_period: bool = False) -> pl.DataFrame:
    """``frame`` (rows with ``item_id, market, period``) aggregated per series and period: the
    sum of each of ``sums`` and the mean of each of ``means``, named by their keys. The series
    keys come back as categoricals (see ``series_table``).

    ``one_row_per_period``: the caller knows each (series, period) has one row, so each row is
    its period's aggregate, computed row-wise as the group-by would (the sum of a missing value
    is 0) without its hash table, which at 50M rows took 17 s and 9 GB.

    Eager on purpose: polars' lazy group-by adds a group's floats in an order that varies from
    run to run (the last bits of a revenue sum), the eager one in row order, as the build did."""
    coded = frame.select(*(pl.col(k).cast(pl.Categorical) for k in SERIES_KEY), "period",
                         *(expr.alias(name) for name, expr in (sums | means).items()))
    if one_row_per_period:  # + 0.0: a sum is never -0.0
        return coded.with_columns(pl.col(name).fill_null(0.0) + 0.0 for name in sums)
    return coded.group_by(*SERIES_KEY, "period").agg(
        *(pl.col(name).sum() for name in sums), *(pl.col(name).mean() for name in means))


def _series_code() -> pl.Expr:
    item, market = (pl.col(k).to_physical().cast(pl.UInt64) for k in SERIES_KEY)
    return (item * 2**32 + market).alias(_KEY)


def series_table(aggregates: pl.DataFrame) -> pl.DataFrame:
    """One row per series of ``aggregate_periods``' result, sorted by item and market (as text):
    its first period (``launch``) and last period with sales (``last_sale``, null if none)."""
    return (aggregates.lazy().group_by(SERIES_KEY).agg(
                pl.col("period").min().alias("launch"),
                pl.col("period").filter(pl.col("y") > 0).max().alias("last_sale"))
            .with_columns(_series_code())
            .with_columns(pl.col(k).cast(pl.String) for k in SERIES_KEY)
            .sort(SERIES_KEY).collect())


def grid_rows(series: pl.DataFrame, aggregates: pl.DataFrame, periods: pl.Series) -> pl.DataFrame:
    """The panel rows, sorted by series and period: ``item_id, market, period`` for every period
    of ``periods`` from each series' ``launch`` to its ``end``, then the aggregate columns where
    the period has a row in ``aggregates`` (null otherwise).

    ``series`` is ``series_table``'s result with ``end``, none ending before its launch;
    ``periods`` are ascending and hold every launch, end and aggregate period."""
    n_periods = len(periods)
    live = series.with_row_index("_row")
    live = live.with_columns(_first=periods.search_sorted(live["launch"]),
                             _last=periods.search_sorted(live["end"]))
    rows = (live.lazy().select("_row", pl.int_ranges("_first", pl.col("_last") + 1)
                               .alias("_period_index"))
            .explode("_period_index")
            .with_columns((pl.col("_row").cast(pl.Int64) * n_periods
                           + pl.col("_period_index")).alias("_cell")))
    codes = live.select(_KEY, "_row")
    keyed = (aggregates.lazy().with_columns(_series_code())
             .join(codes.lazy(), on=_KEY, how="inner")
             .with_columns((pl.col("_row").cast(pl.Int64) * n_periods
                            + pl.lit(periods).search_sorted(pl.col("period")).cast(pl.Int64))
                           .alias("_cell"))
             .drop(*SERIES_KEY, "period", _KEY, "_row"))
    joined = rows.join(keyed, on="_cell", how="left", maintain_order="left").collect()
    keys = live.select(SERIES_KEY)
    return pl.concat([
        keys.select(pl.col(k).gather(joined["_row"]) for k in SERIES_KEY),
        pl.DataFrame({"period": periods.gather(joined["_period_index"])}),
        joined.drop("_row", "_period_index", "_cell")], how="horizontal")

