"""Losses on (prediction, target, mask) with masked periods excluded from the mean, registered
by name so that configs validate them and ``salesfusion components`` lists them.

``mse``, ``mae``, ``rmse`` (seed 000 trains on RMSE) and ``pinball`` take predictions on the
target's scale; ``poisson`` and ``tweedie`` take the log of the mean (the head's output), the
usual parametrisation for counts, so that the mean stays positive (``log_link``).

Each loss declares the point forecast its minimiser is (``gives``): the squared errors and the
count likelihoods give the mean, the absolute error and the pinball loss at 0.5 the median.
``MeanAndQuantiles`` trains a mean channel on one of the former and the quantile channels on the
pinball loss, the head of a model whose point forecast is the mean and which gives quantiles.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch

from salesfusion.components import LOSSES


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.float()
    while weights.dim() < values.dim():
        weights = weights.unsqueeze(-1)
    weights = weights.expand_as(values)
    return (values * weights).sum() / weights.sum().clamp(min=1.0)


class Loss:
    """A loss of (prediction (B, H, K), target (B, H), mask (B, H))."""

    name: ClassVar[str]
    log_link: ClassVar[bool] = False  # the head outputs the log of the mean
    gives: ClassVar[Literal["mean", "median"]] = "mean"  # what minimising it forecasts

    def __init__(self, quantiles: tuple[float, ...] = (), tweedie_power: float = 1.5) -> None:
        self.quantiles = quantiles
        self.tweedie_power = tweedie_power

    def __call__(self, prediction: torch.Tensor, target: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
        return _masked_mean(self.pointwise(prediction[..., 0], target), mask)

    def pointwise(self, point: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@LOSSES.register
class MSE(Loss):
    """Mean squared error."""

    name = "mse"

    def pointwise(self, point: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (point - target) ** 2


@LOSSES.register
class RMSE(Loss):
    """Root mean squared error (seed 000)."""

    name = "rmse"

    def __call__(self, prediction: torch.Tensor, target: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
        return _masked_mean((prediction[..., 0] - target) ** 2, mask).clamp(min=1e-12).sqrt()


@LOSSES.register
class MAE(Loss):
    """Mean absolute error (the median forecast)."""

    name = "mae"
    gives = "median"

    def pointwise(self, point: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (point - target).abs()


@LOSSES.register
class Pinball(Loss):
    """Quantile (pinball) loss averaged over the quantile levels."""

    name = "pinball"
    gives = "median"

    def __call__(self, prediction: torch.Tensor, target: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
        return pinball(prediction, target, mask, self.quantiles)


@LOSSES.register
class Poisson(Loss):
    """Poisson negative log-likelihood of the log mean."""

    name = "poisson"
    log_link = True

    def pointwise(self, point: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return point.exp() - target * point


@LOSSES.register
class Tweedie(Loss):
    """Tweedie deviance of the log mean, variance power ``tweedie_power`` in (1, 2)."""

    name = "tweedie"
    log_link = True

    def pointwise(self, point: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = self.tweedie_power
        return (-target * torch.exp(point * (1 - p)) / (1 - p)
                + torch.exp(point * (2 - p)) / (2 - p))


def pinball(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
            quantiles: tuple[float, ...]) -> torch.Tensor:
    levels = torch.tensor(quantiles, dtype=prediction.dtype, device=prediction.device)
    error = target[..., None] - prediction
    return _masked_mean(torch.maximum(levels * error, (levels - 1) * error), mask)


class MeanAndQuantiles(Loss):
    """Channel 0 is the mean, trained on a mean loss (``log_link`` when that loss models the log
    mean); channels 1.. are the quantiles, trained on the pinball loss. Both terms are on the
    level-scaled target, so neither dominates by units."""

    name = "mean_and_quantiles"

    def __init__(self, mean_loss: Loss, quantiles: tuple[float, ...]) -> None:
        super().__init__(quantiles)
        if mean_loss.gives != "mean":
            raise ValueError(f"loss '{mean_loss.name}' gives the median, not a mean")
        self.mean_loss = mean_loss
        self.log_link = mean_loss.log_link

    def __call__(self, prediction: torch.Tensor, target: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
        return (self.mean_loss(prediction[..., :1], target, mask)
                + pinball(prediction[..., 1:], target, mask, self.quantiles))


def make_loss(name: str, quantiles: tuple[float, ...] = (), tweedie_power: float = 1.5) -> Loss:
    """The registered loss ``name`` (an ``InputError`` listing the valid ones if unknown)."""
    return LOSSES.get(name)(quantiles, tweedie_power)
