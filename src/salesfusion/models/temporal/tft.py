"""Temporal Fusion Transformer (Lim et al. 2021), the backbone of seed 002's framework.

Components, as in the paper: gated residual networks (GRN) with gated linear units; a variable
selection network over the static variables (every modality embedding, the market, the level),
over each history variable per step, and over the decoder's inputs; four static covariate
encoders (selection context, enrichment context, LSTM initial hidden and cell states); an LSTM
encoder over the history and an LSTM decoder over the horizon; gated skip connections with layer
norm; static enrichment; interpretable multi-head attention (per-head queries and keys, one
shared value projection, heads averaged) with a causal mask on the decoder and the history's
padding mask; a position-wise GRN. The decoder's inputs are a step embedding and each known
future input (the calendar of the forecast periods, scheduled events, future-known exogenous
columns), one variable each in the decoder's selection network. The selection weights and the
attention are kept in ``explanations`` after each forward pass.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional

from salesfusion.components import BACKBONES
from salesfusion.models.temporal.base import BackboneShape, TemporalBackbone
from salesfusion.registry import ComponentParams


class GatedLinearUnit(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_dim, 2 * out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.glu(self.linear(self.dropout(x)), dim=-1)


class GatedResidualNetwork(nn.Module):
    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0,
                 context_dim: int | None = None) -> None:
        super().__init__()
        self.skip = nn.Linear(in_dim, out_dim) if in_dim != out_dim else nn.Identity()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.context = nn.Linear(context_dim, hidden, bias=False) if context_dim else None
        self.fc2 = nn.Linear(hidden, hidden)
        self.gate = GatedLinearUnit(hidden, out_dim, dropout)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.fc1(x)
        if self.context is not None and context is not None:
            while context.dim() < hidden.dim():
                context = context.unsqueeze(-2)
            hidden = hidden + self.context(context)
        hidden = self.fc2(functional.elu(hidden))
        return self.norm(self.skip(x) + self.gate(hidden))


class VariableSelection(nn.Module):
    """Softmax weights over variables (from all of them and the context), applied to each
    variable's own GRN transform."""

    def __init__(self, dims: list[int], hidden: int, dropout: float,
                 context_dim: int | None = None) -> None:
        super().__init__()
        self.dims = dims
        # With one variable there is nothing to select: its transform takes the context instead.
        self.weights = (GatedResidualNetwork(sum(dims), hidden, len(dims), dropout, context_dim)
                        if len(dims) > 1 else None)
        single_context = context_dim if len(dims) == 1 else None
        self.transforms = nn.ModuleList(
            GatedResidualNetwork(d, hidden, hidden, dropout, single_context) for d in dims)

    def forward(self, variables: list[torch.Tensor],
                context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.weights is None:
            out = self.transforms[0](variables[0], context)
            return out, torch.ones(*out.shape[:-1], 1, device=out.device)
        weights = torch.softmax(self.weights(torch.cat(variables, dim=-1), context), dim=-1)
        transformed = torch.stack([t(v) for t, v in zip(self.transforms, variables, strict=True)],
                                  dim=-1)
        return (transformed * weights.unsqueeze(-2)).sum(-1), weights


class InterpretableAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = max(1, hidden // heads)
        self.queries = nn.Linear(hidden, self.head_dim * heads)
        self.keys = nn.Linear(hidden, self.head_dim * heads)
        self.value = nn.Linear(hidden, self.head_dim)  # shared by every head
        self.output = nn.Linear(self.head_dim, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, keys: torch.Tensor,
                allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, n_query, _ = query.shape
        q = self.queries(query).view(batch, n_query, self.heads, self.head_dim).transpose(1, 2)
        k = self.keys(keys).view(batch, keys.shape[1], self.heads, self.head_dim).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
        attention = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)
        mixed = (self.dropout(attention) @ self.value(keys)[:, None]).mean(dim=1)
        return self.output(mixed), attention.mean(dim=1)


@BACKBONES.register
class TFTBackbone(TemporalBackbone):
    """``forward(history (B, T, F), mask (B, T), static: list of (B, d_i))`` -> (B, horizon *
    hidden): one state per forecast step, flattened for the head."""

    name = "tft"
    reads_future = True
    selects_static = True

    class Params(ComponentParams):
        heads: int = Field(4, ge=1, description="Attention heads of the temporal attention.")

    def __init__(self, shape: BackboneShape, hidden: int = 32, layers: int = 1,
                 dropout: float = 0.1, heads: int = 4) -> None:
        super().__init__()
        input_dim, static_dims, horizon, future_dim = (shape.input_dim, list(shape.static_dims),
                                                       shape.horizon, shape.future_dim)
        self.horizon = horizon
        self.hidden = hidden
        self.static_selection = VariableSelection(static_dims, hidden, dropout)
        self.static_contexts = nn.ModuleList(GatedResidualNetwork(hidden, hidden, hidden, dropout)
                                             for _ in range(4))
        # History variables: each input feature and the observed-mask, one variable each.
        self.history_selection = VariableSelection([1] * (input_dim + 1), hidden, dropout,
                                                   context_dim=hidden)
        self.step_embedding = nn.Embedding(horizon, hidden)
        self.future_selection = VariableSelection([hidden] + [1] * future_dim, hidden, dropout,
                                                  context_dim=hidden)
        self.encoder = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True,
                               dropout=dropout if layers > 1 else 0.0)
        self.decoder = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True,
                               dropout=dropout if layers > 1 else 0.0)
        self.lstm_gate = GatedLinearUnit(hidden, hidden, dropout)
        self.lstm_norm = nn.LayerNorm(hidden)
        self.enrichment = GatedResidualNetwork(hidden, hidden, hidden, dropout, context_dim=hidden)
        self.attention = InterpretableAttention(hidden, heads, dropout)
        self.attention_gate = GatedLinearUnit(hidden, hidden, dropout)
        self.attention_norm = nn.LayerNorm(hidden)
        self.positionwise = GatedResidualNetwork(hidden, hidden, hidden, dropout)
        self.output_gate = GatedLinearUnit(hidden, hidden, dropout)
        self.output_norm = nn.LayerNorm(hidden)
        self.layers = layers
        self.out_dim = horizon * hidden
        self.explanations: dict[str, torch.Tensor] = {}

    def forward(self, history: torch.Tensor, mask: torch.Tensor, static: list[torch.Tensor],
                future: torch.Tensor | None = None) -> torch.Tensor:
        batch, length, features = history.shape
        static_vector, static_weights = self.static_selection(static)
        selection, enrichment, state_h, state_c = (g(static_vector) for g in self.static_contexts)

        steps = torch.cat([history * mask[..., None], mask[..., None].float()], dim=-1)
        past, past_weights = self.history_selection(
            [steps[..., i:i + 1] for i in range(features + 1)], selection)
        decoder_inputs = [self.step_embedding.weight[None].expand(batch, -1, -1)]
        if future is not None:
            decoder_inputs += [future[..., i:i + 1] for i in range(future.shape[-1])]
        future, future_weights = self.future_selection(decoder_inputs, selection)

        initial = (state_h[None].repeat(self.layers, 1, 1).contiguous(),
                   state_c[None].repeat(self.layers, 1, 1).contiguous())
        encoded, state = self.encoder(past, initial)
        decoded, _ = self.decoder(future, state)
        sequence_in = torch.cat([past, future], dim=1)
        sequence = self.lstm_norm(sequence_in + self.lstm_gate(torch.cat([encoded, decoded],
                                                                         dim=1)))
        enriched = self.enrichment(sequence, enrichment)

        total = length + self.horizon
        known = torch.cat([mask, torch.ones(batch, self.horizon, dtype=torch.bool,
                                            device=mask.device)], dim=1)
        causal = torch.ones(total, total, dtype=torch.bool, device=mask.device).tril()
        queries = enriched[:, length:]
        allowed = causal[length:][None] & known[:, None, :]
        attended, attention = self.attention(queries, enriched, allowed)
        gated = self.attention_norm(queries + self.attention_gate(attended))
        output = self.output_norm(sequence[:, length:]
                                  + self.output_gate(self.positionwise(gated)))
        self.explanations = {"static_weights": static_weights.detach(),
                             "history_weights": past_weights.detach(),
                             "future_weights": future_weights.detach(),
                             "attention": attention.detach()}
        return output.reshape(batch, -1)
