"""The multimodal model's forecasts from the latest data (``predict``): one window per series at
the history's last period, series without history (cold start) given an empty one, through the
fitted network in batches and back to the data's scale.

Launch forecasts (``predict_launch``) read the same ``_forecast_columns`` from their own windows
(``models.multimodal_launch``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import torch

from salesfusion.components import LOSSES
from salesfusion.data.forecast_frame import quantile_name
from salesfusion.data.frequency import periods_after
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.errors import InputError
from salesfusion.features.lags import WidePanel, to_wide
from salesfusion.models.network import MultimodalNet
from salesfusion.training.transforms import TargetTransform
from salesfusion.training.windows import Windows, make_windows

PREDICT_BATCH = 65_536  # windows per forward pass when forecasting


class ForecastPath:
    """Mixed into ``MultimodalForecaster`` (``_series_inputs``, ``_covariates``,
    ``_check_covariates``, ``_cold_level`` and ``_remember_markets`` are the model's and its
    other paths')."""

    name: str
    config: Any
    _net: MultimodalNet
    _transform: TargetTransform

    def _predict(self, horizon: int, history: Panel, series: pl.DataFrame) -> pl.DataFrame:
        c = self.config
        if horizon > c.horizon:
            raise InputError(f"model '{self.name}' was trained for horizons up to "
                             f"{c.horizon}, asked for {horizon}")
        self._remember_markets(history)
        wide = to_wide(history)
        unseen = series.join(wide.keys, on=SERIES_KEY, how="anti")
        if unseen.height:  # cold start: rows with no history at all
            wide = WidePanel(keys=pl.concat([wide.keys, unseen.select(SERIES_KEY)]),
                             periods=wide.periods,
                             y=np.vstack([wide.y, np.full((unseen.height, wide.y.shape[1]),
                                                          np.nan)]),
                             price_local=None, fx_rate=None)
        windows = make_windows(wide, history.freq, c.lookback, c.horizon,
                               origins=np.array([wide.y.shape[1] - 1]),
                               covariates=self._check_covariates(
                                   self._covariates(history, wide)),
                               cold_level=self._cold_level(wide.keys))
        future = periods_after(wide.periods[-1], history.freq, horizon).to_list()
        frame = wide.keys[windows.series].join(pl.DataFrame({"timestamp": future}), how="cross")
        frame = frame.with_columns(self._forecast_columns(wide, windows, horizon))
        return frame.join(series, on=SERIES_KEY, how="semi")

    def _forecast_columns(self, wide: WidePanel, windows: Windows,
                          horizon: int) -> list[pl.Series]:
        """``y_pred`` and the quantile columns of ``windows``' first ``horizon`` steps, one row
        per window and step (window-major)."""
        c = self.config
        windows = windows.transformed(self._transform.forward)
        # In batches: one pass over a marketplace's million series would hold every
        # activation of the backbone at once.
        tensors = self._series_inputs(wide)
        with torch.inference_mode():
            output = np.concatenate([
                self._net(tensors(windows.subset(np.arange(start, min(
                    start + PREDICT_BATCH, len(windows)))))).numpy()[:, :horizon]
                for start in range(0, max(len(windows), 1), PREDICT_BATCH)])
        # A mean channel comes first (the point head's only one, or beside the quantiles).
        has_mean = c.point == "mean" or not c.quantiles
        if has_mean and LOSSES.get(c.loss).log_link:
            # The count losses model the log of the (transformed) mean.
            output[..., 0] = np.exp(output[..., 0])
        values = self._transform.inverse(output) * windows.level[:, None, None]
        flat = values.reshape(len(windows) * horizon, -1)
        quantile_at = 1 if has_mean else 0
        columns = {"y_pred": flat[:, 0] if has_mean else flat[:, c.quantiles.index(0.5)]}
        for index, level in enumerate(c.quantiles):
            if has_mean or level != 0.5:  # beside a mean, the median is a quantile column
                columns[quantile_name(level)] = flat[:, quantile_at + index]
        return [pl.Series(k, v.astype(np.float64)) for k, v in columns.items()]
