"""The content of items the model was not fitted on, encoded as at fit.

A fitted multimodal model holds the encoded content of the items it was fitted on (the
network's content buffers, indexed by item); an item it did not see would have none, so its
forecast would read no text, photo or attribute. ``new_item_content`` encodes such items'
content with the model's own encoders, as rows to append to those buffers
(``MultimodalPredictor.with_items`` returns a predictor that holds them):

- text: a pretrained encoder encodes it as it is; an encoder that learns from the catalogue
  (TF-IDF, Doc2Vec) is fitted again on the catalogue the model was fitted on (saved with it as
  the history's items table): the same corpus gives the same encoder, which is checked by
  encoding the first fitted items again and comparing with the stored vectors;
- image: a pretrained or fixed encoder encodes the photo (through the safe loader); an image
  encoder that learns from the catalogue cannot be rebuilt (the fitted items' images are not
  saved), and the new items' photos are then refused;
- static attributes: through the fitted vocabulary (an unseen category is the unseen code).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from salesfusion.data.panel import Panel
from salesfusion.encoders.inputs import Catalogue
from salesfusion.encoders.modalities import content_modality
from salesfusion.errors import InputError
from salesfusion.models.multimodal.fitting import modality_encoder
from salesfusion.models.multimodal.inputs import MultimodalInputs
from salesfusion.models.network import MultimodalNet, content_buffers

CHECKED_ITEMS = 8  # fitted items encoded again to check that a refitted encoder is the same
TOLERANCE = 1e-4


def new_item_content(net: MultimodalNet, inputs: MultimodalInputs, history: Panel,
                     fresh: pl.DataFrame, image_root: Path
                     ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Content buffers' rows for ``fresh`` items (every buffer the network holds), and the
    modalities read from them; ``history`` is the panel the model was fitted on."""
    held = {name for names in content_buffers().values() for name in names
            if hasattr(net, name) and isinstance(getattr(net, name), torch.Tensor)}
    blocks: dict[str, torch.Tensor] = {}
    used: list[str] = []
    fitted = Catalogue.from_panel(history)
    catalogue = Catalogue(fitted.name, fresh, image_root)
    for modality in net.content_modalities:
        rows, read = _encoded_rows(net, inputs, modality, fitted, catalogue)
        blocks.update({name: rows[name] for name in rows if name in held})
        if read:
            used.append(modality)
    if "static_codes" in held:
        vocabulary = inputs.vocabulary
        columns = [*vocabulary.categorical, *vocabulary.numeric]
        frame = fresh.select("item_id", *[pl.col(c) if c in fresh.columns
                                          else pl.lit(None).alias(c) for c in columns])
        codes, numbers = vocabulary.transform(frame)
        blocks["static_codes"] = torch.from_numpy(codes)
        blocks["static_numbers"] = torch.from_numpy(numbers)
        if any(c in fresh.columns for c in columns):
            used.append("static")
    return blocks, used


def _encoded_rows(net: MultimodalNet, inputs: MultimodalInputs, modality: str,
                  fitted: Catalogue, catalogue: Catalogue) -> tuple[dict[str, torch.Tensor],
                                                                    bool]:
    stored = getattr(net, f"{modality}_values")
    if not catalogue.has(modality):
        return _absent(modality, stored, catalogue.items.height), False
    encoder = _new_item_encoder(net, inputs, modality, fitted, catalogue)
    items, _ = catalogue.inputs(modality)
    encoded = encoder.encode(items)
    if encoded.vectors.shape[1:] != tuple(stored.shape[1:]):
        raise InputError(f"model '{inputs.owner}': its {modality} encoder now gives vectors "
                         f"of shape {encoded.vectors.shape[1:]}, the model was fitted on "
                         f"{tuple(stored.shape[1:])} (another encoder or weights on this "
                         f"machine); new items' {modality} cannot be read")
    rows = {f"{modality}_values": torch.from_numpy(encoded.vectors),
            f"{modality}_present": torch.from_numpy(encoded.mask)}
    if encoded.token_mask is not None:
        rows[f"{modality}_tokens"] = torch.from_numpy(encoded.token_mask)
    return rows, bool(encoded.mask.any())


def _new_item_encoder(net: MultimodalNet, inputs: MultimodalInputs, modality: str,
                      fitted: Catalogue, catalogue: Catalogue) -> Any:
    """The model's encoder for ``modality``, as it was at fit (the fit noted any fallback)."""
    encoder = modality_encoder(modality, catalogue, inputs.config, [])
    if not encoder.needs_fit:
        return encoder
    if not content_modality(modality).refittable:
        raise InputError(f"model '{inputs.owner}': {modality} encoder '{encoder.name}' learns "
                         f"from the fitted catalogue's {modality}, which the model folder "
                         f"does not keep; new items' {modality} cannot be encoded")
    items, _ = fitted.inputs(modality)
    encoder.fit(fitted.fit_corpus(encoder, items))
    _check_refitted(net, inputs, encoder, modality, fitted, items)
    return encoder


def _check_refitted(net: MultimodalNet, inputs: MultimodalInputs, encoder: Any, modality: str,
                    fitted: Catalogue, items: list[Any]) -> None:
    rows = [inputs.item_rows[i] for i in fitted.ids[:CHECKED_ITEMS] if i in inputs.item_rows]
    again = encoder.encode(items[:len(rows)]).vectors
    stored = getattr(net, f"{modality}_values")[rows].numpy()
    if not np.allclose(again, stored, atol=TOLERANCE):
        raise InputError(f"model '{inputs.owner}': {modality} encoder '{encoder.name}' "
                         f"refitted on the saved catalogue does not reproduce the fitted "
                         f"vectors; new items' {modality} cannot be encoded consistently")


def _absent(modality: str, stored: torch.Tensor, count: int) -> dict[str, torch.Tensor]:
    rows = {f"{modality}_values": torch.zeros((count, *stored.shape[1:]), dtype=stored.dtype),
            f"{modality}_present": torch.zeros(count, dtype=torch.bool)}
    if stored.dim() == 3:
        rows[f"{modality}_tokens"] = torch.zeros((count, stored.shape[1]), dtype=torch.bool)
    return rows
