"""One Lightning training loop for every neural model: early stopping and learning-rate schedule
on the validation part only, optional exact resume from a checkpoint folder, best weights
restored.

The best validation weights are copied in memory by a callback, so the best model is restored
without reading a file back. With a ``checkpoint_dir`` the whole training state is saved after
every epoch and a killed run resumes from it to the result an uninterrupted run gives: the
weights, optimiser, learning-rate schedule, early stopping, best weights and the states of the
random streams (global generators, the training loader's shuffle generator) are restored. A
checkpoint changes nothing else: the streams are those of a training without one, seeded once by
the model, so a run with a folder gives the forecasts of a run without. The folder is checked first
(``training.checkpoints``): the package never unpickles and never gives Lightning a checkpoint
path to restore, so no path recorded inside a checkpoint is ever followed.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import lightning
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping

from salesfusion.training.callbacks import BestWeights, EpochCheckpoint
from salesfusion.training.checkpoints import CheckpointFolder, data_fingerprint
from salesfusion.training.fit_progress import stage_finished
from salesfusion.training.hooks import TRAINING, epoch_listener_callback, fit_progress_callback
from salesfusion.training.random_state import restore_random

if TYPE_CHECKING:
    from salesfusion.training.ray_train import RayPlan


@dataclass(frozen=True)
class TrainingSettings:
    epochs: int
    patience: int
    gradient_clip: float
    accelerator: str = "auto"  # auto: a GPU when one is present, else the CPU
    checkpoint_dir: str | None = None
    progress: bool = False
    # What decides the result besides the data (the model's configuration, seed included, without
    # epochs):
    # a checkpoint folder is only resumed by the configuration that wrote it.
    config: Mapping[str, Any] = field(default_factory=dict)
    # Where to train: None here, a plan on Ray Train (DDP, ``training.ray_train``).
    ray: RayPlan | None = None

    def resume_key(self) -> dict[str, Any]:
        """Everything of this run a checkpoint must match; the number of epochs may grow."""
        return {**self.config, "patience": self.patience, "gradient_clip": self.gradient_clip,
                "accelerator": self.accelerator}


@dataclass(frozen=True)
class TrainingOutcome:
    epochs_run: int
    best_epoch: int | None  # 1-based; None without a validation part
    best_val_loss: float | None
    resumed: bool
    ray_workers: int | None = None  # the DDP world size on Ray (``training.ray_train``)

    def describe(self) -> str:
        text = f"trained {self.epochs_run} epoch(s)"
        if self.best_val_loss is not None:
            text += (f", best validation loss {self.best_val_loss:.4g} at epoch "
                     f"{self.best_epoch}")
        else:
            text += " (no validation part: the last epoch's weights are kept)"
        if self.ray_workers is not None:
            text += f" (on Ray: {self.ray_workers} worker(s), DDP)"
        return text + (" (resumed from a checkpoint)" if self.resumed else "")


def train_module(module: lightning.LightningModule, train_loader: Any, val_loader: Any | None,
                 settings: TrainingSettings) -> TrainingOutcome:
    """Fit ``module``; with a ``val_loader``, early stopping on it and its best weights kept.
    With ``settings.ray`` the training runs with DDP on Ray Train."""
    if settings.ray is not None:
        from salesfusion.training import ray_train  # imports Ray only when asked for

        return ray_train.train_on_ray(module, train_loader, val_loader, settings, settings.ray)
    if settings.accelerator != "cpu":
        # Deterministic cuBLAS needs a workspace setting before the first CUDA call.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    best = BestWeights()
    early = (EarlyStopping("val_loss", patience=settings.patience)
             if val_loader is not None else None)
    folder = state = None
    if settings.checkpoint_dir:
        loaders = [train_loader] + ([val_loader] if val_loader is not None else [])
        folder = CheckpointFolder(settings.checkpoint_dir, settings.resume_key(),
                                  data_fingerprint(loaders, dict(module.named_buffers())))
        state = folder.load()
        if state is None:
            folder.prepare()
    # The training loader's shuffle generator (``batch_loader``'s): a checkpoint keeps its state.
    generator = getattr(train_loader, "generator", None)
    done, stopped = 0, False
    if state is not None:
        done, stopped = _restore(state, folder, module, best, early, settings.epochs, generator)
    epochs_run = done
    if not stopped and done < settings.epochs:
        best.done = done
        callbacks: list[Callback] = [best]
        if early is not None:
            callbacks.append(early)
        if folder is not None:
            callbacks.append(EpochCheckpoint(folder, done, best, early, state, generator))
        if (report := epoch_listener_callback(done)) is not None:
            callbacks.append(report)
        if (shown := fit_progress_callback(done, settings.epochs, early is not None)) is not None:
            callbacks.append(shown)
        epochs_run += _fit(module, train_loader, val_loader, settings, callbacks, done)
    stage_finished(TRAINING, epochs_run, settings.epochs, "epochs")
    if best.weights is not None:
        module.load_state_dict(best.weights)
    module.cpu()
    return TrainingOutcome(epochs_run=epochs_run, best_epoch=best.epoch,
                           best_val_loss=None if best.weights is None else best.best,
                           resumed=state is not None)


def _restore(state: dict[str, Any], folder: CheckpointFolder, module: lightning.LightningModule,
             best: BestWeights, early: EarlyStopping | None, epochs: int,
             generator: torch.Generator | None) -> tuple[int, bool]:
    """Load a checked state into the module, callbacks and random streams (put back again when
    fitting starts, see ``EpochCheckpoint``): (epochs done, stopped early)."""
    done = state["epoch"]
    if done > epochs:
        raise folder.refuse(f"holds {done} trained epochs, more than the {epochs} asked for: "
                            f"raise epochs or use a new folder")
    if (state["early_stopping"] is None) != (early is None):
        raise folder.refuse("written by a training with a different validation part")
    try:
        module.load_state_dict(state["module"])
        best.load_state_dict(state["best_weights"])
        if early is not None:
            early.load_state_dict(state["early_stopping"])
        restore_random(state["random"], generator)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else repr(error)
        raise folder.refuse(f"its training state does not fit this model ({reason})") from None
    return done, bool(state["stopped_early"])


def _fit(module: lightning.LightningModule, train_loader: Any, val_loader: Any | None,
         settings: TrainingSettings, callbacks: list[Callback], done: int) -> int:
    """Run the epochs left after ``done``; the number run."""
    with tempfile.TemporaryDirectory() as scratch, quiet_lightning():
        trainer = lightning.Trainer(
            max_epochs=settings.epochs - done, accelerator=settings.accelerator, devices=1,
            logger=False, callbacks=callbacks, gradient_clip_val=settings.gradient_clip,
            deterministic=True, enable_progress_bar=settings.progress,
            enable_model_summary=False, num_sanity_val_steps=0, enable_checkpointing=False,
            default_root_dir=scratch, limit_val_batches=1.0 if val_loader is not None else 0)
        trainer.fit(module, train_loader, val_loader)
    return trainer.current_epoch


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
