"""What ``explain`` reads of a fitted multimodal forecaster: windows at chosen origins exactly
as the network reads them, with the names of their input channels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from salesfusion.data.panel import Panel
from salesfusion.features.calendar import CALENDAR_CHANNELS
from salesfusion.features.lags import WidePanel
from salesfusion.models.multimodal.inputs import MultimodalInputs
from salesfusion.training.windows import Windows, extended_periods


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


def explanation_windows(inputs: MultimodalInputs, panel: Panel,
                        origins: np.ndarray) -> ExplanationWindows:
    """The windows of ``panel``'s series at period indices ``origins`` (launch windows
    included: a series whose first sale is the period after an origin), scaled and
    transformed as the network reads them, with their batch tensors."""
    assert inputs.transform is not None
    wide, windows, cube = inputs.windows_at(panel, origins)
    windows = windows.transformed(inputs.transform.forward)
    names = cube.names if cube is not None else []
    planned = ([n for n, known in zip(names, cube.future_known, strict=True) if known]
               if cube is not None else [])
    return ExplanationWindows(wide, windows, inputs.series_inputs(wide)(windows),
                              ["history", *CALENDAR_CHANNELS, *names],
                              [*CALENDAR_CHANNELS, *planned],
                              extended_periods(wide, panel.freq, inputs.config.horizon))
