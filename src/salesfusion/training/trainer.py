"""One Lightning training loop for every neural model: early stopping and learning-rate schedule
on the validation part only, optional resume from a checkpoint folder, best weights restored.

The best validation weights are copied in memory by a callback (and saved in its checkpoint
state for a resume), so the best model is restored without reading a file back; a resume reads
Lightning's ``last.ckpt`` with ``weights_only=True``: the package never unpickles.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint


@dataclass(frozen=True)
class TrainingSettings:
    epochs: int
    patience: int
    gradient_clip: float
    accelerator: str = "auto"  # auto: a GPU when one is present, else the CPU
    checkpoint_dir: str | None = None
    progress: bool = False


@dataclass(frozen=True)
class TrainingOutcome:
    epochs_run: int
    best_epoch: int | None  # 1-based; None without a validation part
    best_val_loss: float | None
    resumed: bool

    def describe(self) -> str:
        text = f"trained {self.epochs_run} epoch(s)"
        if self.best_val_loss is not None:
            text += (f", best validation loss {self.best_val_loss:.4g} at epoch "
                     f"{self.best_epoch}")
        else:
            text += " (no validation part: the last epoch's weights are kept)"
        return text + (" (resumed from a checkpoint)" if self.resumed else "")


class BestWeights(Callback):
    """Keeps a copy of the weights with the lowest validation loss."""

    def __init__(self) -> None:
        self.best = math.inf
        self.epoch: int | None = None
        self.weights: dict[str, torch.Tensor] | None = None

    def on_validation_epoch_end(self, trainer: lightning.Trainer,
                                module: lightning.LightningModule) -> None:
        value = trainer.callback_metrics.get("val_loss")
        if trainer.sanity_checking or value is None or not float(value) < self.best:
            return
        self.best, self.epoch = float(value), trainer.current_epoch + 1
        self.weights = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "epoch": self.epoch, "weights": self.weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.epoch, self.weights = state["best"], state["epoch"], state["weights"]


def train_module(module: lightning.LightningModule, train_loader: Any, val_loader: Any | None,
                 settings: TrainingSettings) -> TrainingOutcome:
    """Fit ``module``; with a ``val_loader``, early stopping on it and its best weights kept."""
    if settings.accelerator != "cpu":
        # Deterministic cuBLAS needs a workspace setting before the first CUDA call.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    best = BestWeights()
    callbacks: list[Callback] = [best]
    if val_loader is not None:
        callbacks.append(EarlyStopping("val_loss", patience=settings.patience))
    with tempfile.TemporaryDirectory() as scratch:
        resume = None
        if settings.checkpoint_dir:
            folder = Path(settings.checkpoint_dir)
            callbacks.append(ModelCheckpoint(dirpath=folder, save_top_k=0, save_last=True))
            resume = folder / "last.ckpt" if (folder / "last.ckpt").is_file() else None
        with quiet_lightning():
            trainer = lightning.Trainer(
                max_epochs=settings.epochs, accelerator=settings.accelerator, devices=1,
                logger=False, callbacks=callbacks, gradient_clip_val=settings.gradient_clip,
                deterministic=True, enable_progress_bar=settings.progress,
                enable_model_summary=False, num_sanity_val_steps=0,
                enable_checkpointing=bool(settings.checkpoint_dir), default_root_dir=scratch,
                limit_val_batches=1.0 if val_loader is not None else 0)
            trainer.fit(module, train_loader, val_loader,
                        ckpt_path=str(resume) if resume else None, weights_only=True)
    if best.weights is not None:
        module.load_state_dict(best.weights)
    module.cpu()
    return TrainingOutcome(epochs_run=trainer.current_epoch, best_epoch=best.epoch,
                           best_val_loss=None if best.weights is None else best.best,
                           resumed=resume is not None)


class quiet_lightning:
    """Lightning logs hints (no GPU, few workers) that mean nothing on a CPU-only machine."""

    loggers = ("lightning", "lightning.pytorch", "lightning.fabric")

    def __enter__(self) -> None:
        self._levels = [logging.getLogger(n).level for n in self.loggers]
        for name in self.loggers:
            logging.getLogger(name).setLevel(logging.ERROR)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.filterwarnings("ignore", module="lightning")

    def __exit__(self, *exc: object) -> None:
        self._warnings.__exit__(*exc)
        for name, level in zip(self.loggers, self._levels, strict=True):
            logging.getLogger(name).setLevel(level)
