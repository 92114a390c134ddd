"""Fusion: combine per-item modality embeddings into one item representation.

Every fusion module takes ``{modality: ModalityInput}`` and returns ``(batch, out_dim)``. A
modality missing for an item (``present`` False) is excluded by masks, never fed as zeros that
look like data: concatenation appends the presence bit, gates are multiplied by presence,
attention masks out absent keys, and an item with no modality at all gets a learned "nothing
known" vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from salesfusion.registry import ComponentParams


@dataclass
class ModalityInput:
    """One modality for a batch: ``values`` (B, D) or (B, L, D); ``present`` (B,) bool;
    ``token_mask`` (B, L) bool for sequences (True = real token)."""

    values: torch.Tensor
    present: torch.Tensor
    token_mask: torch.Tensor | None = None

    @property
    def is_sequence(self) -> bool:
        return self.values.dim() == 3

    def tokens(self) -> tuple[torch.Tensor, torch.Tensor]:
        """As a sequence: (B, L, D) values and (B, L) mask (absent items: all False)."""
        if self.is_sequence:
            mask = self.token_mask if self.token_mask is not None else torch.ones(
                self.values.shape[:2], dtype=torch.bool, device=self.values.device)
            return self.values, mask & self.present[:, None]
        return self.values[:, None, :], self.present[:, None]

    def pooled(self) -> torch.Tensor:
        """(B, D): the mean over real tokens; zero for absent items (paired with ``present``)."""
        values, mask = self.tokens()
        weights = mask.float().unsqueeze(-1)
        return (values * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class Fusion(nn.Module):
    """Base class: ``dims`` maps each modality the model may see to its embedding width.

    Subclasses declare what they consume, read by the network builder: the item modalities
    they cannot work without (``required_modalities``) and the entities beyond the item's
    content they attend over (``context_entities``: ``market`` and/or ``events`` tokens).
    """

    name: ClassVar[str]
    required_modalities: ClassVar[frozenset[str]] = frozenset()
    context_entities: ClassVar[tuple[str, ...]] = ()
    # What it takes beyond ``dims`` and ``out_dim`` (``fusion: {name, params}``).
    Params: ClassVar[type[ComponentParams]] = ComponentParams

    def __init__(self, dims: dict[str, int], out_dim: int) -> None:
        super().__init__()
        self.dims = dict(dims)
        self.out_dim = out_dim
        self.nothing_known = nn.Parameter(torch.zeros(out_dim))

    def forward(self, inputs: dict[str, ModalityInput]) -> torch.Tensor:
        raise NotImplementedError

    def _fill_empty(self, fused: torch.Tensor, inputs: dict[str, ModalityInput]) -> torch.Tensor:
        any_present = torch.zeros(fused.shape[0], dtype=torch.bool, device=fused.device)
        for item in inputs.values():
            any_present |= item.present
        return torch.where(any_present[:, None], fused, self.nothing_known.expand_as(fused))
