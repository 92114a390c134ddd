"""Listening to a training from outside the model: a tuning trial hears each epoch's
validation loss (to report it to Ray Tune, or to let an Optuna pruner stop a hopeless trial)
without the models knowing about tuning.

A listener is set for a block of code (``listen_to_epochs``) and reaches every ``train_module``
call inside it through a context variable, so ``fit`` keeps its signature. A listener stops a
training by raising ``StopTraining``; it leaves ``fit`` unchanged otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import lightning
from lightning.pytorch.callbacks import Callback

EpochListener = Callable[[int, float], None]  # (1-based epoch, validation loss)
_LISTENER: ContextVar[EpochListener | None] = ContextVar("salesfusion_epoch_listener",
                                                          default=None)


class StopTraining(Exception):
    """Raised by a listener to end a training (a pruned trial)."""

    def __init__(self, epoch: int, reason: str) -> None:
        super().__init__(f"stopped at epoch {epoch}: {reason}")
        self.epoch = epoch


@contextmanager
def listen_to_epochs(listener: EpochListener) -> Iterator[None]:
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


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
