"""Forecasting items the model was not fitted on, from their content.

A fitted multimodal model holds the encoded content of the items it was fitted on (the
network's content buffers, indexed by item); an item it did not see would have none, so its
forecast would read no text, photo or attribute. ``items_described`` encodes such items'
content with the model's own encoders and makes it visible to the network for the duration of a
block:

- text: a pretrained encoder encodes it as it is; an encoder that learns from the catalogue
  (TF-IDF, Doc2Vec) is fitted again on the catalogue the model was fitted on (saved with it as
  the history's items table): the same corpus gives the same encoder, which is checked by
  encoding the first fitted items again and comparing with the stored vectors;
- image: a pretrained or fixed encoder encodes the photo (through the safe loader); an image
  encoder that learns from the catalogue cannot be rebuilt (the fitted items' images are not
  saved), and the new items' photos are then refused;
- static attributes: through the fitted vocabulary (an unseen category is the unseen code).

The model is changed only inside the block (buffers and item rows are restored after it), so
the caller holds the model's lock for the block's duration.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from salesfusion.encoders.inputs import Catalogue, build_encoder
from salesfusion.errors import InputError
from salesfusion.models.network import CONTENT_BUFFERS

CHECKED_ITEMS = 8  # fitted items encoded again to check that a refitted encoder is the same
TOLERANCE = 1e-4


class NewItemsPath:
    """Mixin of ``MultimodalForecaster``: content of items it was not fitted on."""

    @contextmanager
    def items_described(self, items: pl.DataFrame, image_root: Path | None = None
                        ) -> Iterator[list[str]]:
        """Within the block, the items of ``items`` (one row per item: ``item_id`` and any of
        title, description, image, the fitted static attributes) that the model was not fitted
        on carry their encoded content. Yields the modalities read from them."""
        net = self._net
        fresh = items.unique("item_id", keep="first", maintain_order=True).filter(
            ~pl.col("item_id").is_in(list(self._item_rows)))
        if fresh.height == 0:
            yield []
            return
        blocks, used = self._new_content(fresh, image_root or Path("."))
        saved_rows = self._item_rows
        saved = {name: getattr(net, name) for name in blocks}
        try:
            start = len(saved_rows)
            self._item_rows = {**saved_rows, **{item: start + i for i, item in
                                                enumerate(fresh["item_id"].to_list())}}
            for name, block in blocks.items():
                setattr(net, name, torch.cat([saved[name], block.to(saved[name].dtype)]))
            yield used
        finally:
            self._item_rows = saved_rows
            for name, tensor in saved.items():
                setattr(net, name, tensor)

    def _new_content(self, fresh: pl.DataFrame,
                     image_root: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
        """Content buffers' rows for ``fresh`` items (every buffer the network holds)."""
        net = self._net
        held = {name for names in CONTENT_BUFFERS.values() for name in names
                if hasattr(net, name) and isinstance(getattr(net, name), torch.Tensor)}
        blocks: dict[str, torch.Tensor] = {}
        used: list[str] = []
        fitted = Catalogue.from_panel(self._history)
        catalogue = Catalogue(fitted.name, fresh, image_root)
        for modality in ("text", "image"):
            if f"{modality}_values" not in held:
                continue
            rows, read = self._encoded_rows(modality, fitted, catalogue)
            blocks.update({name: rows[name] for name in rows if name in held})
            if read:
                used.append(modality)
        if "static_codes" in held:
            vocabulary = self._vocabulary
            columns = [*vocabulary.categorical, *vocabulary.numeric]
            frame = fresh.select("item_id", *[pl.col(c) if c in fresh.columns
                                              else pl.lit(None).alias(c) for c in columns])
            codes, numbers = vocabulary.transform(frame)
            blocks["static_codes"] = torch.from_numpy(codes)
            blocks["static_numbers"] = torch.from_numpy(numbers)
            if any(c in fresh.columns for c in columns):
                used.append("static")
        return blocks, used

    def _encoded_rows(self, modality: str, fitted: Catalogue,
                      catalogue: Catalogue) -> tuple[dict[str, torch.Tensor], bool]:
        net = self._net
        stored = getattr(net, f"{modality}_values")
        if not catalogue.has(modality):
            return _absent(modality, stored, catalogue.items.height), False
        encoder = self._new_item_encoder(modality, fitted, catalogue)
        inputs, _ = catalogue.inputs(modality)
        encoded = encoder.encode(inputs)
        if encoded.vectors.shape[1:] != tuple(stored.shape[1:]):
            raise InputError(f"model '{self.name}': its {modality} encoder now gives vectors of "
                             f"shape {encoded.vectors.shape[1:]}, the model was fitted on "
                             f"{tuple(stored.shape[1:])} (another encoder or weights on this "
                             f"machine); new items' {modality} cannot be read")
        rows = {f"{modality}_values": torch.from_numpy(encoded.vectors),
                f"{modality}_present": torch.from_numpy(encoded.mask)}
        if encoded.token_mask is not None:
            rows[f"{modality}_tokens"] = torch.from_numpy(encoded.token_mask)
        return rows, bool(encoded.mask.any())

    def _new_item_encoder(self, modality: str, fitted: Catalogue, catalogue: Catalogue) -> Any:
        """The model's encoder for ``modality``, as it was at fit."""
        if modality == "image":
            encoder = self._image_encoder(catalogue)
            if encoder.needs_fit:
                raise InputError(f"model '{self.name}': image encoder '{encoder.name}' learns "
                                 f"from the fitted catalogue's photos, which the model folder "
                                 f"does not keep; new items' photos cannot be encoded")
            return encoder
        encoder = build_encoder(catalogue, "text", self.config.text_encoder)
        if encoder.needs_fit:
            inputs, _ = fitted.inputs("text")
            encoder.fit(fitted.fit_corpus(encoder, inputs))
            self._check_refitted(encoder, inputs)
        return encoder

    def _check_refitted(self, encoder: Any, inputs: list[Any]) -> None:
        rows = [self._item_rows[i] for i in Catalogue.from_panel(self._history).ids
                [:CHECKED_ITEMS] if i in self._item_rows]
        again = encoder.encode(inputs[:len(rows)]).vectors
        stored = self._net.text_values[rows].numpy()
        if not np.allclose(again, stored, atol=TOLERANCE):
            raise InputError(f"model '{self.name}': text encoder '{encoder.name}' refitted on "
                             f"the saved catalogue does not reproduce the fitted vectors; new "
                             f"items' text cannot be encoded consistently")


def _absent(modality: str, stored: torch.Tensor, count: int) -> dict[str, torch.Tensor]:
    rows = {f"{modality}_values": torch.zeros((count, *stored.shape[1:]), dtype=stored.dtype),
            f"{modality}_present": torch.zeros(count, dtype=torch.bool)}
    if stored.dim() == 3:
        rows[f"{modality}_tokens"] = torch.zeros((count, stored.shape[1]), dtype=torch.bool)
    return rows
