"""Exchange rates per period, and conversion of the seller's prices into each buyer's currency."""

from __future__ import annotations

import math

import polars as pl

from salesfusion.data.columns import is_text_like
from salesfusion.data.frequency import PERIOD_DAYS, truncate_to_period
from salesfusion.errors import InputError

SHOWN_RATES = 3


def long_rates(frame: pl.DataFrame, where: str) -> pl.DataFrame:
    """The FX table as the file has it (``timestamp`` and one column per currency) as long
    rows (timestamp, currency, rate); an empty or non-numeric cell is a missing quote and
    dropped. A rate that is NaN, infinite, zero or negative is refused, naming its data row
    and value: it would turn every converted price into NaN, inf or a sign flip."""
    currencies = [c for c in frame.columns if c != "timestamp"]
    for name in currencies:
        dtype = frame.schema[name]
        if not (dtype.is_numeric() or is_text_like(dtype)):
            raise InputError(f"{where}: currency column '{name}' holds values of type {dtype}, "
                             f"not exchange rates")
    long = (frame.with_columns(pl.col(currencies).cast(pl.Utf8))
            .with_row_index("_row", offset=1)
            .unpivot(index=["_row", "timestamp"], on=currencies, variable_name="currency",
                     value_name="_raw")
            .with_columns(pl.col("_raw").str.strip_chars().cast(pl.Float64, strict=False)
                          .alias("rate")))
    bad = (long.filter(pl.col("rate").is_not_null()
                       & ~(pl.col("rate").is_finite() & (pl.col("rate") > 0)))
           .sort("_row", maintain_order=True))
    if bad.height:
        shown = ", ".join(f"data row {row} column '{currency}' ({raw!r})" for row, currency, raw
                          in bad.head(SHOWN_RATES).select("_row", "currency", "_raw").rows())
        raise InputError(f"{where}: exchange rates must be positive finite numbers: "
                         f"{bad.height} bad value(s), first: {shown}")
    return long.drop_nulls("rate").select("timestamp", "currency", "rate")


def period_rates(fx: pl.DataFrame, freq: str, seller_currency: str,
                 max_staleness_days: int) -> pl.DataFrame:
    """Units of each currency per 1 unit of the seller's currency, averaged over each period.

    A period without any quote (a daily panel's weekend) takes the previous period's rate for at
    most ``max_staleness_days``; beyond that the rate is missing rather than silently stale.
    """
    seller = fx.filter(pl.col("currency") == seller_currency).select(
        "timestamp", pl.col("rate").alias("seller_rate"))
    cross = (fx.join(seller, on="timestamp", how="inner")
             .with_columns((pl.col("rate") / pl.col("seller_rate")).alias("fx_rate"),
                           truncate_to_period(pl.col("timestamp"), freq).alias("period")))
    per_period = cross.group_by("currency", "period").agg(pl.col("fx_rate").mean())
    if per_period.height == 0:
        return per_period.rename({"period": "timestamp"})
    periods = pl.DataFrame({"period": per_period["period"].unique().sort()})
    limit = max(1, math.ceil(max_staleness_days / PERIOD_DAYS[freq]))
    full = (periods.join(per_period.select("currency").unique(), how="cross")
            .join(per_period, on=["currency", "period"], how="left").sort("currency", "period")
            .with_columns(pl.col("fx_rate").forward_fill(limit=limit).over("currency")))
    return full.rename({"period": "timestamp"})


def attach_fx(panel: pl.DataFrame, markets: pl.DataFrame, rates: pl.DataFrame) -> pl.DataFrame:
    """Add ``fx_rate`` (buyer currency per seller currency) and ``price_local`` to a panel."""
    currency = markets.select("market", "currency")
    joined = (panel.join(currency, on="market", how="left", maintain_order="left")
              .join(rates, on=["currency", "timestamp"], how="left", maintain_order="left"))
    return joined.with_columns((pl.col("price") * pl.col("fx_rate")).alias("price_local"))


def rates_on(fx: pl.DataFrame, days: pl.DataFrame, max_staleness_days: int) -> pl.Series:
    """The rate (units per 1 base currency) of each row of ``days`` (columns ``currency`` and
    ``day``, a midnight datetime): the latest quote of that currency on or before the day, and
    null when there is none within ``max_staleness_days`` (an FX table has no weekend quotes,
    so a Saturday order takes Friday's rate; an older quote would be a guess)."""
    quotes = fx.select("currency", pl.col("timestamp").dt.truncate("1d").alias("day"),
                       "rate").unique(["currency", "day"], keep="last").sort("day")
    wanted = days.select("currency", "day").with_row_index("_order").sort("day")
    found = wanted.join_asof(quotes, on="day", by="currency", strategy="backward",
                             tolerance=f"{max_staleness_days}d", check_sortedness=False)
    return found.sort("_order")["rate"]


def to_reporting_currency(sales: pl.DataFrame, fx: pl.DataFrame, reporting: str,
                          max_staleness_days: int, where: str, column: str,
                          fx_where: str) -> pl.DataFrame:
    """Sales rows (roles as columns, ``_row`` their data row numbers) with ``price`` and
    ``revenue`` converted from each row's ``currency`` into ``reporting`` at the order date's
    rates. A row whose currency (or the reporting currency) has no rate on its date is refused,
    naming the file, the currency column, the row and the code: converting it at a made-up rate
    would scale that market's demand value silently."""
    amounts = [role for role in ("price", "revenue") if role in sales.columns]
    frame = sales.with_columns(pl.col("currency").str.strip_chars().str.to_uppercase())
    if not amounts:
        return frame
    # Rows with nothing to convert need no rate: a reporting-currency row, or one without price.
    convert = (pl.col("currency") != reporting) & pl.any_horizontal(
        pl.col(a).is_not_null() for a in amounts)
    todo = frame.filter(convert).select(
        "_row", "currency", pl.col("timestamp").dt.truncate("1d").alias("day"))
    if todo.height == 0:
        return frame
    known = set(fx["currency"].unique().to_list())
    if reporting not in known:
        raise InputError(f"{fx_where}: no rates for {reporting}, the spec's 'currency' that the "
                         f"prices in column '{column}' of {where} are converted into")
    own = rates_on(fx, todo, max_staleness_days)
    target = rates_on(fx, todo.with_columns(pl.lit(reporting).alias("currency")),
                      max_staleness_days)
    todo = todo.with_columns(own.alias("_own"), target.alias("_target"))
    missing = todo.filter(pl.col("_own").is_null() | pl.col("_target").is_null())
    if missing.height:
        shown = ", ".join(
            f"data row {row} ({code!r} on {day:%Y-%m-%d}"
            f"{'' if code in known else ', a currency the FX table lacks'})"
            for row, code, day in missing.head(SHOWN_RATES).select("_row", "currency", "day")
            .rows())
        raise InputError(f"{where}: column '{column}' (role currency): no exchange rate into "
                         f"{reporting} within {max_staleness_days} days before the order date "
                         f"in {fx_where} for {missing.height} row(s), first: {shown}")
    # Units per base currency: amount / own rate is in the base, times the target rate.
    factor = todo.select("_row", (pl.col("_target") / pl.col("_own")).alias("_factor"))
    joined = frame.join(factor, on="_row", how="left", maintain_order="left")
    return joined.with_columns([(pl.col(a) * pl.col("_factor").fill_null(1.0)).alias(a)
                                for a in amounts]).drop("_factor")
