"""What each modality's encoder reads from an items table: one path for ``salesfusion encode``
and for the models, so that the CLI warms exactly the cache entries a model reads.

A ``Catalogue`` is the items table with the roles that matter to encoders (text roles, image
root, declared attributes); it is built from a dataset's ``Tables`` or from a ``Panel``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from salesfusion.data.panel import Panel
from salesfusion.data.validate import Tables
from salesfusion.encoders.base import Encoded, Encoder
from salesfusion.encoders.registry import create_encoder
from salesfusion.errors import InputError

TEXT_ROLES = ("title", "description")


def title_column(items: pl.DataFrame) -> str | None:
    """The column that names items to people: ``title``, else ``description`` (Online Retail
    maps its product names to the description role)."""
    return next((role for role in TEXT_ROLES if role in items.columns), None)


@dataclass
class Catalogue:
    name: str
    items: pl.DataFrame  # one row per item id
    image_root: Path = Path(".")
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)

    @classmethod
    def from_tables(cls, tables: Tables) -> Catalogue:
        spec = tables.spec
        if tables.items is None:
            raise InputError(f"dataset '{spec.name}' has no items table to encode")
        return cls(spec.name, _one_row_per_item(tables.items), spec.images_dir(),
                   list(spec.items.static_categorical), list(spec.items.static_numeric))

    @classmethod
    def from_panel(cls, panel: Panel, name: str = "panel") -> Catalogue:
        items = panel.items if panel.items is not None else panel.data.select("item_id")
        return cls(name, _one_row_per_item(items), panel.image_root or Path("."),
                   list(panel.static_categorical), list(panel.static_numeric))

    @property
    def ids(self) -> list[str]:
        return self.items["item_id"].to_list()

    @property
    def text_roles(self) -> list[str]:
        return [r for r in TEXT_ROLES if r in self.items.columns]

    def has(self, modality: str) -> bool:
        if modality == "static":
            return bool(self.categorical or self.numeric)
        return _source(modality).present_in(self)

    def texts(self) -> list[str | None]:
        """Each item's text: its text roles joined with '. ' (missing parts skipped)."""
        return self.items.select(pl.concat_str([pl.col(r) for r in self.text_roles],
                                               separator=". ", ignore_nulls=True)
                                 ).to_series().to_list()

    def inputs(self, modality: str) -> tuple[list[Any], dict[str, Any]]:
        """(one input per item, encoder parameters the inputs need)."""
        if not self.has(modality):
            needs = ("static_categorical or static_numeric attributes" if modality == "static"
                     else _source(modality).needs)
            raise InputError(f"dataset '{self.name}': the items table maps no {needs}")
        if modality != "static":
            return _source(modality).inputs(self)
        rows = self.items.select(*self.categorical, *self.numeric).to_dicts()
        return rows, {"categorical": list(self.categorical), "numeric": list(self.numeric)}

    def fit_corpus(self, encoder: Encoder, inputs: list[Any]) -> list[Any]:
        """What ``encoder.fit`` learns from: its own inputs, or (image, text) pairs for a
        joint image-text space, with the same text the text modality reads."""
        if getattr(encoder, "fits_on_pairs", False):
            return list(zip(inputs, self.texts(), strict=True)) if self.text_roles else []
        return inputs


def item_inputs(tables: Tables, modality: str) -> tuple[list[str], list[Any], dict[str, Any]]:
    """(item ids, one input per item, encoder parameters the inputs need)."""
    catalogue = Catalogue.from_tables(tables)
    inputs, params = catalogue.inputs(modality)
    return catalogue.ids, inputs, params


def encode_catalogue(catalogue: Catalogue, modality: str, encoder: Encoder, *,
                     cache: Any = None, batch_size: int = 64,
                     progress: bool = False) -> Encoded:
    """Fit ``encoder`` on the catalogue when it learns from the corpus, then encode every
    item through the cache."""
    inputs, _ = catalogue.inputs(modality)
    if encoder.needs_fit:
        encoder.fit(catalogue.fit_corpus(encoder, inputs))
    return encoder.encode(inputs, batch_size=batch_size, cache=cache, progress=progress)


def build_encoder(catalogue: Catalogue, modality: str, name: str, **params: Any) -> Encoder:
    """The registered encoder ``name`` with the parameters the catalogue's inputs need."""
    _, needed = catalogue.inputs(modality)
    return create_encoder(name, **{**needed, **params})


def _source(modality: str) -> Any:
    """The registered content modality ``modality`` (``encoders.modalities``)."""
    from salesfusion.components import MODALITIES

    if modality not in MODALITIES:
        raise InputError(f"unknown modality '{modality}'; use static or one of "
                         f"{', '.join(MODALITIES.names())}")
    return MODALITIES.get(modality)


def _one_row_per_item(items: pl.DataFrame) -> pl.DataFrame:
    return items.unique("item_id", keep="first", maintain_order=True)
