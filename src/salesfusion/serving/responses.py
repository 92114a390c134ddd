"""The response bodies the routes build: a served model's description, one series' forecast in
the KServe shape (``serving.schemas``), one output per posted series, and the response that
wraps them. Every forecasting route (stored series, new items) answers through these, so a
client reads the same shape whichever route forecast the series."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import polars as pl

from salesfusion.data.forecast_frame import quantile_name
from salesfusion.data.panel import SERIES_KEY
from salesfusion.serving.schemas import (
    ErrorBody,
    ForecastOutput,
    ForecastResponse,
    ModelInfo,
    SeriesInput,
    TimeSeriesForecast,
)
from salesfusion.serving.store import ServedModel


def series_name(series: SeriesInput) -> str:
    return series.name or f"{series.item_id}@{series.market}"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def model_info(model: ServedModel) -> ModelInfo:
    """What ``GET /v1/models`` says of a served model."""
    history = model.history
    periods = history.periods
    items = history.items
    return ModelInfo(
        name=model.name, model=model.forecaster.name, freq=model.forecaster.freq,
        horizon=model.max_horizon, quantiles=model.quantile_levels,
        supports_cold_start=model.forecaster.supports_cold_start,
        supports_launch=model.forecaster.supports_launch,
        explains=model.forecaster.explains_by_gradients, n_series=history.n_series,
        n_items=items["item_id"].n_unique() if items is not None
        else history.data["item_id"].n_unique(),
        markets=sorted(history.data["market"].unique().to_list()),
        history_start=iso(periods[0]), history_end=iso(periods[-1]),
        checksum=model.checksum, params=model.forecaster.params)


def quantile_column(level: float, columns: list[str]) -> str:
    """The forecast column of quantile ``level``: its ``q<level>`` column, or ``y_pred`` for the
    0.5 quantile of a model whose point forecast is the median (it writes no ``q0.5``)."""
    name = quantile_name(level)
    return "y_pred" if name not in columns and abs(level - 0.5) < 1e-9 else name


def series_forecast(name: str, rows: pl.DataFrame, freq: str,
                    levels: list[float]) -> TimeSeriesForecast:
    """One series' forecast rows (sorted by time) as the response's content."""
    stamps = rows["timestamp"].to_list()
    return TimeSeriesForecast(
        name=name, item_id=rows["item_id"][0], market=rows["market"][0],
        mean_forecast=rows["y_pred"].to_list(), frequency=freq,
        start_timestamp=iso(stamps[0]), timestamps=[iso(s) for s in stamps],
        quantiles={str(q): rows[quantile_column(q, rows.columns)].to_list() for q in levels},
        cold_start=bool(rows["cold_start"][0]) if "cold_start" in rows.columns else False,
        before_launch=rows["before_launch"].to_list() if "before_launch" in rows.columns
        else [])


def forecast_outputs(inputs: list[SeriesInput], frame: pl.DataFrame, model: ServedModel,
                     levels: list[float],
                     posted: list[SeriesInput] | None = None) -> list[ForecastOutput]:
    """One output per input; ``posted``: the inputs as the client wrote them, named in the
    error of a series not found when they differ from the normalised ``inputs``."""
    by_series = {key: rows.sort("timestamp") for key, rows in
                 frame.group_by(SERIES_KEY, maintain_order=True)}
    outputs = []
    for series, asked in zip(inputs, posted or inputs, strict=True):
        rows = by_series.get((series.item_id, series.market))
        output_id = f"ts_{uuid.uuid4().hex}"
        if rows is None:
            reason = model.unknown_reason(series.item_id, series.market)
            if (asked.item_id, asked.market) != (series.item_id, series.market):
                reason += f" (posted as {asked.item_id!r} in {asked.market!r})"
            outputs.append(ForecastOutput(id=output_id, status="error", error=ErrorBody(
                code="unknown_series", message=reason, param=series_name(series))))
            continue
        outputs.append(ForecastOutput(id=output_id, status="completed", content=[
            series_forecast(series_name(series), rows, model.forecaster.freq, levels)]))
    return outputs


def respond(model: str, outputs: list[ForecastOutput],
            metadata: dict[str, Any] | None) -> ForecastResponse:
    """The response over ``outputs``: completed, partial (some failed) or error (all failed)."""
    failed = sum(o.status == "error" for o in outputs)
    status = "completed" if not failed else "error" if failed == len(outputs) else "partial"
    return ForecastResponse(id=f"resp_{uuid.uuid4().hex}", created_at=int(time.time()),
                            status=status, model=model, outputs=outputs, metadata=metadata)
