"""Transactions to a regular panel: one row per (item, market, period) from launch onwards.

The rules, all declared in the spec's ``cleaning`` section and counted in ``Panel.log``:

- Item ids were stripped and upper-cased (``normalize_item_ids``, by ``data.validate.normalize_id``,
  which never merges ids that differ in more than reversible letter case) in every table when the
  tables were loaded; ids not matching ``item_id_pattern`` are not products (postage, fees,
  vouchers) and are dropped. Order-level fields given on an order's first line only were
  filled within each invoice where the spec asks (``sales.fill_order_fields``); a blank market is
  refused.
- ``returns: drop`` drops cancelled invoices (``cancelled_invoice_prefix``) and every row with
  quantity <= 0, so demand counts gross sales. ``returns: net`` keeps them, so a period's units
  are sales minus returns; a period whose net units are negative is clipped to 0 (demand cannot
  be negative; the excess return is counted in the log).
- Rows with price <= 0 (free samples, adjustments) are dropped when ``require_positive_price``.
- A partly covered first or last period (the data starts mid-week, say) is dropped when
  ``drop_partial_periods``, so every period in the panel is complete.
- A series runs from its launch (the item's ``launch_date`` when given and earlier, else its first
  sale in that market) to the last period, or to the item's ``end_date`` (delisted, or observed
  only for a window) when the items table gives one and it is not before the series' last sale:
  a period without sales between them is a real 0 ("did not sell"); periods before launch or
  after the end have no row at all ("did not exist", masked), so nothing is zero-filled there.
- ``promo`` and numeric sales columns declared as covariates are the mean of the period's rows.
- ``price`` is the units-weighted mean unit price of the period in the seller's currency; in a
  period without sales it is the mean listed price of the period's rows (a period-grain table
  lists prices of unsold weeks) and null when there is none; ``price_local`` converts it into
  the buyer's currency with the mean exchange rate of the period (``fx_rate``: buyer currency
  per seller currency).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from salesfusion.data.covariate_tables import (
    CovariateTable,
    apply_plan,
    check_unique_channels,
    exogenous_tables,
    sales_covariate_columns,
    sales_covariate_kinds,
    sales_table,
)
from salesfusion.data.events import period_events
from salesfusion.data.frames import is_pandas, panel_data, to_polars, to_polars_or_none
from salesfusion.data.frequency import FREQUENCIES, offset, period_range, truncate_to_period
from salesfusion.data.fx import attach_fx, period_rates
from salesfusion.data.panel_grid import SERIES_KEY, aggregate_periods, grid_rows, series_table
from salesfusion.data.reviews import ReviewTexts, review_table, review_texts
from salesfusion.data.spec import DatasetSpec
from salesfusion.data.validate import Tables
from salesfusion.errors import InputError

# The tables a Panel may be given as pandas frames (``data`` first).
_FRAMES = ("data", "items", "markets", "events")


@dataclass
class Panel:
    """A regular panel of demand with its static tables.

    ``data`` has ``item_id, market, timestamp, y`` (units) plus ``price``, ``price_local`` and
    ``fx_rate`` where known and the sales-table covariates, sorted by series and time.
    """

    data: pl.DataFrame
    freq: str
    items: pl.DataFrame | None = None
    markets: pl.DataFrame | None = None
    static_text: list[str] = field(default_factory=list)
    static_categorical: list[str] = field(default_factory=list)
    static_numeric: list[str] = field(default_factory=list)
    past_only: list[str] = field(default_factory=list)
    future_known: list[str] = field(default_factory=list)
    log: dict[str, int] = field(default_factory=dict)
    image_root: Path | None = None  # folder the items' image paths are relative to
    # Per-period tables kept whole (not cut by ``until``): events are schedules and future-known
    # covariates are known ahead by declaration; consumers read past-only columns at history
    # periods only. ``events``: see ``data.events.period_events``; ``covariate_tables``: see
    # ``data.covariate_tables`` (their channels are ``past_only`` + ``future_known``).
    events: pl.DataFrame | None = None
    covariate_tables: list[CovariateTable] = field(default_factory=list)
    # Review texts a model turns into channels when the spec asks (``data.reviews``); None once
    # a model has (``encoders.review_text``), so that nothing encodes them twice.
    review_texts: ReviewTexts | None = None

    def __post_init__(self) -> None:
        # pandas frames (``data``, ``items``, ``markets``, ``events``) are converted to polars
        # here, once (see ``salesfusion.data.frames``).
        if not any(is_pandas(getattr(self, name)) for name in _FRAMES):
            return
        if is_pandas(self.data):
            self.data = panel_data(self.data, self.freq)
        for name in _FRAMES[1:]:
            setattr(self, name, to_polars_or_none(getattr(self, name), f"Panel {name}"))

    @property
    def periods(self) -> pl.Series:
        return self.data["timestamp"].unique().sort()

    @property
    def n_series(self) -> int:
        return self.data.select(SERIES_KEY).n_unique()

    def series(self) -> pl.DataFrame:
        """One row per series with its first and last period and number of periods."""
        return (self.data.group_by(SERIES_KEY, maintain_order=True)
                .agg(pl.col("timestamp").min().alias("start"),
                     pl.col("timestamp").max().alias("end"), pl.len().alias("length")))

    def until(self, last: datetime) -> Panel:
        """The panel as it was known at the end of period ``last`` (inclusive)."""
        return replace(self, data=self.data.filter(pl.col("timestamp") <= last))

    def between(self, first: datetime, last: datetime) -> Panel:
        return replace(self, data=self.data.filter(pl.col("timestamp").is_between(first, last)))

    def with_plan(self, plan: pl.DataFrame | Any, where: str = "plan") -> Panel:
        """The panel with a what-if plan of future-known covariates (prices, promotions) in
        place of its own values (see ``data.covariate_tables.apply_plan``); ``plan`` may be a
        polars or a pandas DataFrame."""
        return replace(self, covariate_tables=apply_plan(self.covariate_tables,
                                                         to_polars(plan, where),
                                                         self.future_known, where))

    def select_series(self, keys: pl.DataFrame) -> Panel:
        return replace(self, data=self.data.join(keys.select(SERIES_KEY).unique(),
                                                 on=SERIES_KEY, how="semi"))


def clean_transactions(sales: pl.DataFrame, spec: DatasetSpec) -> tuple[pl.DataFrame, dict]:
    """Apply the spec's cleaning policy to transaction rows; returns the rows and a count log."""
    policy = spec.cleaning
    log = {"rows_in": sales.height}
    frame = sales
    if policy.item_id_pattern:
        keep = frame["item_id"].str.contains(f"^(?:{policy.item_id_pattern})$")
        log["dropped_not_a_product"] = int((~keep).sum())
        frame = frame.filter(keep)
    cancelled = pl.lit(False)
    if policy.cancelled_invoice_prefix and "invoice" in frame.columns:
        cancelled = pl.col("invoice").str.starts_with(policy.cancelled_invoice_prefix)
    if policy.returns == "drop":
        # A zero row of a period-grain table is a real "did not sell"; in a transaction log it
        # carries nothing, so both grains give the same sums.
        negative = (pl.col("quantity") < 0) if spec.sales_grain == "period" \
            else (pl.col("quantity") <= 0)
        drop = cancelled | negative
        log["dropped_cancelled_or_returned"] = frame.select(drop.sum()).item()
        frame = frame.filter(~drop)
    if policy.require_positive_price and "price" in frame.columns:
        bad_price = pl.col("price") <= 0
        log["dropped_non_positive_price"] = frame.select(bad_price.sum()).item()
        frame = frame.filter(~bad_price)
    log["rows_kept"] = frame.height
    if frame.height == 0:
        raise InputError(f"{spec.resolve(spec.sales.path)}: no sales rows are left after the "
                         f"cleaning rules ({log})")
    return frame, log


def _complete_periods(frame: pl.DataFrame, freq: str) -> tuple[datetime, datetime, dict]:
    first_ts, last_ts = frame["timestamp"].min(), frame["timestamp"].max()
    bounds = pl.DataFrame({"t": [first_ts, last_ts]}).with_columns(
        truncate_to_period(pl.col("t"), freq).alias("start"))
    first_period, last_period = bounds["start"][0], bounds["start"][1]
    next_after_last = bounds.select(offset(pl.col("start"), freq, 1))[1, 0]
    log = {}
    if first_ts.date() > first_period.date():
        log["dropped_partial_first_period"] = 1
        first_period = bounds.select(offset(pl.col("start"), freq, 1))[0, 0]
    if (next_after_last - last_ts).days > 1:
        log["dropped_partial_last_period"] = 1
        last_period = bounds.select(offset(pl.col("start"), freq, -1))[1, 0]
    if first_period > last_period:
        raise InputError("the sales data cover no complete period at frequency "
                         f"'{freq}' (from {first_ts} to {last_ts})")
    return first_period, last_period, log


def build_panel(tables: Tables, freq: str | None = None) -> Panel:
    """Aggregate the spec's sales into a regular panel at ``freq`` (the spec's when None)."""
    spec = tables.spec
    freq = (freq or spec.freq).upper()
    if freq not in FREQUENCIES:
        raise InputError(f"unknown frequency '{freq}'; use one of {', '.join(FREQUENCIES)}")
    frame, log = clean_transactions(tables.sales, spec)
    frame = frame.with_columns(truncate_to_period(pl.col("timestamp"), freq).alias("period"))
    first, last = frame["period"].min(), frame["period"].max()
    if spec.cleaning.drop_partial_periods and spec.sales_grain == "transaction":
        # Coverage is judged on every raw row: a last day with only cancellations still counts.
        first, last, partial = _complete_periods(tables.sales, freq)
        log.update(partial)
    frame = frame.filter(pl.col("period").is_between(first, last))

    revenue = (pl.col("revenue") if "revenue" in frame.columns
               else pl.col("price") * pl.col("quantity") if "price" in frame.columns else None)
    sums = {"y": pl.col("quantity")}
    if revenue is not None:
        sums["revenue"] = revenue
    means = {"listed_price": pl.col("price")} if "price" in frame.columns else {}
    means |= {c: pl.col(c) for c in sales_covariate_columns(spec, frame.columns) if c != "price"}
    # A period-grain table is unique per (item, market, timestamp) (``load_tables`` checks it);
    # when its timestamps are period starts, each period has one row and needs no group-by.
    one_row_per_period = (spec.sales_grain == "period"
                          and bool((frame["timestamp"] == frame["period"]).all()))
    agg = aggregate_periods(frame, sums, means, one_row_per_period)
    del frame  # the period rows replace the transactions: a marketplace log is the largest frame
    negative = agg["y"] < 0
    log["periods_clipped_negative"] = int(negative.sum())
    agg = agg.with_columns(pl.col("y").clip(lower_bound=0))

    starts = series_table(agg)
    if tables.items is not None and "launch_date" in tables.items.columns:
        launches = tables.items.select(
            "item_id", truncate_to_period(pl.col("launch_date"), freq).alias("declared"))
        starts = (starts.join(launches, on="item_id", how="left", maintain_order="left")
                  .with_columns(pl.min_horizontal("launch", "declared").clip(lower_bound=first)
                                .alias("launch")).drop("declared"))
    starts = _series_ends(starts, tables.items, freq, last)
    log["series_ended_before_last_period"] = starts.filter(pl.col("end") < last).height
    starts = starts.filter(pl.col("end") >= pl.col("launch"))  # ended before launch: no rows
    panel = grid_rows(starts, agg, period_range(first, last, freq))
    del agg
    panel = panel.with_columns(pl.col("y").fill_null(0.0)).rename({"period": "timestamp"})
    if "revenue" in panel.columns:
        panel = panel.with_columns(
            pl.when(pl.col("y") > 0).then(pl.col("revenue") / pl.col("y"))
            .otherwise(pl.col("listed_price") if "listed_price" in panel.columns else None)
            .alias("price"),
            pl.col("revenue").fill_null(0.0))
    panel = panel.drop("listed_price", strict=False)
    if tables.fx is not None and "price" in panel.columns:
        rates = period_rates(tables.fx, freq, spec.currency, spec.fx.max_staleness_days)
        panel = attach_fx(panel, tables.markets, rates)
        log["periods_without_fx_rate"] = int(panel["fx_rate"].is_null().sum())
    channels = [c for c in dict.fromkeys(["price", "price_local",
                                          *sales_covariate_columns(spec, panel.columns)])
                if c in panel.columns]
    kinds = sales_covariate_kinds(spec, channels)
    covariates = [t for t in [sales_table(panel, channels)] if t is not None]
    past_only = [c for c in channels if not kinds[c]]
    future_known = [c for c in channels if kinds[c]]
    for table, past, future in exogenous_tables(spec, tables.exogenous, freq):
        covariates.append(table)
        past_only += past
        future_known += future
    texts = None
    if tables.reviews is not None:  # past-only: a review is known once written
        source = f"reviews ({spec.resolve(spec.reviews.path)})"
        covariates.append(review_table(tables.reviews, panel, freq, source))
        past_only += list(covariates[-1].channels)
        if spec.reviews.text_embedding is not None:
            texts = review_texts(tables.reviews, panel, freq, spec.reviews.text_embedding, source)
    check_unique_channels(covariates)
    log.update(series=starts.height, rows=panel.height)

    items_spec = spec.items
    return Panel(
        data=panel,  # sorted by series and time: grid_rows builds it in that order
        freq=freq,
        items=tables.items,
        markets=tables.markets,
        static_text=[r for r in ("title", "description") if items_spec and r in items_spec.columns],
        static_categorical=list(items_spec.static_categorical) if items_spec else [],
        static_numeric=list(items_spec.static_numeric) if items_spec else [],
        past_only=past_only,
        future_known=future_known,
        log=log,
        image_root=spec.images_dir(),
        events=period_events(tables.events, freq) if tables.events is not None else None,
        covariate_tables=covariates,
        review_texts=texts,
    )


def _series_ends(starts: pl.DataFrame, items: pl.DataFrame | None, freq: str,
                 last: datetime) -> pl.DataFrame:
    """``starts`` (``series_table``'s) with ``end``: the panel's last period, or the item's
    declared ``end_date`` period when it is earlier, but never before the series' last sale (a
    sale is real)."""
    starts = starts.with_columns(pl.lit(last).cast(pl.Datetime("us")).alias("end"))
    if items is None or "end_date" not in items.columns:
        return starts
    declared = items.select("item_id", truncate_to_period(pl.col("end_date"), freq)
                            .alias("_declared_end"))
    return (starts.join(declared, on="item_id", how="left", maintain_order="left")
            .with_columns(pl.when(pl.col("_declared_end").is_null()).then(pl.col("end"))
                          .otherwise(pl.min_horizontal("end", pl.max_horizontal(
                              "_declared_end", "last_sale"))).alias("end"))
            .drop("_declared_end"))
