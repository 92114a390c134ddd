"""LSTM / GRU, uni- or bidirectional, any depth.

History windows are right-aligned (most recent period last). Periods before an item's launch
are masked: their inputs are zeroed and the mask itself is an input channel, so the network
knows "did not exist" from "sold 0". The context (fused item content + market) sets the initial
hidden state and is joined to the final state, so a zero-history item is forecast from content.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from salesfusion.components import BACKBONES
from salesfusion.models.temporal.base import BackboneShape, TemporalBackbone


class RecurrentBackbone(TemporalBackbone):
    cell: ClassVar[str] = "gru"
    bidirectional: ClassVar[bool] = False

    def __init__(self, shape: BackboneShape, hidden: int = 64, layers: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        input_dim, context_dim, cell, bidirectional = (shape.input_dim, shape.context_dim,
                                                       self.cell, self.bidirectional)
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.layers = layers
        self.directions = 2 if bidirectional else 1
        self.hidden = hidden
        self.rnn = rnn(input_dim + 1, hidden, num_layers=layers, batch_first=True,
                       dropout=dropout if layers > 1 else 0.0, bidirectional=bidirectional)
        self.initial = nn.Linear(context_dim, hidden * layers * self.directions)
        self.out_dim = hidden * self.directions + context_dim

    def forward(self, history: torch.Tensor, mask: torch.Tensor,
                context: torch.Tensor) -> torch.Tensor:
        steps = torch.cat([history * mask[..., None], mask[..., None].float()], dim=-1)
        batch = history.shape[0]
        h0 = torch.tanh(self.initial(context)).view(batch, self.layers * self.directions,
                                                    self.hidden).transpose(0, 1).contiguous()
        state = (h0, torch.zeros_like(h0)) if self.cell == "lstm" else h0
        _, final = self.rnn(steps, state)
        last = final[0] if self.cell == "lstm" else final
        # The top layer's final state of each direction.
        top = last.view(self.layers, self.directions, batch, self.hidden)[-1]
        return torch.cat([top.transpose(0, 1).reshape(batch, -1), context], dim=1)


@BACKBONES.register
class LSTMBackbone(RecurrentBackbone):
    """LSTM over the history, initial state from the context."""

    name = "lstm"
    cell = "lstm"


@BACKBONES.register
class GRUBackbone(RecurrentBackbone):
    """GRU over the history, initial state from the context."""

    name = "gru"


@BACKBONES.register
class BiLSTMBackbone(RecurrentBackbone):
    """Bidirectional LSTM (seeds 003/004)."""

    name = "bilstm"
    cell = "lstm"
    bidirectional = True


@BACKBONES.register
class BiGRUBackbone(RecurrentBackbone):
    """Bidirectional GRU (seed 000: three layers)."""

    name = "bigru"
    bidirectional = True
