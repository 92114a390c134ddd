"""The multimodal neural forecaster (the estimator): a composition of registered components
chosen by its configuration (encoders -> fusion -> temporal backbone -> head).

The pieces live where they belong: item content in ``encoders.inputs`` (the path ``salesfusion
encode`` shares), the network in ``models.network``, windows and batches in ``training``, the
training loop in ``training.trainer`` (shared by every neural model), the validation part in
``data.splits``. Windows whose targets fall in the last ``horizon`` periods are the validation
part (early stopping, best weights, learning-rate schedule); every other window trains with its
targets cut at that boundary, so nothing is learnt from the validation periods. Windows are
scaled by a level known at their origin (``training.windows``); a window with no history (a
launch) by its market's launch level, the mean demand of the training launches' first
``horizon`` periods (``launch_scale: launch_level``), or by the market's running level at the
origin (``market_level``). ``target_transform`` acts on the scaled values, inverted exactly.

Forecasts from the latest data (``predict``) are in ``models.multimodal_predict``, launch
forecasts (``predict_launch``) in ``models.multimodal_launch``, saving and loading in
``models.multimodal_state``.

Encoders run frozen, through the embedding cache; their vectors are stored with the weights, so
a saved model predicts without them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from salesfusion.data.launches import launch_levels
from salesfusion.data.panel import Panel
from salesfusion.data.splits import ValidationPeriods
from salesfusion.encoders.cache import EmbeddingCache
from salesfusion.encoders.inputs import Catalogue, build_encoder, encode_catalogue
from salesfusion.encoders.static import StaticVocabulary
from salesfusion.errors import InputError
from salesfusion.features.covariates import Covariates, covariate_cube, fit_exogenous_scale
from salesfusion.features.lags import WidePanel, to_wide
from salesfusion.models.base import Forecaster
from salesfusion.models.multimodal_config import MultimodalConfig
from salesfusion.models.multimodal_explain import ExplanationPath
from salesfusion.models.multimodal_launch import LaunchPath
from salesfusion.models.multimodal_markets import MarketAttributesPath
from salesfusion.models.multimodal_new_items import NewItemsPath
from salesfusion.models.multimodal_predict import ForecastPath
from salesfusion.models.multimodal_state import PersistencePath
from salesfusion.models.network import MultimodalNet
from salesfusion.models.registry import register
from salesfusion.training.batches import gathered_loader, window_tensors
from salesfusion.training.transforms import TargetTransform
from salesfusion.training.windows import (
    Windows,
    extended_periods,
    feature_widths,
    window_samples,
)

DEFAULT_CACHE = Path.home() / ".cache" / "salesfusion" / "embeddings"


@register
class MultimodalForecaster(LaunchPath, MarketAttributesPath, ExplanationPath, NewItemsPath,
                           ForecastPath, PersistencePath, Forecaster):
    """Item content + history + covariates -> fusion -> temporal backbone -> head."""

    name = "multimodal"
    Config = MultimodalConfig
    supports_cold_start = True
    supports_launch = True

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

    # --- content ------------------------------------------------------------------------------
    def _item_content(self, panel: Panel) -> dict[str, torch.Tensor]:
        config = self.config
        catalogue = Catalogue.from_panel(panel)
        self._item_rows = {item: i for i, item in enumerate(catalogue.ids)}
        cache = EmbeddingCache(config.cache_dir or DEFAULT_CACHE)
        content: dict[str, torch.Tensor] = {}
        wanted = [m for m in config.modalities if m != "static"]
        for modality in wanted:
            if not catalogue.has(modality):
                self._notes.append(f"modality '{modality}' configured but the items table has "
                                   f"none: not used")
                continue
            encoder = (build_encoder(catalogue, "text", config.text_encoder)
                       if modality == "text" else self._image_encoder(catalogue))
            encoded = encode_catalogue(catalogue, modality, encoder, cache=cache)
            if encoded.masked:
                first = next(iter(encoded.problems.items()), None)
                example = (f" (first: {catalogue.ids[first[0]]}: {first[1]})" if first
                           else "")
                self._notes.append(f"{encoded.masked} item {modality}(s) missing or "
                                   f"unreadable: masked{example}")
            content[f"{modality}_values"] = torch.from_numpy(encoded.vectors)
            content[f"{modality}_present"] = torch.from_numpy(encoded.mask)
            if encoded.token_mask is not None:
                content[f"{modality}_tokens"] = torch.from_numpy(encoded.token_mask)
        self._vocabulary = StaticVocabulary([], [])
        if "static" in config.modalities:
            if catalogue.has("static"):
                self._vocabulary = StaticVocabulary(catalogue.categorical,
                                                    catalogue.numeric).fit(catalogue.items)
                codes, numbers = self._vocabulary.transform(catalogue.items)
                content["static_codes"] = torch.from_numpy(codes)
                content["static_numbers"] = torch.from_numpy(numbers)
            else:
                self._notes.append("modality 'static' configured but the items table declares "
                                   "no attributes: not used")
        return content

    def _image_encoder(self, catalogue: Catalogue) -> Any:
        """The configured image encoder; without pretrained weights here, its fallback (and a
        note saying so), else the seeded random initialisation (also noted)."""
        config = self.config
        extra = {"weights": config.image_weights} if config.image_weights else {}
        encoder = build_encoder(catalogue, "image", config.image_encoder, **extra)
        if getattr(encoder, "pretrained", True):
            return encoder
        if config.image_encoder_fallback:
            self._notes.append(f"no pretrained weights for {config.image_encoder} on this "
                               f"machine: using {config.image_encoder_fallback} instead (set "
                               f"image_weights)")
            return build_encoder(catalogue, "image", config.image_encoder_fallback)
        self._notes.append(f"image encoder {config.image_encoder} has no pretrained weights "
                           f"here: randomly initialised (seeded)")
        return encoder

    # --- tensors ------------------------------------------------------------------------------
    def _tensors(self, wide: WidePanel, windows: Windows) -> dict[str, torch.Tensor]:
        return self._series_inputs(wide)(windows)

    def _series_inputs(self, wide: WidePanel) -> Callable[[Windows], dict[str, torch.Tensor]]:
        """The tensors of any windows of ``wide``, with each series' content row (-1: none),
        market index (0: unseen) and market codes looked up once, not per batch."""
        item_rows = _lookup(wide.keys["item_id"], self._item_rows, -1)
        market_index = _lookup(wide.keys["market"], self._markets, 0)
        codes = (self._market_code_matrix(wide) if self._market_vocabulary is not None
                 else None)

        def tensors(windows: Windows) -> dict[str, torch.Tensor]:
            batch = window_tensors(windows, item_rows, market_index)
            if codes is not None:
                batch["market_codes"] = torch.from_numpy(codes[windows.series])
            return batch

        return tensors

    def _covariates(self, panel: Panel, wide: WidePanel) -> Covariates | None:
        """The covariate cube over the panel's periods and the horizon after them."""
        if not self.config.covariates:
            return None
        return covariate_cube(panel, wide.keys, extended_periods(wide, panel.freq,
                                                                 self.config.horizon),
                              self._covariate_scale)

    def _check_covariates(self, cube: Covariates | None) -> Covariates | None:
        """The cube, if it has the channels the model was trained on (else an error naming
        the ones the data no longer has)."""
        names = cube.names if cube is not None else []
        if names != self._covariate_names:
            missing = sorted(set(self._covariate_names) - set(names)) or names
            raise InputError(f"model '{self.name}' was trained with the covariates "
                             f"{self._covariate_names}; the data given differs "
                             f"({', '.join(missing)}): give the same events/exogenous tables")
        return cube

    def _build_net(self, content: dict[str, torch.Tensor]) -> MultimodalNet:
        c = self.config
        net = MultimodalNet(
            content=content, static_cardinalities=self._vocabulary.cardinalities(),
            n_numeric=len(self._vocabulary.numeric), n_markets=len(self._markets),
            history_dim=self._widths[0], future_dim=self._widths[1], horizon=c.horizon,
            fusion=c.fusion, fallback_fusion=c.fallback_fusion, fusion_dim=c.fusion_dim,
            backbone=c.backbone, head=_head(c), hidden=c.hidden,
            layers=c.layers, dropout=c.dropout, quantiles=tuple(c.quantiles),
            cross_market=c.cross_market,
            market_cardinalities=tuple(self._market_vocabulary.cardinalities())
            if self._market_vocabulary is not None else (), lookback=c.lookback)
        return net

    # --- fit ----------------------------------------------------------------------------------
    def _fit(self, panel: Panel) -> None:
        import lightning

        from salesfusion.training.lightning_module import ForecastModule
        from salesfusion.training.trainer import TrainingSettings, train_module

        c = self.config
        self._notes: list[str] = []
        lightning.seed_everything(c.seed, workers=True, verbose=False)
        self._markets = {m: i + 1 for i, m in enumerate(sorted(panel.data["market"].unique()))}
        self._fit_market_attributes(panel)
        content = self._item_content(panel)
        wide = to_wide(panel)
        self._covariate_scale = fit_exogenous_scale(panel)
        covariates = self._covariates(panel, wide)
        self._covariate_names = covariates.names if covariates is not None else []
        self._widths = feature_widths(covariates)
        self._launch_levels = (launch_levels(panel, c.horizon)
                               if c.launch_scale == "launch_level" else None)
        # Samples are (series, origin) pairs; their windows are gathered batch by batch.
        samples = window_samples(wide, panel.freq, c.lookback, c.horizon,
                                 covariates=covariates, cold_level=self._cold_level(wide.keys))
        holdout = ValidationPeriods(wide.y.shape[1], c.horizon)
        validation = samples.subset(samples.origin == holdout.start - 1)
        train = samples.subset(samples.origin < holdout.start - 1).with_targets_until(
            holdout.start)
        train = train.subset(train.target_masks().any(axis=1))
        self._transform = TargetTransform.fit(c.target_transform, train.observed_targets())
        train = train.with_transform(self._transform.forward)
        validation = validation.with_transform(self._transform.forward)
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
        self._net = self._build_net(content)
        self._notes += self._net.notes
        has_validation = bool(validation.target_masks().any())
        tensors = self._series_inputs(wide)

        module = ForecastModule(self._net, c.loss, tuple(c.quantiles), c.lr, c.tweedie_power,
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
        self._net.eval()
        self._notes.append(outcome.describe())
        self._notes.append(self._inputs_used())

    def _inputs_used(self) -> str:
        used = ", ".join(self._net.modalities) or "none"
        covariates = ", ".join(self._covariate_names) or "none"
        return f"inputs used: modalities {used}; covariates {covariates}"


def _lookup(keys: pl.Series, rows: dict[str, int], missing: int) -> np.ndarray:
    """``rows[key]`` of every key (``missing`` for a key not in ``rows``), vectorised."""
    if not rows:
        return np.full(len(keys), missing, dtype=np.int64)
    return keys.cast(pl.String).replace_strict(rows, default=missing,
                                               return_dtype=pl.Int64).to_numpy()


def _head(config: MultimodalConfig) -> str:
    """The registered head: quantiles beside a mean channel when the point forecast is the mean,
    quantiles alone when it is their median, one value per step without quantiles."""
    if not config.quantiles:
        return "point"
    return "mean_quantile" if config.point == "mean" else "quantile"
