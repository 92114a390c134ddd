"""The fitted multimodal model as a predictor: its network and its inputs.

``MultimodalPredictor`` forecasts from the latest data (``predict``: one window per series at
the history's last period, series without history given an empty one) and from launches
(``predict_launch``), saves and loads itself (the network's weights as safetensors, the inputs
as ``multimodal.json``), and describes new items by returning a new predictor whose network
also holds their content (``with_items``) instead of changing its own.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import polars as pl
import torch
from safetensors.torch import load_file, save_file

from salesfusion.components import LOSSES
from salesfusion.data.forecast_frame import quantile_name
from salesfusion.data.frequency import periods_after
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.errors import InputError
from salesfusion.features.lags import WidePanel, to_wide
from salesfusion.models.multimodal.config import MultimodalConfig
from salesfusion.models.multimodal.inputs import MultimodalInputs
from salesfusion.models.multimodal.launch_windows import launch_windows
from salesfusion.models.multimodal.new_items import new_item_content
from salesfusion.models.network import MultimodalNet, content_buffers
from salesfusion.training.windows import Windows

PREDICT_BATCH = 65_536  # windows per forward pass when forecasting
WEIGHTS, INPUTS = "weights.safetensors", "multimodal.json"


def build_network(inputs: MultimodalInputs, content: dict[str, torch.Tensor]) -> MultimodalNet:
    """The network the configuration names, sized by the fitted inputs."""
    c = inputs.config
    return MultimodalNet(
        content=content, static_cardinalities=inputs.vocabulary.cardinalities(),
        n_numeric=len(inputs.vocabulary.numeric), n_markets=len(inputs.markets),
        history_dim=inputs.widths[0], future_dim=inputs.widths[1], horizon=c.horizon,
        fusion=c.fusion, fallback_fusion=c.fallback_fusion, fusion_dim=c.fusion_dim,
        backbone=c.backbone, head=network_head(c), hidden=c.hidden,
        layers=c.layers, dropout=c.dropout, quantiles=tuple(c.quantiles),
        cross_market=c.cross_market,
        market_cardinalities=tuple(inputs.market_vocabulary.cardinalities())
        if inputs.market_vocabulary is not None else (), lookback=c.lookback,
        backbone_params=c.backbone_params, fusion_params=c.fusion_params)


def network_head(config: MultimodalConfig) -> str:
    """The registered head: quantiles beside a mean channel when the point forecast is the mean,
    quantiles alone when it is their median, one value per step without quantiles."""
    if not config.quantiles:
        return "point"
    return "mean_quantile" if config.point == "mean" else "quantile"


class MultimodalPredictor:
    """A fitted network and the inputs it reads."""

    def __init__(self, net: MultimodalNet, inputs: MultimodalInputs) -> None:
        self.net, self.inputs = net, inputs

    @property
    def config(self) -> MultimodalConfig:
        return self.inputs.config

    def _horizon(self, horizon: int, what: str = "") -> None:
        if horizon > self.config.horizon:
            raise InputError(f"model '{self.inputs.owner}' was trained for horizons up to "
                             f"{self.config.horizon}, asked for {horizon}{what}")

    # --- forecasts --------------------------------------------------------------------------
    def predict(self, horizon: int, history: Panel, series: pl.DataFrame) -> pl.DataFrame:
        """``y_pred`` and quantiles of ``series`` for ``horizon`` periods after ``history``."""
        self._horizon(horizon)
        wide = to_wide(history)
        unseen = series.join(wide.keys, on=SERIES_KEY, how="anti")
        if unseen.height:  # cold start: rows with no history at all
            wide = WidePanel(keys=pl.concat([wide.keys, unseen.select(SERIES_KEY)]),
                             periods=wide.periods,
                             y=np.vstack([wide.y, np.full((unseen.height, wide.y.shape[1]),
                                                          np.nan)]),
                             price_local=None, fx_rate=None)
        wide, windows, _ = self.inputs.windows_at(history, np.array([wide.y.shape[1] - 1]),
                                                  wide)
        future = periods_after(wide.periods[-1], history.freq, horizon).to_list()
        frame = wide.keys[windows.series].join(pl.DataFrame({"timestamp": future}), how="cross")
        frame = frame.with_columns(self.forecast_columns(wide, windows, horizon))
        return frame.join(series, on=SERIES_KEY, how="semi")

    def predict_launch(self, grid: pl.DataFrame, history: Panel) -> pl.DataFrame:
        """``grid`` (``item_id, market, launch, period_since_launch, timestamp``) with
        ``y_pred`` and quantiles, from one launch window per series."""
        horizon = int(grid["period_since_launch"].max())
        self._horizon(horizon, " periods from launch")
        self.inputs.remember_markets(history)
        wide, windows = launch_windows(self.inputs, grid, history)
        ages = pl.DataFrame({"period_since_launch": pl.int_range(1, horizon + 1, eager=True)})
        frame = (wide.keys.join(grid.select(*SERIES_KEY, "launch").unique(), on=SERIES_KEY,
                                how="left", maintain_order="left")
                 .join(ages, how="cross").with_columns(
                     self.forecast_columns(wide, windows, horizon)))
        return grid.join(frame.drop("launch"), on=[*SERIES_KEY, "period_since_launch"],
                         how="left")

    def forecast_columns(self, wide: WidePanel, windows: Windows,
                         horizon: int) -> list[pl.Series]:
        """``y_pred`` and the quantile columns of ``windows``' first ``horizon`` steps, one row
        per window and step (window-major)."""
        c, transform = self.config, self.inputs.transform
        assert transform is not None
        windows = windows.transformed(transform.forward)
        # In batches: one pass over a marketplace's million series would hold every
        # activation of the backbone at once.
        tensors = self.inputs.series_inputs(wide)
        with torch.inference_mode():
            output = np.concatenate([
                self.net(tensors(windows.subset(np.arange(start, min(
                    start + PREDICT_BATCH, len(windows)))))).numpy()[:, :horizon]
                for start in range(0, max(len(windows), 1), PREDICT_BATCH)])
        # A mean channel comes first (the point head's only one, or beside the quantiles).
        has_mean = c.point == "mean" or not c.quantiles
        if has_mean and LOSSES.get(c.loss).log_link:
            # The count losses model the log of the (transformed) mean.
            output[..., 0] = np.exp(output[..., 0])
        values = transform.inverse(output) * windows.level[:, None, None]
        flat = values.reshape(len(windows) * horizon, -1)
        quantile_at = 1 if has_mean else 0
        columns = {"y_pred": flat[:, 0] if has_mean else flat[:, c.quantiles.index(0.5)]}
        for index, level in enumerate(c.quantiles):
            if has_mean or level != 0.5:  # beside a mean, the median is a quantile column
                columns[quantile_name(level)] = flat[:, quantile_at + index]
        return [pl.Series(k, v.astype(np.float64)) for k, v in columns.items()]

    # --- new items ----------------------------------------------------------------------------
    def with_items(self, items: pl.DataFrame, history: Panel,
                   image_root: Path) -> tuple[MultimodalPredictor, list[str]]:
        """A predictor whose network also holds the content of ``items`` (one row per item:
        ``item_id`` and any of title, description, image, the fitted static attributes) that
        this one was not fitted on, and the modalities read from them. This predictor is
        unchanged: the new network shares its weights and has its own content buffers."""
        fresh = items.unique("item_id", keep="first", maintain_order=True).filter(
            ~pl.col("item_id").is_in(list(self.inputs.item_rows)))
        if fresh.height == 0:
            return self, []
        blocks, used = new_item_content(self.net, self.inputs, history, fresh, image_root)
        net = copy.copy(self.net)  # shares parameters and submodules with this network
        net._buffers = dict(self.net._buffers)  # but not the table of its buffers
        for name, block in blocks.items():
            held = getattr(self.net, name)
            net._buffers[name] = torch.cat([held, block.to(held.dtype)])
        start = len(self.inputs.item_rows)
        rows = {**self.inputs.item_rows, **{item: start + i for i, item in
                                            enumerate(fresh["item_id"].to_list())}}
        inputs = copy.copy(self.inputs)
        inputs.item_rows = rows
        return MultimodalPredictor(net, inputs), used

    # --- persistence ----------------------------------------------------------------------
    def save(self, folder: Path, notes: list[str]) -> None:
        """The weights (safetensors) and, beside them, the inputs, the content buffers'
        shapes (to build the network before loading) and the fit's ``notes``."""
        state = {k: v.contiguous() for k, v in self.net.state_dict().items()}
        save_file(state, str(folder / WEIGHTS))
        buffers = {b for names in content_buffers().values() for b in names}
        content = {k: [list(v.shape), str(v.dtype).removeprefix("torch.")]
                   for k, v in self.net.state_dict().items() if k.split(".")[0] in buffers}
        (folder / INPUTS).write_text(json.dumps(
            {**self.inputs.to_json(), "content": content, "notes": notes}))

    @classmethod
    def load(cls, folder: Path, config: MultimodalConfig,
             owner: str) -> tuple[MultimodalPredictor, list[str]]:
        """A saved predictor and the notes of its fit."""
        meta = json.loads((folder / INPUTS).read_text())
        inputs = MultimodalInputs.from_json(meta, config, owner)
        content = {k: torch.zeros(shape, dtype=getattr(torch, dtype))
                   for k, (shape, dtype) in meta["content"].items()}
        net = build_network(inputs, content)
        net.load_state_dict(load_file(str(folder / WEIGHTS)))
        net.eval()
        return cls(net, inputs), meta["notes"]
