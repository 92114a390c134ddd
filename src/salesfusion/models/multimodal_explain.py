"""What ``explain`` reads of a fitted multimodal forecaster: its network, the names of its
inputs, and windows at chosen origins exactly as the network reads them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from salesfusion.data.panel import Panel
from salesfusion.encoders.static import StaticVocabulary
from salesfusion.errors import InputError
from salesfusion.features.calendar import CALENDAR_CHANNELS
from salesfusion.features.lags import WidePanel, to_wide
from salesfusion.models.network import MultimodalNet
from salesfusion.training.windows import Windows, extended_periods, make_windows


@dataclass
class ExplanationWindows:
    """Windows with their batch tensors and the names of the ``history`` / ``future`` channels
    (the value, the calendar, then the covariates)."""

    wide: WidePanel
    windows: Windows
    tensors: dict[str, torch.Tensor]
    history_channels: list[str]
    future_channels: list[str]
    periods: np.ndarray  # the panel's periods, then the horizon's after them




class ExplanationPath:
    """Mixed into ``MultimodalForecaster``."""

    name: str
    config: Any
    _net: MultimodalNet
    _covariate_names: list[str]
    _vocabulary: StaticVocabulary

    def explanation_windows(self, panel: Panel, origins: np.ndarray) -> ExplanationWindows:
        """The windows of ``panel``'s series at period indices ``origins`` (launch windows
        included: a series whose first sale is the period after an origin), scaled and
        transformed as the network reads them, with their batch tensors (``explain``)."""
        if not hasattr(self, "_net"):
            raise InputError(f"model '{self.name}' is not fitted")
        c = self.config
        self._remember_markets(panel)
        wide = to_wide(panel)
        cube = self._check_covariates(self._covariates(panel, wide))
        windows = make_windows(wide, panel.freq, c.lookback, c.horizon, origins=origins,
                               covariates=cube, cold_level=self._cold_level(wide.keys))
        windows = windows.transformed(self._transform.forward)
        names = cube.names if cube is not None else []
        planned = [n for n, known in zip(names, cube.future_known, strict=True) if known] \
            if cube is not None else []
        return ExplanationWindows(wide, windows, self._tensors(wide, windows),
                                  ["history", *CALENDAR_CHANNELS, *names],
                                  [*CALENDAR_CHANNELS, *planned],
                                  extended_periods(wide, panel.freq, c.horizon))

    @property
    def network(self) -> MultimodalNet:
        return self._net

    @property
    def covariate_names(self) -> list[str]:
        return list(self._covariate_names)

    @property
    def static_vocabulary(self) -> StaticVocabulary:
        return self._vocabulary
