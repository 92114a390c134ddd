"""The multimodal neural forecaster: a composition of registered components chosen by its
parameters (encoders -> fusion -> temporal backbone -> head), trained with Lightning.

Training uses the chronological split of the data it is given: windows whose targets fall in the
last ``horizon`` periods are the validation part (early stopping, checkpointing, learning-rate
schedule), every other window trains with its targets cut at that boundary, so nothing is learnt
from the validation periods. Windows are scaled by a level known at their origin (see
``training.windows``); ``target_transform`` (log1p or Box-Cox with lambda fitted on the
training targets, ``training.transforms``) transforms the scaled values, inverted exactly.
Encoders run frozen, through the embedding cache; their vectors are stored with the weights, so
a saved model predicts without them. Dynamic covariates (events with their decay
transforms, declared exogenous columns; ``features.covariates``) enter the history steps, and
the future-known ones the forecast steps, unless ``covariates`` is off.
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
import torch
from safetensors.torch import load_file, save_file

from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.encoders.cache import EmbeddingCache
from salesfusion.encoders.registry import create_encoder
from salesfusion.encoders.static import StaticVocabulary
from salesfusion.errors import InputError
from salesfusion.features.calendar import periods_after
from salesfusion.features.covariates import Covariates, covariate_cube, fit_exogenous_scale
from salesfusion.features.lags import WidePanel, to_wide
from salesfusion.models.base import Forecaster
from salesfusion.models.network import MultimodalNet
from salesfusion.models.registry import register
from salesfusion.training.losses import LOG_LINK
from salesfusion.training.transforms import TargetTransform
from salesfusion.training.windows import Windows, extended_periods, feature_widths, make_windows

DEFAULT_CACHE = Path.home() / ".cache" / "salesfusion" / "embeddings"


@register
class MultimodalForecaster(Forecaster):
    name = "multimodal"
    supports_quantiles = True
    supports_cold_start = True
    default_params: ClassVar[dict[str, Any]] = {
        "modalities": ["text", "image", "static"],  # drop one to ablate it
        "covariates": True,  # events and exogenous columns as dynamic inputs (False: ablate)
        "text_encoder": "tfidf",
        "image_encoder": "color_texture",
        "image_encoder_fallback": None,  # used when image_encoder has no pretrained weights here
        "image_weights": None,  # a local weights file for the image encoder (ResNet)
        "fusion": "concat",
        "fusion_dim": 32,
        "backbone": "gru",
        "hidden": 32,
        "layers": 1,
        "dropout": 0.1,
        "lookback": 16,
        "horizon": 4,
        "quantiles": [0.1, 0.5, 0.9],  # empty: point head trained on `loss`
        "loss": "mae",
        "tweedie_power": 1.5,
        "target_transform": "none",  # none | log1p | boxcox (lambda fitted on training targets)
        "epochs": 30,
        "patience": 5,
        "batch_size": 256,
        "lr": 0.003,
        "gradient_clip": 1.0,
        "max_train_windows": 100_000,
        "seed": 0,
        "cache_dir": None,
        "checkpoint_dir": None,  # set it to resume a killed training from its last checkpoint
        "progress": False,
    }

    # --- content ------------------------------------------------------------------------------
    def _item_content(self, panel: Panel) -> dict[str, torch.Tensor]:
        params = self.params
        items = panel.items if panel.items is not None else panel.data.select("item_id").unique()
        items = items.unique("item_id", keep="first", maintain_order=True)
        self._item_rows = {item: i for i, item in enumerate(items["item_id"].to_list())}
        cache = EmbeddingCache(params["cache_dir"] or DEFAULT_CACHE)
        content: dict[str, torch.Tensor] = {}
        self._notes: list[str] = []
        modalities = set(params["modalities"])
        text_roles = [r for r in panel.static_text if r in items.columns]
        if "text" in modalities and text_roles:
            texts = items.select(pl.concat_str([pl.col(r) for r in text_roles], separator=". ",
                                               ignore_nulls=True)).to_series().to_list()
            encoder = create_encoder(params["text_encoder"])
            if encoder.needs_fit:
                encoder.fit(texts)
            encoded = encoder.encode(texts, cache=cache)
            content["text_values"] = torch.from_numpy(encoded.vectors)
            content["text_present"] = torch.from_numpy(encoded.mask)
            if encoded.token_mask is not None:
                content["text_tokens"] = torch.from_numpy(encoded.token_mask)
        if "image" in modalities and "image" in items.columns:
            encoder = self._image_encoder(panel)
            if getattr(encoder, "fits_on_pairs", False):
                encoder.fit(list(zip(items["image"].to_list(), items[text_roles[0]].to_list(),
                                     strict=True)) if text_roles else [])
            elif encoder.needs_fit:
                encoder.fit(items["image"].to_list())
            encoded = encoder.encode(items["image"].to_list(), cache=cache)
            if encoded.masked:
                self._notes.append(f"{encoded.masked} item image(s) missing or unreadable: "
                                   f"masked")
            content["image_values"] = torch.from_numpy(encoded.vectors)
            content["image_present"] = torch.from_numpy(encoded.mask)
        if "static" in modalities and (panel.static_categorical or panel.static_numeric):
            self._vocabulary = StaticVocabulary(panel.static_categorical,
                                                panel.static_numeric).fit(items)
            codes, numbers = self._vocabulary.transform(items)
            content["static_codes"] = torch.from_numpy(codes)
            content["static_numbers"] = torch.from_numpy(numbers)
        else:
            self._vocabulary = StaticVocabulary([], [])
        return content

    def _image_encoder(self, panel: Panel) -> Any:
        """The configured image encoder; without pretrained weights here, its fallback (and a
        note saying so), else the seeded random initialisation (also noted)."""
        params = self.params
        root = panel.image_root or "."
        extra = {"weights": params["image_weights"]} if params["image_weights"] else {}
        encoder = create_encoder(params["image_encoder"], image_root=root, **extra)
        if getattr(encoder, "pretrained", True):
            return encoder
        fallback = params["image_encoder_fallback"]
        if fallback:
            self._notes.append(f"no pretrained weights for {params['image_encoder']} on this "
                               f"machine: using {fallback} instead (set image_weights)")
            return create_encoder(fallback, image_root=root)
        self._notes.append(f"image encoder {params['image_encoder']} has no pretrained weights "
                           f"here: randomly initialised (seeded)")
        return encoder

    # --- tensors ------------------------------------------------------------------------------
    def _tensors(self, wide: WidePanel, windows: Windows) -> dict[str, torch.Tensor]:
        item_rows = np.array([self._item_rows.get(i, -1) for i in wide.keys["item_id"]])
        market_index = np.array([self._markets.get(m, 0) for m in wide.keys["market"]])
        return {
            "history": torch.from_numpy(windows.history),
            "history_mask": torch.from_numpy(windows.history_mask),
            "items": torch.from_numpy(item_rows[windows.series]).long(),
            "markets": torch.from_numpy(market_index[windows.series]).long(),
            "log_level": torch.from_numpy(np.log(windows.level)).float(),
            "target": torch.from_numpy(windows.target),
            "target_mask": torch.from_numpy(windows.target_mask),
            "future": torch.from_numpy(windows.future),
        }

    def _covariates(self, panel: Panel, wide: WidePanel) -> Covariates | None:
        """The covariate cube over the panel's periods and the horizon after them."""
        if not self.params["covariates"]:
            return None
        return covariate_cube(panel, wide.keys, extended_periods(wide, panel.freq,
                                                                 int(self.params["horizon"])),
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
        p = self.params
        return MultimodalNet(
            content=content, static_cardinalities=self._vocabulary.cardinalities(),
            n_numeric=len(self._vocabulary.numeric), n_markets=len(self._markets),
            history_dim=self._widths[0], future_dim=self._widths[1],
            horizon=int(p["horizon"]), fusion=p["fusion"],
            fusion_dim=int(p["fusion_dim"]), backbone=p["backbone"], hidden=int(p["hidden"]),
            layers=int(p["layers"]), dropout=float(p["dropout"]),
            quantiles=tuple(float(q) for q in p["quantiles"]))

    # --- fit / predict ------------------------------------------------------------------------
    def _fit(self, panel: Panel) -> None:
        import lightning
        from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

        from salesfusion.training.lightning_module import ForecastModule

        p = self.params
        if p["quantiles"] and 0.5 not in [float(q) for q in p["quantiles"]]:
            raise InputError("multimodal quantiles must include 0.5 (the point forecast)")
        lightning.seed_everything(int(p["seed"]), workers=True, verbose=False)
        self._markets = {m: i + 1 for i, m in enumerate(sorted(panel.data["market"].unique()))}
        content = self._item_content(panel)
        wide = to_wide(panel)
        horizon = int(p["horizon"])
        self._covariate_scale = fit_exogenous_scale(panel)
        covariates = self._covariates(panel, wide)
        self._covariate_names = covariates.names if covariates is not None else []
        self._widths = feature_widths(covariates)
        windows = make_windows(wide, panel.freq, int(p["lookback"]), horizon,
                               covariates=covariates)
        n_periods = wide.y.shape[1]
        boundary = n_periods - horizon  # first validation period
        target_index = windows.origin[:, None] + np.arange(1, horizon + 1)[None, :]
        validation = windows.subset(windows.origin == boundary - 1)
        train = windows.subset(windows.origin < boundary - 1)
        train.target_mask = train.target_mask & (target_index[windows.origin < boundary - 1]
                                                 < boundary)
        train = train.subset(train.target_mask.any(axis=1))
        self._transform = TargetTransform.fit(p["target_transform"],
                                              train.target[train.target_mask])
        train = train.transformed(self._transform.forward)
        validation = validation.transformed(self._transform.forward)
        if len(train) > int(p["max_train_windows"]):
            chosen = np.random.default_rng(int(p["seed"])).choice(
                len(train), int(p["max_train_windows"]), replace=False)
            train = train.subset(np.sort(chosen))
        if len(train) == 0:
            raise InputError(f"model '{self.name}': the panel is too short to train on "
                             f"(lookback {p['lookback']}, horizon {horizon}, "
                             f"{n_periods} periods)")
        self._net = self._build_net(content)
        has_validation = bool(validation.target_mask.any())
        module = ForecastModule(self._net, p["loss"], tuple(float(q) for q in p["quantiles"]),
                                float(p["lr"]), float(p["tweedie_power"]), has_validation)
        train_loader = _loader(self._tensors(wide, train), int(p["batch_size"]), True,
                               int(p["seed"]))
        val_tensors = self._tensors(wide, validation)
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(p["checkpoint_dir"] or scratch)
            checkpoint = ModelCheckpoint(dirpath=folder, monitor="val_loss" if has_validation
                                         else None, save_top_k=1, save_last=True)
            callbacks = [checkpoint]
            if has_validation:
                callbacks.append(EarlyStopping("val_loss", patience=int(p["patience"])))
            resume = folder / "last.ckpt"
            with _quiet_lightning():
                trainer = lightning.Trainer(
                    max_epochs=int(p["epochs"]), accelerator="cpu", devices=1, logger=False,
                    callbacks=callbacks, gradient_clip_val=float(p["gradient_clip"]),
                    deterministic=True, enable_progress_bar=bool(p["progress"]),
                    enable_model_summary=False, num_sanity_val_steps=0,
                    limit_val_batches=1.0 if has_validation else 0)
                trainer.fit(module, train_loader,
                            _loader(val_tensors, 4096, False, 0) if has_validation else None,
                            ckpt_path=str(resume) if resume.is_file() else None)
            best = checkpoint.best_model_path
            if best:
                state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
                module.load_state_dict(state)
        self._net.eval()

    def _predict(self, horizon: int, history: Panel, series: pl.DataFrame) -> pl.DataFrame:
        p = self.params
        if horizon > int(p["horizon"]):
            raise InputError(f"model '{self.name}' was trained for horizons up to "
                             f"{p['horizon']}, asked for {horizon}")
        wide = to_wide(history)
        unseen = series.join(wide.keys, on=SERIES_KEY, how="anti")
        if unseen.height:  # cold start: rows with no history at all
            wide = WidePanel(keys=pl.concat([wide.keys, unseen.select(SERIES_KEY)]),
                             periods=wide.periods,
                             y=np.vstack([wide.y, np.full((unseen.height, wide.y.shape[1]),
                                                          np.nan)]),
                             price_local=None, fx_rate=None)
        last = wide.y.shape[1] - 1
        windows = make_windows(wide, history.freq, int(p["lookback"]), int(p["horizon"]),
                               origins=np.array([last]),
                               covariates=self._check_covariates(
                                   self._covariates(history, wide))
                               ).transformed(self._transform.forward)
        with torch.inference_mode():
            tensors = self._tensors(wide, windows)
            output = self._net(tensors["history"], tensors["history_mask"], tensors["items"],
                               tensors["markets"], tensors["log_level"],
                               tensors["future"]).numpy()
        output = output[:, :horizon]
        if not p["quantiles"] and p["loss"] in LOG_LINK:
            output = np.exp(output)  # the count losses model the log of the (transformed) mean
        output = self._transform.inverse(output)
        values = output * windows.level[:, None, None]
        keys = wide.keys[windows.series]
        future = periods_after(wide.periods[-1], history.freq, horizon).to_list()
        frame = keys.join(pl.DataFrame({"timestamp": future}), how="cross")
        quantiles = [float(q) for q in p["quantiles"]]
        flat = values.reshape(len(windows) * horizon, -1)
        columns = {"y_pred": flat[:, quantiles.index(0.5)] if quantiles else flat[:, 0]}
        for index, level in enumerate(quantiles):
            if level != 0.5:
                columns[f"q{level}"] = flat[:, index]
        frame = frame.with_columns(pl.Series(k, v.astype(np.float64)) for k, v in columns.items())
        return frame.join(series, on=SERIES_KEY, how="semi")

    # --- persistence --------------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        state = {k: v.contiguous() for k, v in self._net.state_dict().items()}
        save_file(state, str(folder / "weights.safetensors"))
        content = {k: [list(v.shape), str(v.dtype).removeprefix("torch.")]
                   for k, v in self._net.state_dict().items()
                   if k.split(".")[0] in _CONTENT_BUFFERS}
        (folder / "multimodal.json").write_text(json.dumps({
            "items": self._item_rows, "markets": self._markets,
            "vocabulary": self._vocabulary.to_dict(), "content": content,
            "notes": self._notes, "widths": list(self._widths),
            "covariate_names": self._covariate_names, "covariate_scale": self._covariate_scale,
            "target_transform": self._transform.to_dict()}))

    def _load_state(self, folder: Path) -> None:
        meta = json.loads((folder / "multimodal.json").read_text())
        self._item_rows, self._markets = meta["items"], meta["markets"]
        self._vocabulary = StaticVocabulary.from_dict(meta["vocabulary"])
        self._notes = meta["notes"]
        self._widths = tuple(meta["widths"])
        self._covariate_names = meta["covariate_names"]
        self._covariate_scale = meta["covariate_scale"]
        self._transform = TargetTransform(**meta["target_transform"])
        content = {k: torch.zeros(shape, dtype=getattr(torch, dtype))
                   for k, (shape, dtype) in meta["content"].items()}
        self._net = self._build_net(content)
        self._net.load_state_dict(load_file(str(folder / "weights.safetensors")))
        self._net.eval()

    @property
    def notes(self) -> list[str]:
        """What the run log and report should say (fallback encoders, masked images)."""
        return list(getattr(self, "_notes", []))


_CONTENT_BUFFERS = {"text_values", "text_present", "text_tokens", "image_values",
                    "image_present", "static_codes", "static_numbers"}


def _loader(tensors: dict[str, torch.Tensor], batch_size: int, shuffle: bool,
            seed: int) -> torch.utils.data.DataLoader:
    names = list(tensors)
    dataset = torch.utils.data.TensorDataset(*(tensors[n] for n in names))
    generator = torch.Generator().manual_seed(seed)

    def collate(rows: list) -> dict[str, torch.Tensor]:
        return {n: torch.stack([r[i] for r in rows]) for i, n in enumerate(names)}

    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       generator=generator, collate_fn=collate, num_workers=0)


class _quiet_lightning:
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
