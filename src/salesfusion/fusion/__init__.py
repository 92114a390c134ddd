"""Fusion modules, registered by name in ``FUSIONS``."""

from __future__ import annotations

from salesfusion.components import FUSIONS
from salesfusion.fusion.attention import BidirectionalAttention, HierarchicalMMA
from salesfusion.fusion.base import Fusion, ModalityInput
from salesfusion.fusion.entity import MultiEntityFusion
from salesfusion.fusion.simple import ConcatFusion, GatedFusion

__all__ = ["FUSIONS", "BidirectionalAttention", "ConcatFusion", "Fusion",
           "GatedFusion", "HierarchicalMMA", "ModalityInput", "MultiEntityFusion"]
