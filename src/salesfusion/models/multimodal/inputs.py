"""What the multimodal network's inputs are built from, once fitted: ``MultimodalInputs``.

The fitted preprocessing state (item and market rows, attribute vocabularies, market codes,
covariate names and scaling, target transform, launch levels) is one dataclass, saved as JSON
beside the weights (``to_json``/``from_json``, versioned), and the functions that turn a panel
and origins into windows and batch tensors are its methods. The estimator fits it
(``models.multimodal.fitting``), the predictor reads it; neither holds the state twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import torch

from salesfusion.data.launches import POOLED
from salesfusion.data.panel import Panel
from salesfusion.encoders.static import StaticVocabulary
from salesfusion.errors import InputError
from salesfusion.features.covariates import Covariates, covariate_cube
from salesfusion.features.lags import WidePanel, to_wide
from salesfusion.models.multimodal.config import MultimodalConfig
from salesfusion.training.batches import window_tensors
from salesfusion.training.transforms import TargetTransform
from salesfusion.training.windows import Windows, extended_periods, make_windows

# The layout of ``multimodal.json``; models saved before it was recorded are format 1 too.
INPUTS_FORMAT = 1


@dataclass
class MultimodalInputs:
    """The fitted state the network's inputs are built from. ``config`` is the model's (not
    saved here: the manifest holds it); ``owner`` names the model in error messages."""

    config: MultimodalConfig
    owner: str
    item_rows: dict[str, int]  # item -> row of the network's content buffers
    markets: dict[str, int]  # market -> embedding index (0: unseen)
    vocabulary: StaticVocabulary  # the items' static attributes
    covariate_names: list[str]
    covariate_scale: dict[str, list[float]]
    widths: tuple[int, int]  # one history step's and one forecast step's input width
    launch_levels: dict[str, float] | None  # launch_scale: launch_level
    market_vocabulary: StaticVocabulary | None = None  # market attributes, when configured
    market_codes: dict[str, list[int]] = field(default_factory=dict)
    transform: TargetTransform | None = None  # fitted on the training windows

    # --- persistence ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"inputs_format": INPUTS_FORMAT, "items": self.item_rows,
                "markets": self.markets, "vocabulary": self.vocabulary.to_dict(),
                "widths": list(self.widths), "covariate_names": self.covariate_names,
                "covariate_scale": self.covariate_scale,
                "target_transform": self.transform.to_dict() if self.transform else None,
                "launch_levels": self.launch_levels,
                "market_vocabulary": self.market_vocabulary.to_dict()
                if self.market_vocabulary is not None else None,
                "market_codes": self.market_codes}

    @classmethod
    def from_json(cls, meta: dict[str, Any], config: MultimodalConfig,
                  owner: str) -> MultimodalInputs:
        version = meta.get("inputs_format", 1)
        if version != INPUTS_FORMAT:
            raise InputError(f"model '{owner}': its inputs are in format {version}; this "
                             f"salesfusion reads {INPUTS_FORMAT}: train or save it again")
        vocabulary = meta.get("market_vocabulary")  # absent in models saved before it existed
        return cls(config=config, owner=owner, item_rows=meta["items"],
                   markets=meta["markets"],
                   vocabulary=StaticVocabulary.from_dict(meta["vocabulary"]),
                   covariate_names=meta["covariate_names"],
                   covariate_scale=meta["covariate_scale"], widths=tuple(meta["widths"]),
                   # Models saved before launch levels existed scale launches by the market.
                   launch_levels=meta.get("launch_levels"),
                   market_vocabulary=StaticVocabulary.from_dict(vocabulary) if vocabulary
                   else None,
                   market_codes=meta.get("market_codes") or {},
                   transform=TargetTransform(**meta["target_transform"]))

    # --- series and markets -----------------------------------------------------------------
    def series_inputs(self, wide: WidePanel) -> Callable[[Windows], dict[str, torch.Tensor]]:
        """The tensors of any windows of ``wide``, with each series' content row (-1: none),
        market index (0: unseen) and market codes looked up once, not per batch."""
        item_rows = _lookup(wide.keys["item_id"], self.item_rows, -1)
        market_index = _lookup(wide.keys["market"], self.markets, 0)
        codes = self.market_code_matrix(wide) if self.market_vocabulary is not None else None

        def tensors(windows: Windows) -> dict[str, torch.Tensor]:
            batch = window_tensors(windows, item_rows, market_index)
            if codes is not None:
                batch["market_codes"] = torch.from_numpy(codes[windows.series])
            return batch

        return tensors

    def cold_level(self, keys: pl.DataFrame) -> np.ndarray | None:
        """Each series' scale when it has no history: its market's launch level (the pooled
        one for a market without launches); None under ``launch_scale: market_level``."""
        if self.launch_levels is None:
            return None
        pooled = self.launch_levels[POOLED]
        return np.array([self.launch_levels.get(m, pooled) for m in keys["market"]])

    def check_market_attributes(self, panel: Panel, attributes: list[str]) -> None:
        if panel.markets is None or not set(attributes) <= set(panel.markets.columns):
            have = panel.markets.columns if panel.markets is not None else "no markets table"
            raise InputError(f"model '{self.owner}' reads the market attributes {attributes}; "
                             f"the markets table has {have}")

    def remember_markets(self, panel: Panel) -> None:
        """Codes of the attributes of ``panel``'s markets (a market unseen in training is
        known by its attributes; an unseen level maps to the reserved code 0)."""
        if self.market_vocabulary is None:
            return
        self.check_market_attributes(panel, self.market_vocabulary.categorical)
        codes, _ = self.market_vocabulary.transform(panel.markets)
        self.market_codes.update(zip(panel.markets["market"].cast(pl.String).to_list(),
                                     codes.tolist(), strict=True))

    def market_code_matrix(self, wide: WidePanel) -> np.ndarray:
        """(series, attributes) codes of each series' market; a market without known
        attributes gets 0s. Looked up per market, then spread to the series."""
        assert self.market_vocabulary is not None
        unknown = [0] * len(self.market_vocabulary.categorical)
        markets, inverse = np.unique(wide.keys["market"].cast(pl.String).to_numpy(),
                                     return_inverse=True)
        per_market = np.array([self.market_codes.get(m, unknown) for m in markets],
                              dtype=np.int64).reshape(len(markets), -1)
        return per_market[inverse].reshape(wide.keys.height, -1)

    # --- covariates and windows -------------------------------------------------------------
    def covariates(self, panel: Panel, wide: WidePanel) -> Covariates | None:
        """The covariate cube over the panel's periods and the horizon after them."""
        if not self.config.covariates:
            return None
        return covariate_cube(panel, wide.keys, extended_periods(wide, panel.freq,
                                                                 self.config.horizon),
                              self.covariate_scale)

    def checked_covariates(self, panel: Panel, wide: WidePanel) -> Covariates | None:
        """``covariates``, refused unless they have the channels the model was trained on
        (an error naming the ones the data no longer has)."""
        cube = self.covariates(panel, wide)
        names = cube.names if cube is not None else []
        if names != self.covariate_names:
            missing = sorted(set(self.covariate_names) - set(names)) or names
            raise InputError(f"model '{self.owner}' was trained with the covariates "
                             f"{self.covariate_names}; the data given differs "
                             f"({', '.join(missing)}): give the same events/exogenous tables")
        return cube

    def windows_at(self, panel: Panel, origins: np.ndarray,
                   wide: WidePanel | None = None) -> tuple[WidePanel, Windows, Covariates | None]:
        """The windows of ``panel``'s series (or of ``wide``, its rows with cold-start rows
        added) at period indices ``origins``, with the checked covariate cube."""
        c = self.config
        self.remember_markets(panel)
        wide = wide if wide is not None else to_wide(panel)
        cube = self.checked_covariates(panel, wide)
        windows = make_windows(wide, panel.freq, c.lookback, c.horizon, origins=origins,
                               covariates=cube, cold_level=self.cold_level(wide.keys))
        return wide, windows, cube


def _lookup(keys: pl.Series, rows: dict[str, int], missing: int) -> np.ndarray:
    """``rows[key]`` of every key (``missing`` for a key not in ``rows``), vectorised."""
    if not rows:
        return np.full(len(keys), missing, dtype=np.int64)
    return keys.cast(pl.String).replace_strict(rows, default=missing,
                                               return_dtype=pl.Int64).to_numpy()
