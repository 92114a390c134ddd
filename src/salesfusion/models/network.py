"""The composed network: item content (encoders -> fusion) + market -> temporal backbone -> head.

Built from what each component declares (``Fusion.required_modalities`` and
``context_entities``, ``TemporalBackbone.reads_future`` and ``selects_static``), never from a
component's name, so a new fusion or backbone is one file and its registration:

- a backbone that selects static variables itself gets every modality, the market and the
  level as separate static variables, and no fusion runs;
- otherwise the fusion combines the item's modalities (plus the ``market`` and ``events``
  entities when it declares them) and the backbone gets fused content + market + level;
- a backbone that reads future inputs gets the forecast periods' known inputs per step; the
  others get the forecast periods' calendar flattened next to their output, before the head,
  and, when there are future-known covariates (events, planned prices and promotions), a
  step-local decoder (as TiDE's temporal decoder) adds to step h's output a term computed from
  step h's covariates and the encoded history, shared over steps and the same for every
  quantile (so quantiles stay ordered): a planned price of one period moves that period's
  forecast only. Without future-known covariates the network is what it was before the step
  decoder existed (the launch benchmarks lost 3-15 WAPE points when the calendar went through
  it too).

A fusion whose required modality is absent (an ablation removed it) is replaced by the
configured fallback fusion and ``notes`` says so. Item content (text/image vectors with
presence masks, static attribute codes) is stored as buffers indexed by item row, so the
weights file carries everything needed to predict and a saved model needs no encoder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from salesfusion.encoders.modalities import content_modalities
from salesfusion.encoders.static import StaticAttributeEncoder
from salesfusion.features.calendar import CALENDAR_WIDTH
from salesfusion.fusion import FUSIONS, ModalityInput
from salesfusion.models.heads import HEADS
from salesfusion.models.temporal import BACKBONES, BackboneShape

MARKET_DIM = 8
MARKET_ATTRIBUTE_DIM = 4  # embedding width of each markets-table attribute
STEP_CONTEXT_DIM = 8  # what the step-local decoder reads of the encoded history
# The network's inputs, one tensor each in a batch mapping (see ``training.batches``).
# ``market_codes`` (B, attributes) only for a model with market attributes.
NET_INPUTS = ("history", "history_mask", "items", "markets", "log_level", "future", "abroad",
              "market_codes")
STATIC_BUFFERS = ("static_codes", "static_numbers")


def content_buffers() -> dict[str, tuple[str, ...]]:
    """Item content buffers by modality: each registered content modality's vectors, presence
    and optional token masks (``encoders.modalities``), and the static attributes' codes."""
    return {**{source.name: source.buffers() for source in content_modalities()},
            "static": STATIC_BUFFERS}


class MultimodalNet(nn.Module):
    def __init__(self, *, content: dict[str, torch.Tensor], static_cardinalities: list[int],
                 n_numeric: int, n_markets: int, history_dim: int, future_dim: int,
                 horizon: int, fusion: str | None, fallback_fusion: str, fusion_dim: int,
                 backbone: str, head: str, hidden: int, layers: int, dropout: float,
                 quantiles: tuple[float, ...], static_dim: int = 16,
                 cross_market: bool = False,
                 market_cardinalities: tuple[int, ...] = (),
                 lookback: int | None = None, backbone_params: Mapping[str, Any] | None = None,
                 fusion_params: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        # The item's demand in the other markets joins the market and level in the context.
        self.cross_market = cross_market
        self.notes: list[str] = []
        for buffers in content_buffers().values():
            for buffer in buffers:
                if buffer in content:
                    self.register_buffer(buffer, content[buffer])
        # The content modalities held, in the registry's fixed order (text, image, others).
        self.content_modalities = [source.name for source in content_modalities()
                                   if source.buffers()[0] in content]
        dims = {m: content[f"{m}_values"].shape[-1] for m in self.content_modalities}
        if "static_codes" in content:
            self.static = StaticAttributeEncoder(static_cardinalities, n_numeric, static_dim)
            dims["static"] = static_dim
        self.modalities = list(dims)
        self.market = nn.Embedding(n_markets + 1, MARKET_DIM)  # index 0: unseen market
        # Markets-table attributes (index 0: unknown level), joined to the market embedding.
        self.market_attributes = nn.ModuleList(nn.Embedding(size, MARKET_ATTRIBUTE_DIM)
                                               for size in market_cardinalities)
        market_dim = MARKET_DIM + MARKET_ATTRIBUTE_DIM * len(market_cardinalities)
        # Event channels of a history step: everything after the value and the calendar.
        self.event_channels = history_dim - 1 - CALENDAR_WIDTH
        backbone_type = BACKBONES.get(backbone)
        self.reads_future = backbone_type.reads_future
        self.selects_static = backbone_type.selects_static
        self.fusion = None
        self.entities: tuple[str, ...] = ()
        context_dim = market_dim + 1 + int(cross_market)
        if self.selects_static:
            if fusion is not None:
                self.notes.append(f"fusion '{fusion}' not used: backbone '{backbone}' selects "
                                  f"static variables itself")
        else:
            fusion_type = FUSIONS.get(fusion or fallback_fusion)
            missing = fusion_type.required_modalities - set(dims)
            if missing:
                self.notes.append(f"fusion '{fusion_type.name}' needs {sorted(missing)}, which "
                                  f"this model does not have: using '{fallback_fusion}'")
                fusion_type = FUSIONS.get(fallback_fusion)
            self.entities = fusion_type.context_entities
            entity_dims = {"market": market_dim,
                           "events": self.event_channels + horizon * future_dim}
            fused_dims = {**dims, **{e: entity_dims[e] for e in self.entities}}
            if fused_dims:
                # The configured fusion's own parameters; a fallback takes its defaults.
                own = dict(fusion_params or {}) if fusion_type.name == fusion else {}
                self.fusion = fusion_type(fused_dims, fusion_dim, **own)
                context_dim += fusion_dim
        shape = BackboneShape(input_dim=history_dim, context_dim=context_dim, horizon=horizon,
                              future_dim=future_dim, lookback=lookback,
                              static_dims=(*[dims[m] + 1 for m in self.modalities],
                                           market_dim, 1, *([1] if cross_market else [])))
        self.backbone = backbone_type(shape, hidden=hidden, layers=layers, dropout=dropout,
                                      **dict(backbone_params or {}))
        head_in = self.backbone.out_dim + (0 if self.reads_future
                                           else horizon * CALENDAR_WIDTH)
        self.head = HEADS.get(head)(head_in, horizon, quantiles)
        planned = future_dim - CALENDAR_WIDTH  # future-known covariate channels per step
        local = not self.reads_future and planned > 0
        self.step_decoder = nn.Sequential(
            nn.Linear(planned + STEP_CONTEXT_DIM, hidden), nn.ReLU(),
            nn.Linear(hidden, 1)) if local else None
        self.step_context = nn.Linear(self.backbone.out_dim, STEP_CONTEXT_DIM) if local \
            else None

    def attribution_inputs(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every input of ``batch`` the output depends on continuously, as float tensors:
        ``history`` and ``future`` (all channels), ``log_level``, ``abroad`` (cross-market
        models), the ``market`` embedding, the item's ``text`` / ``image`` vectors and the
        ``static`` attributes' joined embeddings and numbers (``StaticAttributeEncoder.spans``).
        Lookups (item rows, market indices) and masks stay discrete and are read from the
        batch; ``forward_from(batch, inputs)`` is the network on these."""
        items = batch["items"]
        known, rows = items >= 0, items.clamp(min=0)
        market = [self.market(batch["markets"])] + [
            embedding(batch["market_codes"][:, i])
            for i, embedding in enumerate(self.market_attributes)]
        inputs = {"history": batch["history"], "future": batch["future"],
                  "log_level": batch["log_level"], "market": torch.cat(market, dim=1)}
        if self.cross_market:
            inputs["abroad"] = batch["abroad"]
        for name in self.content_modalities:
            inputs[name] = getattr(self, f"{name}_values")[rows]
        if "static" in self.modalities:
            inputs["static"] = self.static.embed(self.static_codes[rows] * known[:, None],
                                                 self.static_numbers[rows]
                                                 * known[:, None].float())
        return inputs

    def market_attribute_spans(self) -> list[slice]:
        """Columns of the ``market`` input holding each markets-table attribute."""
        return [slice(MARKET_DIM + i * MARKET_ATTRIBUTE_DIM,
                      MARKET_DIM + (i + 1) * MARKET_ATTRIBUTE_DIM)
                for i in range(len(self.market_attributes))]

    def content(self, items: torch.Tensor,
                inputs: Mapping[str, torch.Tensor]) -> dict[str, ModalityInput]:
        """The modality inputs of a batch of item rows (row -1: an item with no content)."""
        known = items >= 0
        rows = items.clamp(min=0)
        out: dict[str, ModalityInput] = {}
        for name in self.content_modalities:
            tokens = getattr(self, f"{name}_tokens", None)
            out[name] = ModalityInput(inputs[name],
                                      getattr(self, f"{name}_present")[rows] & known,
                                      tokens[rows] if tokens is not None else None)
        if "static" in self.modalities:
            out["static"] = ModalityInput(self.static.project(inputs["static"]), known)
        return out

    def _entities(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, ModalityInput]:
        history, future, market = inputs["history"], inputs["future"], inputs["market"]
        always = torch.ones(len(market), dtype=torch.bool, device=market.device)
        events = torch.cat([history[..., history.shape[-1] - self.event_channels:].mean(1),
                            future.flatten(1)], dim=1)
        available = {"market": market, "events": events}
        return {e: ModalityInput(available[e], always) for e in self.entities}

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``batch`` maps every name of ``NET_INPUTS`` to its tensor; returns (B, H, K)."""
        return self.forward_from(batch, self.attribution_inputs(batch))

    def forward_from(self, batch: Mapping[str, torch.Tensor],
                     inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The network on ``attribution_inputs``; ``batch`` gives ``history_mask`` and
        ``items`` (which content is present)."""
        history, mask, future = inputs["history"], batch["history_mask"], inputs["future"]
        market = inputs["market"]
        level = inputs["log_level"][:, None]
        context_values = [market, level] + ([inputs["abroad"][:, None]] if self.cross_market
                                            else [])
        content = self.content(batch["items"], inputs)
        if self.selects_static:
            context: torch.Tensor | list[torch.Tensor] = [
                *(torch.cat([m.pooled() * m.present[:, None].float(),
                             m.present[:, None].float()], dim=1) for m in content.values()),
                *context_values]
        else:
            parts = list(context_values)
            if self.fusion is not None:
                parts.insert(0, self.fusion({**content, **self._entities(inputs)}))
            context = torch.cat(parts, dim=1)
        if self.reads_future:
            return self.head(self.backbone(history, mask, context, future))
        encoded = self.backbone(history, mask, context)
        # Window futures are the calendar, then the future-known covariates.
        calendar, planned = future[..., :CALENDAR_WIDTH], future[..., CALENDAR_WIDTH:]
        forecast = self.head(torch.cat([encoded, calendar.flatten(1)], dim=1))
        if self.step_decoder is None:
            return forecast
        step_context = self.step_context(encoded)[:, None, :].expand(-1, future.shape[1], -1)
        return forecast + self.step_decoder(torch.cat([planned, step_context], dim=-1))
