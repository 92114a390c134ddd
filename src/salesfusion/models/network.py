"""The composed network: item content (encoders -> fusion) + market -> temporal backbone -> head.

The forecast periods' known inputs (``future``: calendar, scheduled events, future-known
exogenous columns) reach every model: the TFT and GTM decoders read them per step, the other
backbones get them flattened next to their output, before the head. The multi-entity fusion
also sees the market and an events entity (event channels of the window and the future inputs).

Item content (text/image vectors with presence masks, static attribute codes) is stored as
buffers, indexed by item row, so the weights file carries everything needed to predict and a
saved model needs no encoder at load time.
"""

from __future__ import annotations

import torch
from torch import nn

from salesfusion.encoders.static import StaticAttributeEncoder
from salesfusion.fusion import FUSIONS, ModalityInput
from salesfusion.models.heads import PointHead, QuantileHead
from salesfusion.models.temporal import BACKBONES, FUTURE_BACKBONES
from salesfusion.models.temporal.tft import TFTBackbone
from salesfusion.training.windows import CALENDAR_WIDTH

MARKET_DIM = 8


class MultimodalNet(nn.Module):
    def __init__(self, *, content: dict[str, torch.Tensor], static_cardinalities: list[int],
                 n_numeric: int, n_markets: int, history_dim: int, horizon: int,
                 fusion: str, fusion_dim: int, backbone: str, hidden: int, layers: int,
                 dropout: float, quantiles: tuple[float, ...], static_dim: int = 16,
                 future_dim: int = CALENDAR_WIDTH) -> None:
        super().__init__()
        dims: dict[str, int] = {}
        for name in ("text", "image"):
            if f"{name}_values" in content:
                self.register_buffer(f"{name}_values", content[f"{name}_values"])
                self.register_buffer(f"{name}_present", content[f"{name}_present"])
                if f"{name}_tokens" in content:
                    self.register_buffer(f"{name}_tokens", content[f"{name}_tokens"])
                dims[name] = content[f"{name}_values"].shape[-1]
        self.has_static = "static_codes" in content
        if self.has_static:
            self.register_buffer("static_codes", content["static_codes"])
            self.register_buffer("static_numbers", content["static_numbers"])
            self.static = StaticAttributeEncoder(static_cardinalities, n_numeric, static_dim)
            dims["static"] = static_dim
        self.modalities = list(dims)
        self.market = nn.Embedding(n_markets + 1, MARKET_DIM)  # index 0: unseen market
        self.is_tft = backbone == "tft"
        self.entities = fusion == "multi_entity" and not self.is_tft
        self.backbone_reads_future = self.is_tft or backbone in FUTURE_BACKBONES
        # Event channels of a history step: everything after the value and the calendar.
        self.event_channels = history_dim - 1 - CALENDAR_WIDTH
        if self.is_tft:
            # The TFT's static variable selection weighs every modality itself: no fusion.
            self.fusion = None
            static_dims = [dims[m] + 1 for m in self.modalities] + [MARKET_DIM, 1]
            self.backbone = TFTBackbone(history_dim, static_dims, horizon, hidden=hidden,
                                        layers=layers, dropout=dropout, future_dim=future_dim)
        else:
            needs = {"hierarchical_mma": {"image"},
                     "bidirectional": {"text", "image"}}.get(fusion, set())
            if needs - set(dims):
                fusion = "concat"  # an ablation removed a modality the attention fusion needs
            if self.entities:
                dims = {**dims, "market": MARKET_DIM,
                        "events": self.event_channels + horizon * future_dim}
            self.fusion = FUSIONS[fusion](dims, fusion_dim) if dims else None
            context_dim = (fusion_dim if dims else 0) + MARKET_DIM + 1
            extra = ({"horizon": horizon, "future_dim": future_dim}
                     if backbone in FUTURE_BACKBONES else {})
            self.backbone = BACKBONES[backbone](input_dim=history_dim, context_dim=context_dim,
                                                hidden=hidden, layers=layers, dropout=dropout,
                                                **extra)
        head_in = self.backbone.out_dim + (0 if self.backbone_reads_future
                                           else horizon * future_dim)
        self.head = (QuantileHead(head_in, horizon, quantiles) if quantiles
                     else PointHead(head_in, horizon))

    def content(self, items: torch.Tensor) -> dict[str, ModalityInput]:
        """The modality inputs of a batch of item rows (row -1: an item with no content)."""
        known = items >= 0
        rows = items.clamp(min=0)
        out: dict[str, ModalityInput] = {}
        for name in ("text", "image"):
            if name in self.modalities:
                tokens = getattr(self, f"{name}_tokens", None)
                out[name] = ModalityInput(
                    getattr(self, f"{name}_values")[rows],
                    getattr(self, f"{name}_present")[rows] & known,
                    tokens[rows] if tokens is not None else None)
        if self.has_static:
            vector = self.static(self.static_codes[rows] * known[:, None],
                                 self.static_numbers[rows] * known[:, None].float())
            out["static"] = ModalityInput(vector, known)
        return out

    def forward(self, history: torch.Tensor, history_mask: torch.Tensor, items: torch.Tensor,
                markets: torch.Tensor, log_level: torch.Tensor,
                future: torch.Tensor) -> torch.Tensor:
        market = self.market(markets)
        parts = [market, log_level[:, None]]
        if self.is_tft:
            statics = [torch.cat([m.pooled() * m.present[:, None].float(),
                                  m.present[:, None].float()], dim=1)
                       for m in self.content(items).values()]
            return self.head(self.backbone(history, history_mask, [*statics, *parts], future))
        if self.fusion is not None:
            content = self.content(items)
            if self.entities:
                always = torch.ones(len(items), dtype=torch.bool, device=items.device)
                events = torch.cat([history[..., history.shape[-1] - self.event_channels:]
                                    .mean(1), future.flatten(1)], dim=1)
                content.update(market=ModalityInput(market, always),
                               events=ModalityInput(events, always))
            parts.insert(0, self.fusion(content))
        context = torch.cat(parts, dim=1)
        if self.backbone_reads_future:
            return self.head(self.backbone(history, history_mask, context, future))
        encoded = self.backbone(history, history_mask, context)
        return self.head(torch.cat([encoded, future.flatten(1)], dim=1))
