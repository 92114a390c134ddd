"""Temporal backbones, registered by name in ``BACKBONES`` (see ``temporal.base`` for what
each declares)."""

from __future__ import annotations

from salesfusion.components import BACKBONES
from salesfusion.models.temporal.base import BackboneShape, TemporalBackbone
from salesfusion.models.temporal.cnn import ConvolutionalBackbone
from salesfusion.models.temporal.gtm import GTMBackbone
from salesfusion.models.temporal.rnn import RecurrentBackbone
from salesfusion.models.temporal.tft import TFTBackbone
from salesfusion.models.temporal.transformer import TransformerBackbone

__all__ = ["BACKBONES", "BackboneShape", "ConvolutionalBackbone", "GTMBackbone",
           "RecurrentBackbone", "TFTBackbone", "TemporalBackbone", "TransformerBackbone"]
