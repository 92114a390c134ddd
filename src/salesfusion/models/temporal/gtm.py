"""GTM-style backbone (Skenderi et al. 2022, "Well Googled is Half Done"; a paper baseline in
DESIGN): a transformer encoder over the exogenous trend series and a non-autoregressive
transformer decoder whose queries come from the fused item content.

As in GTM, the encoder reads a window of dynamic series with positional encodings and the
decoder emits every horizon step at once (no causal mask, no feedback of its own forecasts).
Deviations: the encoded window holds every dynamic channel the panel has (the item's own sales
when it has any, the calendar, events, exogenous trend columns) rather than Google Trends of
the item's attributes only, since few datasets ship attribute-level trends; the decoder has one
query per forecast step (fused content + a step embedding + the step's known future inputs)
instead of one query projected to all steps. A context token built from the content is always
present, so an item with no history is still forecast from content (GTM's use case).
"""

from __future__ import annotations

import torch
from torch import nn

from salesfusion.components import BACKBONES
from salesfusion.models.temporal.base import (
    AttentionParams,
    BackboneShape,
    TemporalBackbone,
)


@BACKBONES.register
class GTMBackbone(TemporalBackbone):
    """GTM-style transformer encoder-decoder with content queries (Skenderi et al. 2022)."""

    name = "gtm"
    reads_future = True

    Params = AttentionParams

    def __init__(self, shape: BackboneShape, hidden: int = 64, layers: int = 1,
                 dropout: float = 0.1, heads: int = 4, max_length: int = 512) -> None:
        super().__init__()
        input_dim, context_dim, horizon, future_dim = (shape.input_dim, shape.context_dim,
                                                       shape.horizon, shape.future_dim)
        self.horizon = horizon
        self.embed = nn.Linear(input_dim + 1, hidden)  # + the observed mask channel
        self.context_token = nn.Linear(context_dim, hidden)
        self.position = nn.Embedding(max_length + 1, hidden)
        encoder_layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=2 * hidden,
                                                   dropout=dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(encoder_layer, layers, enable_nested_tensor=False)
        self.query_context = nn.Linear(context_dim, hidden)
        self.query_future = nn.Linear(future_dim, hidden) if future_dim else None
        self.step = nn.Embedding(horizon, hidden)
        decoder_layer = nn.TransformerDecoderLayer(hidden, heads, dim_feedforward=2 * hidden,
                                                   dropout=dropout, batch_first=True)
        self.decoder = nn.TransformerDecoder(decoder_layer, layers)
        self.out_dim = horizon * hidden

    def forward(self, history: torch.Tensor, mask: torch.Tensor, context: torch.Tensor,
                future: torch.Tensor) -> torch.Tensor:
        batch, length, _ = history.shape
        steps = torch.cat([history * mask[..., None], mask[..., None].float()], dim=-1)
        tokens = torch.cat([self.context_token(context)[:, None], self.embed(steps)], dim=1)
        tokens = tokens + self.position(torch.arange(length + 1, device=history.device))[None]
        padding = torch.cat([torch.zeros(batch, 1, dtype=torch.bool, device=mask.device), ~mask],
                            dim=1)
        memory = self.encoder(tokens, src_key_padding_mask=padding)
        queries = self.query_context(context)[:, None] + self.step.weight[None]
        if self.query_future is not None:
            queries = queries + self.query_future(future)
        decoded = self.decoder(queries, memory, memory_key_padding_mask=padding)
        return decoded.reshape(batch, -1)
