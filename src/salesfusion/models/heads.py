"""Output heads, registered by name: point forecasts, or ordered quantiles (non-crossing by
construction), or a mean beside ordered quantiles. Every head is built as ``Head(in_dim,
horizon, quantiles)`` and returns (B, horizon, K): K = max(1, len(quantiles)), one more for the
mean of ``mean_quantile``."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional

from salesfusion.components import HEADS


@HEADS.register
class PointHead(nn.Module):
    """One value per horizon step."""

    name: ClassVar[str] = "point"

    def __init__(self, in_dim: int, horizon: int, quantiles: tuple[float, ...] = ()) -> None:
        super().__init__()
        self.horizon = horizon
        self.linear = nn.Linear(in_dim, horizon)
        self.quantiles: tuple[float, ...] = ()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, horizon, 1)."""
        return self.linear(features)[..., None]


@HEADS.register
class QuantileHead(nn.Module):
    """The lowest quantile plus non-negative increments, so q_1 <= q_2 <= ... always."""

    name: ClassVar[str] = "quantile"

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


@HEADS.register
class MeanQuantileHead(nn.Module):
    """A mean channel (first) beside ordered quantiles: the head of a model whose point forecast
    is the mean and which also gives quantiles (trained by ``losses.MeanAndQuantiles``)."""

    name: ClassVar[str] = "mean_quantile"

    def __init__(self, in_dim: int, horizon: int, quantiles: tuple[float, ...]) -> None:
        super().__init__()
        self.horizon = horizon
        self.linear = nn.Linear(in_dim, horizon)  # the mean channel
        self.quantile_head = QuantileHead(in_dim, horizon, quantiles)
        self.quantiles = self.quantile_head.quantiles

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, horizon, 1 + Q): the mean, then the quantiles in order."""
        return torch.cat([self.linear(features)[..., None], self.quantile_head(features)], dim=-1)
