"""Multi-entity multimodal fusion (MEMF), a paper baseline of seed 000.

Our reading of its published description: the forecast depends on several entities - the item
(each content modality a token), the market it sells in and the events around it - so every
entity becomes a token of one width, a multi-head self-attention layer lets each entity attend
to the others (an item's image may matter more in one market than another; an event matters
through the item it features), and the attended tokens of the entities present are averaged.
Absent modalities are masked keys and are left out of the average.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from salesfusion.components import FUSIONS
from salesfusion.fusion.base import Fusion, ModalityInput
from salesfusion.registry import ComponentParams


@FUSIONS.register
class MultiEntityFusion(Fusion):
    name = "multi_entity"
    context_entities = ("market", "events")

    class Params(ComponentParams):
        heads: int = Field(4, ge=1, description=(
            "Attention heads over the entities (one when they do not divide fusion_dim)."))

    def __init__(self, dims: dict[str, int], out_dim: int, heads: int = 4) -> None:
        super().__init__(dims, out_dim)
        self.embed = nn.ModuleDict({m: nn.Linear(d, out_dim) for m, d in dims.items()})
        # A learned type embedding per entity, so tokens stay distinguishable after attention.
        self.kind = nn.Parameter(torch.zeros(len(dims), out_dim))
        self.attention = nn.MultiheadAttention(out_dim, heads if out_dim % heads == 0 else 1,
                                               batch_first=True)
        self.norm = nn.LayerNorm(out_dim)
        self.output = nn.Sequential(nn.Linear(out_dim, out_dim), nn.ReLU())
        self.last_attention: torch.Tensor | None = None
        # A row with no entity present attends over the learned type embeddings alone, which
        # already is a learned "nothing known" vector; the base class's would be a dead weight.
        self.nothing_known = None

    def forward(self, inputs: dict[str, ModalityInput]) -> torch.Tensor:
        names = list(self.dims)
        tokens = torch.stack([self.embed[m](inputs[m].pooled()) for m in names], dim=1)
        tokens = tokens + self.kind[None]
        present = torch.stack([inputs[m].present for m in names], dim=1)
        # A row with no entity present would make attention undefined: let it see every token
        # (all zeros but the type embeddings).
        keys_allowed = present | ~present.any(dim=1, keepdim=True)
        attended, weights = self.attention(tokens, tokens, tokens, key_padding_mask=~keys_allowed)
        self.last_attention = weights.detach()
        mixed = self.norm(tokens + attended)
        weight = present.float()[..., None]
        weight = torch.where(present.any(dim=1)[:, None, None], weight, torch.ones_like(weight))
        pooled = (mixed * weight).sum(1) / weight.sum(1).clamp(min=1.0)
        return self.output(pooled)
