"""Losses on (prediction, target, mask) with masked periods excluded from the mean.

``mse``, ``mae``, ``rmse`` (seed 000 trains on RMSE) and ``pinball`` take predictions on the
target's scale; ``poisson`` and ``tweedie`` take the log of the mean (the head's output), the
usual parametrisation for counts, so that the mean stays positive.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

LOSSES = ("mse", "mae", "rmse", "pinball", "poisson", "tweedie")
LOG_LINK = ("poisson", "tweedie")


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.float()
    while weights.dim() < values.dim():
        weights = weights.unsqueeze(-1)
    weights = weights.expand_as(values)
    return (values * weights).sum() / weights.sum().clamp(min=1.0)


def pinball(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
            quantiles: tuple[float, ...]) -> torch.Tensor:
    levels = torch.tensor(quantiles, dtype=prediction.dtype, device=prediction.device)
    error = target[..., None] - prediction
    return _masked_mean(torch.maximum(levels * error, (levels - 1) * error), mask)


def make_loss(name: str, quantiles: tuple[float, ...] = (), tweedie_power: float = 1.5
              ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """A loss of (prediction (B, H, K), target (B, H), mask (B, H))."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss '{name}'; use one of {LOSSES}")

    def loss(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if name == "pinball":
            return pinball(prediction, target, mask, quantiles)
        point = prediction[..., 0]
        if name == "mse":
            return _masked_mean((point - target) ** 2, mask)
        if name == "rmse":
            return _masked_mean((point - target) ** 2, mask).clamp(min=1e-12).sqrt()
        if name == "mae":
            return _masked_mean((point - target).abs(), mask)
        if name == "poisson":
            return _masked_mean(point.exp() - target * point, mask)
        p = tweedie_power
        return _masked_mean(-target * torch.exp(point * (1 - p)) / (1 - p)
                            + torch.exp(point * (2 - p)) / (2 - p), mask)

    return loss
