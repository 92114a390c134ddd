"""The multimodal neural forecaster (the estimator): a composition of registered components
chosen by its configuration (encoders -> fusion -> temporal backbone -> head).

Fitting builds the fitted inputs (``models.multimodal.fitting``: ``MultimodalInputs``), trains
the network on their windows, and keeps both as a ``MultimodalPredictor``, which does every
forecast, launch forecast, save and load. Windows whose targets fall in the last ``horizon``
periods are the validation part (early stopping, best weights, learning-rate schedule); every
other window trains with its targets cut at that boundary, so nothing is learnt from the
validation periods. Windows are scaled by a level known at their origin
(``training.windows``); a window with no history (a launch) by its market's launch level, the
mean demand of the training launches' first ``horizon`` periods (``launch_scale:
launch_level``), or by the market's running level at the origin (``market_level``).
``target_transform`` acts on the scaled values, inverted exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from salesfusion.data.panel import Panel
from salesfusion.data.splits import ValidationPeriods
from salesfusion.encoders.static import StaticVocabulary
from salesfusion.errors import InputError
from salesfusion.features.lags import WidePanel
from salesfusion.models.base import Forecaster, NotFittedError
from salesfusion.models.multimodal.config import MultimodalConfig
from salesfusion.models.multimodal.explain import ExplanationWindows, explanation_windows
from salesfusion.models.multimodal.fitting import fit_inputs
from salesfusion.models.multimodal.inputs import MultimodalInputs
from salesfusion.models.multimodal.launch_windows import launch_windows
from salesfusion.models.multimodal.predictor import MultimodalPredictor, build_network
from salesfusion.models.network import MultimodalNet
from salesfusion.models.registry import register
from salesfusion.training.batches import gathered_loader
from salesfusion.training.transforms import TargetTransform
from salesfusion.training.windows import Windows, window_samples


@register
class MultimodalForecaster(Forecaster):
    """Item content + history + covariates -> fusion -> temporal backbone -> head."""

    name = "multimodal"
    Config = MultimodalConfig
    supports_cold_start = True
    supports_launch = True

    # --- capabilities -------------------------------------------------------------------------
    @property
    def supports_quantiles(self) -> bool:
        return bool(self.config.quantiles)

    @property
    def explains_by_gradients(self) -> bool:
        return self._fitted

    @property
    def supports_new_items(self) -> bool:
        return self._fitted

    @property
    def supports_distributed_training(self) -> bool:
        return True

    @property
    def min_history(self) -> int:
        # One training origin, its target before the validation part, and that part.
        return self.config.horizon + 2

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"epochs": 2, "lookback": 8, "hidden": 16, "fusion_dim": 16, "batch_size": 64,
                "accelerator": "cpu"}

    # --- what the fitted model is made of -----------------------------------------------------
    @property
    def predictor(self) -> MultimodalPredictor:
        """The fitted network and the inputs it reads."""
        if not self._fitted:
            raise NotFittedError(f"model '{self.name}' is not fitted")
        return self._predictor

    @property
    def inputs(self) -> MultimodalInputs:
        return self.predictor.inputs

    @property
    def network(self) -> MultimodalNet:
        return self.predictor.net

    @property
    def covariate_names(self) -> list[str]:
        return list(self.inputs.covariate_names)

    @property
    def static_vocabulary(self) -> StaticVocabulary:
        return self.inputs.vocabulary

    def explanation_windows(self, panel: Panel, origins: np.ndarray) -> ExplanationWindows:
        """The windows of ``panel``'s series at period indices ``origins``, as the network reads
        them, with their batch tensors and channel names (``explain``)."""
        return explanation_windows(self.inputs, self.prepared(panel), origins)

    def launch_windows(self, grid: pl.DataFrame, history: Panel) -> tuple[WidePanel, Windows]:
        """One window per launched series of ``grid`` (``item_id, market, launch``)."""
        return launch_windows(self.inputs, grid, self.prepared(history))

    @contextmanager
    def items_described(self, items: pl.DataFrame, image_root: Path | None = None
                        ) -> Iterator[list[str]]:
        """Within the block, the model forecasts with the content of the items of ``items``
        that it was not fitted on (``MultimodalPredictor.with_items``); yields the modalities
        read from them. The fitted predictor is put back after the block, so the caller holds
        the model's lock for the block's duration."""
        fitted = self.predictor
        described, used = fitted.with_items(items, self.history, image_root or Path("."))
        self._predictor = described
        try:
            yield used
        finally:
            self._predictor = fitted

    # --- fit, forecasts, persistence ------------------------------------------------------------
    def _fit(self, panel: Panel) -> None:
        import lightning

        from salesfusion.training.lightning_module import ForecastModule
        from salesfusion.training.trainer import TrainingSettings, train_module

        c = self.config
        self._notes: list[str] = []
        lightning.seed_everything(c.seed, workers=True, verbose=False)
        inputs, content, wide, covariates = fit_inputs(panel, c, self.name, self._notes)
        # Samples are (series, origin) pairs; their windows are gathered batch by batch.
        samples = window_samples(wide, panel.freq, c.lookback, c.horizon,
                                 covariates=covariates, cold_level=inputs.cold_level(wide.keys))
        holdout = ValidationPeriods(wide.y.shape[1], c.horizon)
        validation = samples.subset(samples.origin == holdout.start - 1)
        train = samples.subset(samples.origin < holdout.start - 1).with_targets_until(
            holdout.start)
        train = train.subset(train.target_masks().any(axis=1))
        inputs.transform = TargetTransform.fit(c.target_transform, train.observed_targets())
        train = train.with_transform(inputs.transform.forward)
        validation = validation.with_transform(inputs.transform.forward)
        if len(train) > c.max_train_windows:
            chosen = np.random.default_rng(c.seed).choice(len(train), c.max_train_windows,
                                                          replace=False)
            train = train.subset(np.sort(chosen))
        if c.launch_weight > 1:
            # Launch windows are one per series among dozens of running ones: repeat them so
            # that the content pathway is trained for what launches need.
            launches = np.flatnonzero(~train.history_observed())
            train = train.subset(np.sort(np.concatenate(
                [np.arange(len(train)), np.repeat(launches, c.launch_weight - 1)])))
        if len(train) == 0:
            raise InputError(f"model '{self.name}': no training window has an observed target "
                             f"before the validation part (lookback {c.lookback}, horizon "
                             f"{c.horizon}, {wide.y.shape[1]} periods)")
        net = build_network(inputs, content)
        self._notes += net.notes
        has_validation = bool(validation.target_masks().any())
        tensors = inputs.series_inputs(wide)
        module = ForecastModule(net, c.loss, tuple(c.quantiles), c.lr, c.tweedie_power,
                                has_validation, point=c.point)
        outcome = train_module(
            module, gathered_loader(train, tensors, c.batch_size, True, c.seed),
            gathered_loader(validation, tensors, 4096, False, 0)
            if has_validation else None,
            TrainingSettings(epochs=c.epochs, patience=c.patience,
                             gradient_clip=c.gradient_clip, accelerator=c.accelerator,
                             checkpoint_dir=c.checkpoint_dir, progress=c.progress,
                             ray=self._ray_plan,
                             config={"model": self.name, **c.model_dump(mode="json", exclude={
                                 "epochs", "checkpoint_dir", "progress", "cache_dir"})}))
        net.eval()
        self._predictor = MultimodalPredictor(net, inputs)
        self._notes.append(outcome.describe())
        used = ", ".join(net.modalities) or "none"
        names = ", ".join(inputs.covariate_names) or "none"
        self._notes.append(f"inputs used: modalities {used}; covariates {names}")

    def _predict(self, horizon: int, history: Panel, series: pl.DataFrame) -> pl.DataFrame:
        return self._predictor.predict(horizon, history, series)

    def _predict_launch(self, grid: pl.DataFrame, history: Panel) -> pl.DataFrame:
        return self._predictor.predict_launch(grid, history)

    def _save_state(self, folder: Path) -> None:
        self._predictor.save(folder, self._notes)

    def _load_state(self, folder: Path) -> None:
        self._predictor, self._notes = MultimodalPredictor.load(folder, self.config, self.name)
