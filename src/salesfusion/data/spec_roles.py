"""The roles each table of a dataset spec must and may map, and the checks of how a keyed table
(an exogenous table, a promotion calendar) names its keys. Split from ``data.spec`` so the spec
models stay readable; ``data.spec`` re-exports what other modules import from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from salesfusion.data.spec import PromotionSpec, TableSpec

# Which roles each table must map, and which it may map (DESIGN.md section 2).
# ``market`` is optional in sales and events: a single-market shop leaves it out and every row
# belongs to the spec's ``single_market``.
REQUIRED_ROLES: dict[str, tuple[str, ...]] = {
    "sales": ("item_id", "timestamp", "quantity"),
    "items": ("item_id",),
    "markets": ("market",),
    "exogenous": ("timestamp",),
    "reviews": ("item_id", "timestamp", "text"),
    "events": ("timestamp",),
    # A promotion calendar: one row per promotion, its first and last day (inclusive).
    "promotions": ("start", "end"),
}
OPTIONAL_ROLES: dict[str, tuple[str, ...]] = {
    # ``currency``: the row's price (and revenue) is in that currency, converted into the spec's
    # ``currency`` through the FX table; ``cancelled_at``: set on cancelled orders, which are
    # not demand (``data.order_fields``).
    "sales": ("market", "price", "revenue", "promo", "channel", "invoice", "currency",
              "cancelled_at"),
    "items": ("title", "description", "image", "launch_date", "end_date"),
    "markets": ("currency", "maturity", "region", "language"),
    # An exogenous table is keyed by period and optionally by market, by item (``item_id``) or
    # by the value of an item attribute (``attribute``, with ``attribute_of``).
    "exogenous": ("market", "item_id", "attribute"),
    "reviews": ("rating", "market", "image"),
    "events": ("market", "item_id", "kol_id", "audience", "duration"),
    # Keyed like an exogenous table: per market, item, attribute value, or for every series.
    "promotions": ("market", "item_id", "attribute"),
}
# Tables of the spec that are lists (named ``exogenous[i]``, ``promotions[i]``).
LIST_TABLES = ("exogenous", "promotions")
# Sales roles that become per-(item, market, period) covariates of every model.
SALES_COVARIATE_ROLES = ("price", "promo")



def check_exogenous_keys(name: str, table: TableSpec, categorical: list[str]) -> None:
    """ValueError (a spec validation error) unless exogenous table ``name`` names its keys
    consistently and declares a covariate column."""
    _check_attribute_keys(name, table, categorical)
    if not table.past_only and not table.future_known:
        raise ValueError(f"table '{name}' declares no covariate column: list its columns "
                         f"under past_only or future_known")


def check_promotion_keys(name: str, table: PromotionSpec, categorical: list[str]) -> None:
    """ValueError unless promotion calendar ``name`` names its keys consistently and declares
    no covariate column (the calendar itself is the covariate)."""
    _check_attribute_keys(name, table, categorical)
    declared = [f for f in ("past_only", "future_known", "static_categorical",
                            "static_numeric", "fill_order_fields") if getattr(table, f)]
    if declared:
        raise ValueError(f"table '{name}': a promotion calendar declares no covariate "
                         f"columns ({declared[0]}); its covariate is '{table.name}', the "
                         f"share of each period's days inside a start..end range")


def _check_attribute_keys(name: str, table: TableSpec, categorical: list[str]) -> None:
    """``categorical``: the items table's static_categorical columns."""
    if ("attribute" in table.columns) != bool(table.attribute_of):
        raise ValueError(f"table '{name}': the 'attribute' role and 'attribute_of' (the "
                         f"items columns its values belong to) go together")
    if "attribute" in table.columns and "item_id" in table.columns:
        raise ValueError(f"table '{name}' is keyed by item or by attribute, not both")
    unknown = [a for a in table.attribute_of if a not in categorical]
    if unknown:
        raise ValueError(f"table '{name}': attribute_of names {unknown}, which are not "
                         f"static_categorical columns of the items table")
