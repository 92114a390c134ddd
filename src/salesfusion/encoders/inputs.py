"""What each modality's encoder reads from a dataset's items table."""

from __future__ import annotations

from typing import Any

import polars as pl

from salesfusion.data.validate import Tables
from salesfusion.errors import InputError

TEXT_ROLES = ("title", "description")


def item_inputs(tables: Tables, modality: str) -> tuple[list[str], list[Any], dict[str, Any]]:
    """(item ids, one input per item, encoder parameters the inputs need)."""
    spec, items = tables.spec, tables.items
    if items is None:
        raise InputError(f"dataset '{spec.name}' has no items table to encode")
    ids = items["item_id"].to_list()
    if modality == "text":
        roles = [r for r in TEXT_ROLES if r in items.columns]
        if not roles:
            raise InputError(f"dataset '{spec.name}': the items table maps no text role "
                             f"({', '.join(TEXT_ROLES)})")
        texts = items.select(pl.concat_str([pl.col(r) for r in roles], separator=". ",
                                           ignore_nulls=True)).to_series().to_list()
        return ids, texts, {}
    if modality == "image":
        if "image" not in items.columns:
            raise InputError(f"dataset '{spec.name}': the items table maps no 'image' role")
        return ids, items["image"].to_list(), {"image_root": spec.images_dir()}
    if modality == "static":
        categorical, numeric = spec.items.static_categorical, spec.items.static_numeric
        if not categorical and not numeric:
            raise InputError(f"dataset '{spec.name}': the items table declares no "
                             f"static_categorical or static_numeric attributes")
        rows = items.select(*categorical, *numeric).to_dicts()
        return ids, rows, {"categorical": list(categorical), "numeric": list(numeric)}
    raise InputError(f"unknown modality '{modality}'; use text, image or static")
