"""Baseline fusions: concatenation and gated sum."""

from __future__ import annotations

import torch
from torch import nn

from salesfusion.components import FUSIONS
from salesfusion.fusion.base import Fusion, ModalityInput


@FUSIONS.register
class ConcatFusion(Fusion):
    """[pooled_m * present_m, present_m for every m] -> Linear -> ReLU."""

    name = "concat"

    def __init__(self, dims: dict[str, int], out_dim: int) -> None:
        super().__init__(dims, out_dim)
        width = sum(dims.values()) + len(dims)
        self.projection = nn.Sequential(nn.Linear(width, out_dim), nn.ReLU())

    def forward(self, inputs: dict[str, ModalityInput]) -> torch.Tensor:
        parts = []
        for name in self.dims:
            item = inputs[name]
            present = item.present.float()[:, None]
            parts += [item.pooled() * present, present]
        return self._fill_empty(self.projection(torch.cat(parts, dim=1)), inputs)


@FUSIONS.register
class GatedFusion(Fusion):
    """Each modality is projected (tanh) and weighted by a sigmoid gate computed from itself;
    the gated sum is normalised by the gates of the modalities present."""

    name = "gated"

    def __init__(self, dims: dict[str, int], out_dim: int) -> None:
        super().__init__(dims, out_dim)
        self.project = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in dims.items()})
        self.gate = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in dims.items()})

    def forward(self, inputs: dict[str, ModalityInput]) -> torch.Tensor:
        total = 0.0
        weight = 0.0
        for name in self.dims:
            item = inputs[name]
            pooled = item.pooled()
            gate = torch.sigmoid(self.gate[name](pooled)) * item.present.float()[:, None]
            total = total + gate * torch.tanh(self.project[name](pooled))
            weight = weight + gate
        return self._fill_empty(total / (weight + 1e-6), inputs)
