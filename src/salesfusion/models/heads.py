"""Output heads: point forecasts, or ordered quantiles (non-crossing by construction)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional


class PointHead(nn.Module):
    def __init__(self, in_dim: int, horizon: int) -> None:
        super().__init__()
        self.horizon = horizon
        self.linear = nn.Linear(in_dim, horizon)
        self.quantiles: tuple[float, ...] = ()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, horizon, 1)."""
        return self.linear(features)[..., None]


class QuantileHead(nn.Module):
    """The lowest quantile plus non-negative increments, so q_1 <= q_2 <= ... always."""

    def __init__(self, in_dim: int, horizon: int, quantiles: tuple[float, ...]) -> None:
        super().__init__()
        self.horizon = horizon
        self.quantiles = tuple(sorted(quantiles))
        self.linear = nn.Linear(in_dim, horizon * len(self.quantiles))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, horizon, Q), ordered along the last axis."""
        raw = self.linear(features).view(-1, self.horizon, len(self.quantiles))
        increments = functional.softplus(raw[..., 1:])
        return torch.cat([raw[..., :1], raw[..., :1] + increments.cumsum(-1)], dim=-1)
