"""Transformer encoder over the history window (seed 001), with learned positional encodings
and calendar features in the inputs. A context token built from the item/market context is
prepended and never masked, so the encoder's output exists even with zero history; masked
(pre-launch) periods are excluded with the key padding mask."""

from __future__ import annotations

import torch
from torch import nn

from salesfusion.components import BACKBONES
from salesfusion.errors import InputError
from salesfusion.models.temporal.base import (
    AttentionParams,
    BackboneShape,
    TemporalBackbone,
)


@BACKBONES.register
class TransformerBackbone(TemporalBackbone):
    """Transformer encoder over the history with a context token (seed 001)."""

    name = "transformer"
    Params = AttentionParams

    def __init__(self, shape: BackboneShape, hidden: int = 64, layers: int = 2,
                 dropout: float = 0.1, heads: int = 4, max_length: int = 512) -> None:
        super().__init__()
        if shape.lookback is not None and shape.lookback > max_length:
            raise InputError(f"backbone 'transformer' takes at most {max_length} history "
                             f"periods (its positional table), not a lookback of "
                             f"{shape.lookback}")
        input_dim, context_dim = shape.input_dim, shape.context_dim
        self.embed = nn.Linear(input_dim, hidden)
        self.context_token = nn.Linear(context_dim, hidden)
        self.position = nn.Embedding(max_length + 1, hidden)
        layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=2 * hidden,
                                           dropout=dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out_dim = hidden + context_dim

    def forward(self, history: torch.Tensor, mask: torch.Tensor,
                context: torch.Tensor) -> torch.Tensor:
        batch, length, _ = history.shape
        tokens = torch.cat([self.context_token(context)[:, None, :], self.embed(history)], dim=1)
        positions = torch.arange(length + 1, device=history.device)
        tokens = tokens + self.position(positions)[None]
        padding = torch.cat([torch.zeros(batch, 1, dtype=torch.bool, device=mask.device), ~mask],
                            dim=1)
        encoded = self.encoder(tokens, src_key_padding_mask=padding)
        return torch.cat([encoded[:, 0], context], dim=1)
