"""Fusion modules by name."""

from __future__ import annotations

from salesfusion.fusion.attention import BidirectionalAttention, HierarchicalMMA
from salesfusion.fusion.base import Fusion, ModalityInput
from salesfusion.fusion.entity import MultiEntityFusion
from salesfusion.fusion.simple import ConcatFusion, GatedFusion

FUSIONS: dict[str, type[Fusion]] = {
    "concat": ConcatFusion,
    "gated": GatedFusion,
    "hierarchical_mma": HierarchicalMMA,
    "bidirectional": BidirectionalAttention,
    "multi_entity": MultiEntityFusion,
}

__all__ = ["FUSIONS", "BidirectionalAttention", "ConcatFusion", "Fusion",
           "GatedFusion", "HierarchicalMMA", "ModalityInput", "MultiEntityFusion"]
