"""Markets-table attributes (maturity, language, region...) as static inputs of the multimodal
forecaster: a vocabulary of their levels learnt on the training markets, one code per attribute
and market, and codes for the markets of whatever panel the model forecasts, so that a market
unseen in training is known by its attributes (``market_attributes`` in the config)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from salesfusion.data.panel import Panel
from salesfusion.encoders.static import StaticVocabulary
from salesfusion.errors import InputError
from salesfusion.features.lags import WidePanel


class MarketAttributesPath:
    """Mixed into ``MultimodalForecaster``; ``_market_vocabulary`` is None without market
    attributes."""

    name: str
    config: Any
    _market_vocabulary: StaticVocabulary | None
    _market_codes: dict[str, list[int]]

    def _fit_market_attributes(self, panel: Panel) -> None:
        self._market_vocabulary, self._market_codes = None, {}
        attributes = list(self.config.market_attributes)
        if attributes:
            self._check_market_attributes(panel, attributes)
            self._market_vocabulary = StaticVocabulary(attributes, []).fit(panel.markets)
            self._remember_markets(panel)

    def _check_market_attributes(self, panel: Panel, attributes: list[str]) -> None:
        if panel.markets is None or not set(attributes) <= set(panel.markets.columns):
            have = panel.markets.columns if panel.markets is not None else "no markets table"
            raise InputError(f"model '{self.name}' reads the market attributes {attributes}; "
                             f"the markets table has {have}")

    def _remember_markets(self, panel: Panel) -> None:
        """Codes of the attributes of ``panel``'s markets (a market unseen in training is
        known by its attributes; an unseen level maps to the reserved code 0)."""
        if self._market_vocabulary is None:
            return
        self._check_market_attributes(panel, self._market_vocabulary.categorical)
        codes, _ = self._market_vocabulary.transform(panel.markets)
        self._market_codes.update(zip(panel.markets["market"].cast(pl.String).to_list(),
                                      codes.tolist(), strict=True))

    def _market_code_matrix(self, wide: WidePanel) -> np.ndarray:
        """(series, attributes) codes of each series' market; a market without known
        attributes gets 0s. Looked up per market, then spread to the series."""
        unknown = [0] * len(self._market_vocabulary.categorical)
        markets, inverse = np.unique(wide.keys["market"].cast(pl.String).to_numpy(),
                                     return_inverse=True)
        per_market = np.array([self._market_codes.get(m, unknown) for m in markets],
                              dtype=np.int64).reshape(len(markets), -1)
        return per_market[inverse].reshape(wide.keys.height, -1)
