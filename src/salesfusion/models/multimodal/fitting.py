"""Fitting the multimodal model's inputs: markets and their attributes, the items' encoded
content (through the embedding cache), the covariate scale and widths, launch levels.

Encoders run frozen, through the embedding cache; their vectors become the network's content
buffers, stored with the weights, so a saved model predicts without them.
"""

from __future__ import annotations

from typing import Any

import torch

from salesfusion.data.launches import launch_levels
from salesfusion.data.panel import Panel
from salesfusion.encoders.cache import DEFAULT_CACHE, EmbeddingCache
from salesfusion.encoders.inputs import Catalogue, build_encoder, encode_catalogue
from salesfusion.encoders.modalities import content_modality
from salesfusion.encoders.static import StaticVocabulary
from salesfusion.features.covariates import Covariates, fit_exogenous_scale
from salesfusion.features.lags import WidePanel, to_wide
from salesfusion.models.multimodal.config import STATIC, MultimodalConfig
from salesfusion.models.multimodal.inputs import MultimodalInputs
from salesfusion.training.windows import feature_widths


def fit_inputs(panel: Panel, config: MultimodalConfig, owner: str, notes: list[str]
               ) -> tuple[MultimodalInputs, dict[str, torch.Tensor], WidePanel,
                          Covariates | None]:
    """The fitted inputs of ``panel``, the content buffers of its items, its wide form and its
    covariate cube; what the fit noted (fallbacks, masked content) is appended to ``notes``."""
    inputs = MultimodalInputs(
        config=config, owner=owner,
        markets={m: i + 1 for i, m in enumerate(sorted(panel.data["market"].unique()))},
        item_rows={}, vocabulary=StaticVocabulary([], []), covariate_names=[],
        covariate_scale={}, widths=(0, 0), launch_levels=None)
    attributes = list(config.market_attributes)
    if attributes:
        inputs.check_market_attributes(panel, attributes)
        inputs.market_vocabulary = StaticVocabulary(attributes, []).fit(panel.markets)
        inputs.remember_markets(panel)
    content = _item_content(panel, config, inputs, notes)
    wide = to_wide(panel)
    inputs.covariate_scale = fit_exogenous_scale(panel)
    covariates = inputs.covariates(panel, wide)
    inputs.covariate_names = covariates.names if covariates is not None else []
    inputs.widths = feature_widths(covariates)
    inputs.launch_levels = (launch_levels(panel, config.horizon)
                            if config.launch_scale == "launch_level" else None)
    return inputs, content, wide, covariates


def _item_content(panel: Panel, config: MultimodalConfig, inputs: MultimodalInputs,
                  notes: list[str]) -> dict[str, torch.Tensor]:
    """The content buffers of the panel's catalogue; sets ``inputs.item_rows`` and
    ``inputs.vocabulary``."""
    catalogue = Catalogue.from_panel(panel)
    inputs.item_rows = {item: i for i, item in enumerate(catalogue.ids)}
    cache = EmbeddingCache(config.cache_dir or DEFAULT_CACHE)
    content: dict[str, torch.Tensor] = {}
    for modality in [m for m in config.modalities if m != STATIC]:
        if not catalogue.has(modality):
            notes.append(f"modality '{modality}' configured but the items table has none: "
                         f"not used")
            continue
        encoder = modality_encoder(modality, catalogue, config, notes)
        encoded = encode_catalogue(catalogue, modality, encoder, cache=cache)
        if encoded.masked:
            first = next(iter(encoded.problems.items()), None)
            example = f" (first: {catalogue.ids[first[0]]}: {first[1]})" if first else ""
            notes.append(f"{encoded.masked} item {modality}(s) missing or unreadable: "
                         f"masked{example}")
        content[f"{modality}_values"] = torch.from_numpy(encoded.vectors)
        content[f"{modality}_present"] = torch.from_numpy(encoded.mask)
        if encoded.token_mask is not None:
            content[f"{modality}_tokens"] = torch.from_numpy(encoded.token_mask)
    if STATIC in config.modalities:
        if catalogue.has("static"):
            inputs.vocabulary = StaticVocabulary(catalogue.categorical,
                                                 catalogue.numeric).fit(catalogue.items)
            codes, numbers = inputs.vocabulary.transform(catalogue.items)
            content["static_codes"] = torch.from_numpy(codes)
            content["static_numbers"] = torch.from_numpy(numbers)
        else:
            notes.append("modality 'static' configured but the items table declares no "
                         "attributes: not used")
    return content


def modality_encoder(modality: str, catalogue: Catalogue, config: MultimodalConfig,
                     notes: list[str]) -> Any:
    """The encoder the configuration gives content modality ``modality``: ``encoders``' choice,
    else ``text_encoder`` for text, ``image_encoder`` (with its weights and fallback) for
    images, else the modality's own default."""
    choice = config.encoders.get(modality)
    if modality == "image":
        return image_encoder(catalogue, config, notes)
    if choice is not None:
        return content_modality(modality).encoder(catalogue, choice.name, **choice.params)
    if modality == "text":
        return build_encoder(catalogue, "text", config.text_encoder)
    return content_modality(modality).encoder(catalogue)


def image_encoder(catalogue: Catalogue, config: MultimodalConfig, notes: list[str]) -> Any:
    """The configured image encoder (``encoders.image``, else ``image_encoder``); without
    pretrained weights here, its fallback (and a note saying so), else the seeded random
    initialisation (also noted)."""
    choice = config.encoders.get("image")
    name = choice.name if choice is not None else config.image_encoder
    extra = {"weights": config.image_weights} if config.image_weights else {}
    encoder = build_encoder(catalogue, "image", name,
                            **{**extra, **(choice.params if choice is not None else {})})
    if getattr(encoder, "pretrained", True):
        return encoder
    if config.image_encoder_fallback:
        notes.append(f"no pretrained weights for {name} on this machine: "
                     f"using {config.image_encoder_fallback} instead (set image_weights)")
        return build_encoder(catalogue, "image", config.image_encoder_fallback)
    notes.append(f"image encoder {name} has no pretrained weights here: "
                 f"randomly initialised (seeded)")
    return encoder
