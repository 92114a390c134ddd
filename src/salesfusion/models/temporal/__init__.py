"""Temporal backbones: encode a history window (with its mask) and an item/market context."""

from __future__ import annotations

from salesfusion.models.temporal.cnn import ConvolutionalBackbone
from salesfusion.models.temporal.gtm import GTMBackbone
from salesfusion.models.temporal.rnn import RecurrentBackbone
from salesfusion.models.temporal.transformer import TransformerBackbone

BACKBONES = {
    "lstm": lambda **kw: RecurrentBackbone(cell="lstm", bidirectional=False, **kw),
    "gru": lambda **kw: RecurrentBackbone(cell="gru", bidirectional=False, **kw),
    "bilstm": lambda **kw: RecurrentBackbone(cell="lstm", bidirectional=True, **kw),
    "bigru": lambda **kw: RecurrentBackbone(cell="gru", bidirectional=True, **kw),
    "transformer": lambda **kw: TransformerBackbone(**kw),
    "cnn": lambda **kw: ConvolutionalBackbone(**kw),
    "gtm": lambda **kw: GTMBackbone(**kw),
}
# Backbones that read the forecast periods' known inputs themselves (the others get them
# flattened next to their output, before the head).
FUTURE_BACKBONES = {"gtm"}

__all__ = ["BACKBONES", "FUTURE_BACKBONES", "ConvolutionalBackbone", "GTMBackbone",
           "RecurrentBackbone", "TransformerBackbone"]
