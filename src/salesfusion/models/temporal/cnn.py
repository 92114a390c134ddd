"""A 1-D convolutional backbone over the history window (the CNN of the BERT-CNN baseline):
stacked causal convolutions with ReLU, then the mean over observed steps, joined to the context.
Masked steps are zeroed and the mask is an input channel, as in the recurrent backbones."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from salesfusion.components import BACKBONES
from salesfusion.models.temporal.base import BackboneShape, TemporalBackbone
from salesfusion.registry import ComponentParams


@BACKBONES.register
class ConvolutionalBackbone(TemporalBackbone):
    """Stacked causal 1-D convolutions, mean over observed steps (BERT-CNN baseline)."""

    name = "cnn"

    class Params(ComponentParams):
        kernel: int = Field(3, ge=1, description="Width of each convolution, in periods.")

    def __init__(self, shape: BackboneShape, hidden: int = 64, layers: int = 2,
                 dropout: float = 0.1, kernel: int = 3) -> None:
        super().__init__()
        input_dim, context_dim = shape.input_dim, shape.context_dim
        blocks: list[nn.Module] = []
        width = input_dim + 1
        for _ in range(max(1, layers)):
            blocks += [nn.ConstantPad1d((kernel - 1, 0), 0.0), nn.Conv1d(width, hidden, kernel),
                       nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        self.convolutions = nn.Sequential(*blocks)
        self.out_dim = hidden + context_dim

    def forward(self, history: torch.Tensor, mask: torch.Tensor,
                context: torch.Tensor) -> torch.Tensor:
        steps = torch.cat([history * mask[..., None], mask[..., None].float()], dim=-1)
        features = self.convolutions(steps.transpose(1, 2)).transpose(1, 2)
        weights = mask.float()[..., None]
        pooled = (features * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return torch.cat([pooled, context], dim=1)
