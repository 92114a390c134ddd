"""Order exports that give order-level fields on an order's first line only.

Many shop systems export one row per order line but write the order's market (country),
date or channel only on its first line, leaving the other lines blank. Read as they are, those
lines would be sales in no market. ``sales.fill_order_fields: [market, ...]`` declares which
roles to forward-fill within each invoice (the column mapped to role ``invoice``), in the
file's row order; a line before its order's first value, or a line without an invoice, stays
blank and is refused as any blank key is (``data.validate``).
"""

from __future__ import annotations

import polars as pl

# Sales roles an order gives once for all its lines; a line's own values (its item, units,
# price, revenue) are never copied from another line.
ORDER_LEVEL_ROLES = ("market", "timestamp", "channel", "promo")


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
