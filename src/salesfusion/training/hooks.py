"""Listening to a training from outside the model: a tuning trial hears each epoch's
validation loss (to report it to Ray Tune, or to let an Optuna pruner stop a hopeless trial)
without the models knowing about tuning.

A listener is set for a block of code (``listen_to_epochs``) and reaches every ``train_module``
call inside it through a context variable, so ``fit`` keeps its signature. A listener stops a
training by raising ``StopTraining``; it leaves ``fit`` unchanged otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Any

import lightning
from lightning.pytorch.callbacks import Callback

from salesfusion.training.fit_progress import FitStep, fit_listener, set_for_block

EpochListener = Callable[[int, float], None]  # (1-based epoch, validation loss)
_LISTENER: ContextVar[EpochListener | None] = ContextVar("salesfusion_epoch_listener",
                                                          default=None)


class StopTraining(Exception):
    """Raised by a listener to end a training (a pruned trial)."""

    def __init__(self, epoch: int, reason: str) -> None:
        super().__init__(f"stopped at epoch {epoch}: {reason}")
        self.epoch = epoch


def listen_to_epochs(listener: EpochListener) -> AbstractContextManager[None]:
    return set_for_block(_LISTENER, listener)


def epoch_listener_callback(done: int) -> Callback | None:
    """The callback that tells the current listener (if any) each epoch's validation loss;
    ``done``: epochs already trained before this Lightning run (a resumed training)."""
    listener = _LISTENER.get()
    return None if listener is None else _EpochReport(listener, done)


class _EpochReport(Callback):
    def __init__(self, listener: EpochListener, done: int) -> None:
        self.listener, self.done = listener, done

    def on_validation_epoch_end(self, trainer: lightning.Trainer,
                                module: lightning.LightningModule) -> None:
        value = trainer.callback_metrics.get("val_loss")
        if trainer.sanity_checking or value is None:
            return
        self.listener(self.done + trainer.current_epoch + 1, float(value))


TRAINING = "training"  # the stage name a neural fit reports


def fit_progress_callback(done: int, epochs: int, may_stop_early: bool) -> Callback | None:
    """The callback that tells the current fit listener (``training.fit_progress``), if any, how
    far the training is, in epochs with the running epoch's fraction of batches done."""
    listener = fit_listener()
    return None if listener is None else _FitReport(listener, done, epochs, may_stop_early)


class _FitReport(Callback):
    def __init__(self, listener: Any, done: int, epochs: int, may_stop_early: bool) -> None:
        self.listener, self.done, self.epochs = listener, done, epochs
        self.may_stop_early = may_stop_early

    def on_train_batch_end(self, trainer: lightning.Trainer, module: lightning.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        batches = trainer.num_training_batches
        fraction = (batch_idx + 1) / batches if batches and batches != float("inf") else 0.0
        self.listener(FitStep(TRAINING, self.done + trainer.current_epoch + min(fraction, 1.0),
                              self.epochs, "epochs", self.may_stop_early))
