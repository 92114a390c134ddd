"""Dynamic covariates as tables keyed the way a shop knows them.

A covariate is a number per period of some key: per (item, market) (a price or promotion plan),
per market (a holiday flag), for every series (a season index), or per value of an item
attribute (a search-trend series per category or colour term, reaching every item with that
value). Each ``CovariateTable`` keeps its own key, so nothing is copied per series until a model
asks for the values of the series it forecasts (``features.covariates.covariate_cube``), and a
new item reaches its attribute's series through the items table.

Where the tables come from:

- the sales table's ``price`` and ``promo`` roles, and numeric sales columns declared under its
  ``past_only`` / ``future_known``, aggregated per (item, market, period) with the panel
  (``price``: the units-weighted mean price, ``price_local`` in the buyer's currency where an FX
  table exists, others: the period mean). Their kind: declared when the sales table lists the
  role under ``past_only`` or ``future_known``; otherwise future-known for a ``period``-grain
  table (a list of planned weekly prices and promotions) and past-only for a transaction log (a
  price is only seen where something sold, so reading it for a forecast period would leak that
  a sale happened);
- each exogenous table of the spec, keyed by period and by any of market, item or attribute;
- each promotion calendar (date ranges, ``data.promotions``), keyed the same ways: the share of
  each period's days on promotion, future-known;
- the reviews table (``data.reviews``): the reviews written per (item, market or every market,
  period) and their mean rating, past-only.

Tables are kept whole (not cut at a backtest origin): future-known values are known ahead by
declaration, and consumers read past-only channels at history periods only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import polars as pl

from salesfusion.data.frequency import truncate_to_period
from salesfusion.data.promotions import period_shares
from salesfusion.data.spec import DatasetSpec, PromotionSpec, TableSpec
from salesfusion.data.spec_roles import SALES_COVARIATE_ROLES
from salesfusion.errors import InputError

# Channels entered as log values, so that a price ratio is a difference.
LOG_CHANNELS = ("price", "price_local")


@dataclass(frozen=True)
class CovariateTable:
    """``frame`` has the ``keys`` columns (``timestamp`` at period starts, plus any of
    ``item_id``, ``market`` or one items-table attribute column) and one column per channel."""

    frame: pl.DataFrame
    keys: tuple[str, ...]
    channels: tuple[str, ...]
    source: str

    @property
    def attribute(self) -> str | None:
        """The items column this table is keyed by, if it is attribute-keyed."""
        return next((k for k in self.keys if k not in ("timestamp", "item_id", "market")), None)

    def with_frame(self, frame: pl.DataFrame) -> CovariateTable:
        return replace(self, frame=frame)


def sales_covariate_columns(spec: DatasetSpec, columns: list[str]) -> list[str]:
    """The sales columns (roles or declared extra columns) that are covariates, in order."""
    declared = [*spec.sales.past_only, *spec.sales.future_known]
    wanted = [r for r in SALES_COVARIATE_ROLES if r in spec.sales.columns] + declared
    return [c for c in dict.fromkeys(wanted) if c in columns]


def sales_covariate_kinds(spec: DatasetSpec, channels: list[str]) -> dict[str, bool]:
    """Channel -> whether it is future-known (see the module docstring)."""
    default = spec.sales_grain == "period"
    kinds = {}
    for channel in channels:
        role = "price" if channel == "price_local" else channel
        kinds[channel] = (True if role in spec.sales.future_known
                          else False if role in spec.sales.past_only else default)
    return kinds


def sales_table(panel: pl.DataFrame, channels: list[str]) -> CovariateTable | None:
    if not channels:
        return None
    frame = panel.select("item_id", "market", "timestamp", *channels)
    return CovariateTable(frame=frame, keys=("item_id", "market", "timestamp"),
                          channels=tuple(channels), source="sales")


def exogenous_tables(spec: DatasetSpec, frames: list[pl.DataFrame],
                     freq: str) -> list[tuple[CovariateTable, list[str], list[str]]]:
    """Each exogenous table per period (values averaged within a period), then each promotion
    calendar (``frames`` holds its ranges after the exogenous tables, see ``data.promotions``)
    as the share of each period's days on promotion, with their past-only and future-known
    channel names. An attribute-keyed table gives one table per attribute it applies to, its
    channels named ``<column>_by_<attribute>``."""
    tables: list[tuple[str, TableSpec]] = [
        *((f"exogenous[{i}]", t) for i, t in enumerate(spec.exogenous)),
        *((f"promotions[{i}]", t) for i, t in enumerate(spec.promotions))]
    out = []
    for (name, table_spec), frame in zip(tables, frames, strict=True):
        keys = [k for k in ("item_id", "market", "attribute") if k in table_spec.columns]
        if isinstance(table_spec, PromotionSpec):
            columns = [table_spec.name]
            past_only, future_known = [], columns  # a calendar is planned: known ahead
            per_period = period_shares(frame, keys, freq, table_spec.name)
        else:
            columns = list(dict.fromkeys([*table_spec.past_only, *table_spec.future_known]))
            past_only, future_known = table_spec.past_only, table_spec.future_known
            per_period = (frame.with_columns(truncate_to_period(pl.col("timestamp"), freq))
                          .group_by(*keys, "timestamp").agg([pl.col(c).mean() for c in columns])
                          .sort(*keys, "timestamp"))
        source = f"{name} ({spec.resolve(table_spec.path)})"
        for attribute in table_spec.attribute_of or [None]:
            names = {c: f"{c}_by_{attribute}" if attribute else c for c in columns}
            renamed = per_period.rename(
                {**names, **({"attribute": attribute} if attribute else {})})
            table_keys = tuple(attribute if k == "attribute" else k for k in keys)
            table = CovariateTable(frame=renamed, keys=(*table_keys, "timestamp"),
                                   channels=tuple(names.values()), source=source)
            out.append((table, [names[c] for c in columns if c in past_only],
                        [names[c] for c in columns if c in future_known]))
    return out


def check_unique_channels(tables: list[CovariateTable]) -> None:
    seen: dict[str, str] = {}
    for table in tables:
        for channel in table.channels:
            if channel in seen:
                raise InputError(f"covariate '{channel}' comes from both {seen[channel]} and "
                                 f"{table.source}; rename one of the columns")
            seen[channel] = table.source


def apply_plan(tables: list[CovariateTable], plan: pl.DataFrame, future_known: list[str],
               where: str) -> list[CovariateTable]:
    """``tables`` with a what-if plan's values in place of theirs.

    ``plan`` has key columns (``timestamp`` and those of the tables it edits) and one column per
    future-known channel it sets; each row replaces (or adds) that key's value. A ``price``
    plan also moves ``price_local``: the planned price times the series' latest exchange rate
    (the rate implied by its latest known price and local price), unless the plan sets it.
    """
    channels = [c for c in plan.columns if c not in ("item_id", "market", "timestamp")]
    if "timestamp" not in plan.columns or not channels:
        raise InputError(f"{where}: a plan needs a 'timestamp' column and at least one "
                         f"covariate column; it has {plan.columns}")
    unknown = [c for c in channels if c not in future_known]
    if unknown:
        raise InputError(f"{where}: column(s) {unknown} are not future-known covariates of this "
                         f"data; plannable: {future_known}")
    plan = plan.with_columns(pl.col("timestamp").cast(pl.Datetime("us")))
    updated = list(tables)
    for index, table in enumerate(tables):
        set_here = [c for c in channels if c in table.channels]
        missing = [k for k in table.keys if k not in plan.columns]
        if set_here and missing:
            raise InputError(f"{where}: column(s) {set_here} are keyed by {list(table.keys)} "
                             f"({table.source}); the plan lacks {missing}")
        if "price" in set_here and "price_local" in table.channels \
                and "price_local" not in channels:
            plan = plan.join(_latest_rates(table), on=["item_id", "market"], how="left") \
                .with_columns((pl.col("price") * pl.col("_rate")).alias("price_local")) \
                .drop("_rate")
            set_here.append("price_local")
        if not set_here:
            continue
        rows = plan.select(*table.keys, *set_here).with_columns(
            [pl.col(c).cast(pl.Float64) for c in set_here])
        frame = table.frame.with_columns(pl.col("timestamp").cast(pl.Datetime("us")))
        merged = (frame.join(rows, on=list(table.keys), how="full", coalesce=True,
                             suffix="_plan")
                  .with_columns([pl.coalesce(f"{c}_plan", c).alias(c) for c in set_here])
                  .drop([f"{c}_plan" for c in set_here]))
        updated[index] = table.with_frame(merged.sort(*table.keys))
    return updated


def _latest_rates(table: CovariateTable) -> pl.DataFrame:
    return (table.frame.drop_nulls(["price", "price_local"]).sort("timestamp")
            .group_by("item_id", "market")
            .agg((pl.col("price_local") / pl.col("price")).last().alias("_rate")))
