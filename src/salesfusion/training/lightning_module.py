"""Lightning wrapper: loss, optimiser and learning-rate schedule around a network that takes a
batch mapping (``models.network.NET_INPUTS``) and returns (B, horizon, K)."""

from __future__ import annotations

import lightning
import torch
from torch import nn

from salesfusion.training.losses import Loss, MeanAndQuantiles, make_loss


def forecast_loss(loss: str, quantiles: tuple[float, ...], tweedie_power: float,
                  point: str = "median") -> Loss:
    """What a network is trained on: ``loss`` for a point head; with quantiles, the pinball loss
    (the median is the 0.5 quantile) or, when the point forecast is the mean, ``loss`` on the
    mean channel plus the pinball loss on the quantile channels."""
    if not quantiles:
        return make_loss(loss, (), tweedie_power)
    if point == "mean":
        return MeanAndQuantiles(make_loss(loss, (), tweedie_power), quantiles)
    return make_loss("pinball", quantiles, tweedie_power)


class ForecastModule(lightning.LightningModule):
    def __init__(self, net: nn.Module, loss: str, quantiles: tuple[float, ...], lr: float,
                 tweedie_power: float = 1.5, schedule_on_validation: bool = True,
                 point: str = "median") -> None:
        super().__init__()
        self.net = net
        # Early stopping watches this loss too: the validation metric follows the point forecast.
        self.loss_fn = forecast_loss(loss, quantiles, tweedie_power, point)
        self.lr = lr
        self.schedule_on_validation = schedule_on_validation

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(batch)

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        loss = self.loss_fn(self(batch), batch["target"], batch["target_mask"])
        self.log(f"{stage}_loss", loss, prog_bar=False, on_epoch=True, on_step=False,
                 batch_size=len(batch["target"]))
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], _index: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], _index: int) -> torch.Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self) -> dict:
        optimiser = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=1e-4)
        if not self.schedule_on_validation:
            return {"optimizer": optimiser}
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.5,
                                                               patience=3)
        return {"optimizer": optimiser,
                "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}
