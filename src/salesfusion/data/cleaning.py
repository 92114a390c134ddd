"""The spec's ``cleaning`` section: the declared rules for turning transactions into period
demand (applied by ``data.panel.clean_transactions`` and ``data.validate.normalize_ids``)."""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, field_validator


class CleaningPolicy(BaseModel):
    """Explicit rules for turning transactions into period demand (docs/dataset-spec.md)."""

    model_config = ConfigDict(extra="forbid")

    cancelled_invoice_prefix: str | None = None  # invoices starting with this are cancellations
    returns: Literal["drop", "net"] = "drop"  # drop cancellations/negatives, or net them out
    require_positive_price: bool = True
    item_id_pattern: str | None = None  # regex an item id must match fully to count as a product
    # Strip and upper-case item ids (``data.validate.normalize_id``; and strip market names) in
    # every table that names them, so sales, items, reviews and events join whatever case the
    # shop's SKUs use.
    normalize_item_ids: bool = True
    drop_partial_periods: bool = True  # drop the first/last period if the data covers it partly

    @field_validator("item_id_pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        # Checked with the engine that applies it (polars' Rust regex, which differs from
        # Python's re: no look-around), so a pattern that passes here also runs.
        if pattern is not None:
            try:
                pl.Series([""], dtype=pl.Utf8).str.contains(f"^(?:{pattern})$")
            except pl.exceptions.PolarsError as exc:
                reason = next((line.removeprefix("error: ") for line in str(exc).splitlines()
                               if line.startswith("error: ")), "not a valid regular expression")
                raise ValueError(f"invalid regular expression {pattern!r}: {reason}") from None
        return pattern
