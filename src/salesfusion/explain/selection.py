"""What a neural model's own interpretable parts say: the TFT's variable-selection weights and
the attention maps (the TFT's temporal attention, an attention fusion's text<->image or
modality/entity attention), read after a forward pass over explanation windows.

Selection weights are softmax weights over variables (they sum to 1 per window, or per window
and time step), so the weights of a variable's channels add up to the variable's weight:
the calendar's sine and cosine are one ``calendar`` variable, as in ``explain.attributions``.
History and decoder weights are averaged over the steps a window observed (history) or
forecasts (decoder).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import torch

from salesfusion.data.panel import Panel
from salesfusion.explain.attributions import (
    channel_variable,
    explanation_origins,
    variable_group,
)
from salesfusion.models.base import Forecaster


def _forward(model: Forecaster, panel: Panel, origins: Sequence[int] | None):
    found = model.explanation_windows(panel, np.asarray(
        explanation_origins(panel, 6, model.config.lookback) if origins is None else origins,
        dtype=int))
    net = model.network
    net.eval()
    with torch.no_grad():
        net(found.tensors)
    return found, net


def selection_weights(model: Forecaster, panel: Panel,
                      origins: Sequence[int] | None = None) -> pl.DataFrame | None:
    """The TFT's variable-selection weights of the windows at ``origins`` (default as
    ``integrated_gradients``): one row per (window, kind, variable) with ``item_id, market,
    origin, kind`` (static, history or future), ``variable, group, weight``. None for a model
    whose backbone does not select variables."""
    if not model.explains_by_gradients or not model.network.selects_static:
        return None
    found, net = _forward(model, panel, origins)
    explained = net.backbone.explanations
    static_names = [*net.modalities, "market", "level",
                    *(["abroad"] if net.cross_market else [])]
    static_groups = [*net.modalities, "market", "history", *(["history"] if net.cross_market
                                                            else [])]
    mask = found.tensors["history_mask"].numpy()
    history = explained["history_weights"].numpy()  # (n, L, channels + mask)
    observed = np.maximum(mask.sum(1, keepdims=True), 1)
    history_mean = (history * mask[..., None]).sum(1) / observed
    future = explained["future_weights"].numpy().mean(1)  # (n, 1 + channels)
    kinds = {
        "static": (explained["static_weights"].numpy(),
                   [(n, g) for n, g in zip(static_names, static_groups, strict=True)]),
        "history": (history_mean,
                    [(channel_variable(c), variable_group(c)) for c in found.history_channels]
                    + [("observed", "history")]),
        "future": (future, [("step", "calendar")]
                   + [(channel_variable(c), variable_group(c)) for c in found.future_channels]),
    }
    windows = found.windows
    keys = found.wide.keys[windows.series]
    origin = found.periods[windows.origin]
    frames = []
    for kind, (weights, names) in kinds.items():
        frame = pl.DataFrame({
            "item_id": np.repeat(keys["item_id"].to_numpy(), len(names)),
            "market": np.repeat(keys["market"].to_numpy(), len(names)),
            "origin": np.repeat(origin, len(names)),
            "kind": kind,
            "variable": np.tile([n for n, _ in names], len(windows)),
            "group": np.tile([g for _, g in names], len(windows)),
            "weight": weights.ravel().astype(np.float64),
        })
        frames.append(frame.group_by("item_id", "market", "origin", "kind", "variable",
                                     "group", maintain_order=True).agg(pl.col("weight").sum()))
    return pl.concat(frames)


def attention_maps(model: Forecaster, panel: Panel,
                   origin: int | None = None) -> dict[str, np.ndarray]:
    """The attention weights of the windows at period index ``origin`` (default: the panel's
    last period) by name: ``temporal`` (windows, horizon, lookback + horizon; TFT), the fusion's
    ``text_to_image`` / ``image_to_text`` (windows, words, image elements and back) or
    ``fusion`` (its attention over modalities / entities). Empty when the model has none."""
    if not model.explains_by_gradients:
        return {}
    last = panel.data["timestamp"].n_unique() - 1
    _, net = _forward(model, panel, [last if origin is None else origin])
    maps: dict[str, np.ndarray] = {}
    explanations = getattr(net.backbone, "explanations", None) or {}
    if "attention" in explanations:
        maps["temporal"] = explanations["attention"].numpy()
    fused = getattr(net.fusion, "last_attention", None) if net.fusion is not None else None
    if isinstance(fused, tuple):
        maps["text_to_image"], maps["image_to_text"] = (f.numpy() for f in fused)
    elif fused is not None:
        maps["fusion"] = fused.numpy()
    return maps
