"""The Lightning callbacks of ``training.trainer``: best weights in memory, and the checkpoint of
every epoch that makes a resume exact.

Epoch numbers here are those of the whole training: a resumed run starts its Lightning trainer
at epoch 0 with ``done`` epochs already behind it.
"""

from __future__ import annotations

import math
from typing import Any

import lightning
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping

from salesfusion.training.checkpoints import CheckpointFolder
from salesfusion.training.random_state import capture_random, restore_random


class BestWeights(Callback):
    """Keeps a copy of the weights with the lowest validation loss."""

    def __init__(self, done: int = 0) -> None:
        self.done = done
        self.best = math.inf
        self.epoch: int | None = None
        self.weights: dict[str, torch.Tensor] | None = None

    def on_validation_epoch_end(self, trainer: lightning.Trainer,
                                module: lightning.LightningModule) -> None:
        value = trainer.callback_metrics.get("val_loss")
        if trainer.sanity_checking or value is None or not float(value) < self.best:
            return
        self.best, self.epoch = float(value), self.done + trainer.current_epoch + 1
        self.weights = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "epoch": self.epoch, "weights": self.weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.epoch, self.weights = state["best"], state["epoch"], state["weights"]


class EpochCheckpoint(Callback):
    """Saves the whole training state when an epoch starts (every step of the previous epoch is
    then done, the learning-rate schedule included, and nothing of the new one drawn: Lightning
    iterates the training loader, drawing its order, after this hook) and when training ends.
    A loaded state's random streams are put back when fitting starts, before Lightning first
    iterates the loader; its optimisers and schedulers once Lightning has built them."""

    def __init__(self, folder: CheckpointFolder, done: int, best: BestWeights,
                 early: EarlyStopping | None, state: dict[str, Any] | None,
                 generator: torch.Generator | None) -> None:
        self.folder, self.done = folder, done
        self.best, self.early, self.state = best, early, state
        self.generator = generator

    def on_fit_start(self, trainer: lightning.Trainer, module: lightning.LightningModule) -> None:
        if self.state is not None:
            restore_random(self.state["random"], self.generator)  # checked before training

    def on_train_start(self, trainer: lightning.Trainer,
                       module: lightning.LightningModule) -> None:
        if self.state is None:
            return
        optimisers, schedulers = self.state["optimizers"], self.state["schedulers"]
        if len(optimisers) != len(trainer.optimizers) or len(schedulers) != len(
                trainer.lr_scheduler_configs):
            raise self.folder.refuse("its optimiser state does not fit this model")
        try:
            for optimiser, saved in zip(trainer.optimizers, optimisers, strict=True):
                optimiser.load_state_dict(saved)
            for config, saved in zip(trainer.lr_scheduler_configs, schedulers, strict=True):
                config.scheduler.load_state_dict(saved)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise self.folder.refuse(f"its optimiser state does not fit this model "
                                     f"({str(error)[:200]})") from None
        self.state = None

    def on_train_epoch_start(self, trainer: lightning.Trainer,
                             module: lightning.LightningModule) -> None:
        if trainer.current_epoch > 0:
            self._save(trainer, module, stopped_early=False)

    def on_train_end(self, trainer: lightning.Trainer, module: lightning.LightningModule) -> None:
        self._save(trainer, module, stopped_early=trainer.should_stop)

    def _save(self, trainer: lightning.Trainer, module: lightning.LightningModule,
              stopped_early: bool) -> None:
        early = self.early.state_dict() if self.early is not None else None
        if early is not None and stopped_early:  # Lightning counts the epochs of this run only
            early["stopped_epoch"] = self.done + self.early.stopped_epoch
        self.folder.save({
            "epoch": self.done + trainer.current_epoch, "stopped_early": bool(stopped_early),
            "module": {k: v.detach().cpu() for k, v in module.state_dict().items()},
            "optimizers": [o.state_dict() for o in trainer.optimizers],
            "schedulers": [c.scheduler.state_dict() for c in trainer.lr_scheduler_configs],
            "best_weights": self.best.state_dict(),
            "early_stopping": early, "random": capture_random(self.generator)})
