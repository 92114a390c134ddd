"""Order exports that give order-level fields on an order's first line only.

Also the per-row roles of such exports: ``cancelled_at`` (cancelled orders are not demand) and
``currency`` (each row's prices in the buyer's currency), applied by ``order_export_rows``.

Many shop systems export one row per order line but write the order's market (country),
date or channel only on its first line, leaving the other lines blank. Read as they are, those
lines would be sales in no market. ``sales.fill_order_fields: [market, ...]`` declares which
roles to forward-fill within each invoice (the column mapped to role ``invoice``), in the
file's row order; a line before its order's first value, or a line without an invoice, stays
blank and is refused as any blank key is (``data.validate``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from salesfusion.data.findings import Finding, first_ids, listed
from salesfusion.data.fx import to_reporting_currency
from salesfusion.errors import InputError

if TYPE_CHECKING:  # data.spec imports this module
    from salesfusion.data.spec import DatasetSpec

# Sales roles an order gives once for all its lines; a line's own values (its item, units,
# price, revenue) are never copied from another line. (Shop exports such as Shopify's write the
# order's currency and cancellation date on its first line only.)
ORDER_LEVEL_ROLES = ("market", "timestamp", "channel", "promo", "currency", "cancelled_at")


def check_fill_order_fields(name: str, columns: dict[str, str], fields: list[str]) -> None:
    """ValueError (a spec validation error) unless ``fields`` are order-level roles that the
    sales table ``name`` maps, next to an ``invoice`` role."""
    if not fields:
        return
    if name != "sales":
        raise ValueError(f"table '{name}': 'fill_order_fields' is for the sales table")
    if "invoice" not in columns:
        raise ValueError("sales.fill_order_fields fills within each invoice: map the 'invoice' "
                         "role (the order number column) too")
    unmapped = [f for f in fields if f not in columns]
    if unmapped:
        raise ValueError(f"sales.fill_order_fields names {unmapped}, which are not roles the "
                         f"sales table maps; mapped roles: {sorted(columns)}")
    line_level = [f for f in fields if f not in ORDER_LEVEL_ROLES]
    if line_level:
        raise ValueError(f"sales.fill_order_fields names {line_level}, which differ line by "
                         f"line; order-level roles it may fill: {list(ORDER_LEVEL_ROLES)}")


def blank(role: str, dtype: pl.DataType) -> pl.Expr:
    """Whether a cell of ``role`` is blank: missing, or text of only whitespace."""
    if dtype == pl.Utf8:
        return pl.col(role).is_null() | (pl.col(role).str.strip_chars() == "")
    return pl.col(role).is_null()


def fill_order_fields(frame: pl.DataFrame, fields: list[str]) -> pl.DataFrame:
    """``frame`` (roles as columns, rows in file order) with each of ``fields`` forward-filled
    within its invoice; rows without an invoice are left as they are."""
    has_invoice = ~blank("invoice", frame.schema["invoice"])
    filled = []
    for role in fields:
        value = pl.when(blank(role, frame.schema[role])).then(None).otherwise(pl.col(role))
        filled.append(pl.when(has_invoice).then(value.forward_fill().over("invoice"))
                      .otherwise(pl.col(role)).alias(role))
    return frame.with_columns(filled)


def drop_cancelled(frame: pl.DataFrame, where: str,
                   column: str) -> tuple[pl.DataFrame, Finding | None]:
    """``frame`` without the rows of cancelled orders (a non-null ``cancelled_at``), and the
    finding that counts them. A cancelled order was never delivered, so it is not demand: its
    rows are removed from the period the order was placed in, not netted out later as a
    return would be (nothing was shipped, so nothing comes back)."""
    cancelled = pl.col("cancelled_at").is_not_null()
    dropped = frame.filter(cancelled)
    if dropped.height == 0:
        return frame, None
    kept = frame.filter(~cancelled)
    if kept.height == 0:
        raise InputError(f"{where}: every row has a cancellation date in column '{column}' "
                         f"(role cancelled_at): no demand is left")
    units = float(dropped["quantity"].sum())
    ids = dropped["invoice"] if "invoice" in dropped.columns else dropped["_row"].cast(pl.Utf8)
    first = first_ids(ids.unique(maintain_order=True))
    noun = "orders" if "invoice" in dropped.columns else "data rows"
    return kept, Finding("warning", "cancelled_orders", dropped.height, first,
                         f"{dropped.height} sales row(s) ({units:g} units) are cancelled orders "
                         f"(a date in '{column}' of {where}) and are not counted as demand "
                         f"(first {noun}: {listed(first)})")


def order_export_rows(frame: pl.DataFrame, spec: DatasetSpec, fx: pl.DataFrame | None,
                      where: str) -> tuple[pl.DataFrame, list[Finding]]:
    """The loaded sales rows with cancelled orders dropped and prices in the spec's currency
    (``fx.to_reporting_currency``), and the findings to report; rows keep file order."""
    columns = spec.sales.columns
    if "cancelled_at" not in columns and "currency" not in columns:
        return frame, []
    # Data row numbers, taken before any row is dropped, for messages naming a row.
    frame = frame.with_row_index("_row", offset=1)
    findings = []
    if "cancelled_at" in columns:
        frame, finding = drop_cancelled(frame, where, columns["cancelled_at"])
        findings += [finding] if finding else []
    if "currency" in columns and fx is not None and spec.fx is not None and spec.currency:
        frame = to_reporting_currency(frame, fx, spec.currency, spec.fx.max_staleness_days,
                                      where, columns["currency"], str(spec.resolve(spec.fx.path)))
    return frame.drop("_row"), findings
