"""The metrics tables of backtest forecasts (the forecasts themselves come from
``models.backtest``, the base interface's rolling backtest): per model, window and segment, and
per series."""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from salesfusion.data.forecast_frame import model_rows
from salesfusion.scoring.metrics import evaluate


def metrics_table(forecasts: pl.DataFrame, segment_column: str = "market") -> pl.DataFrame:
    """Metrics per model, window (each and ``all``) and segment (``all`` and each value of
    ``segment_column``), long form: ``model, window, segment, metric, value``."""
    parts = []
    for model_name in forecasts["model"].unique(maintain_order=True):
        rows = model_rows(forecasts, model_name)
        parts.extend(_grouped(rows, model_name, segment_column))
    columns = ["model", "window", "segment", "metric", "value"]
    return (pl.concat([part.select(columns) for part in parts])
            .sort("model", "window", "segment", "metric"))


def _grouped(rows: pl.DataFrame, model_name: str, segment_column: str) -> Iterable[pl.DataFrame]:
    rows = rows.with_columns(pl.col("window").cast(pl.Utf8))
    every = rows.with_columns(pl.lit("all").alias("window"))
    for frame in (rows, every):
        yield _label(evaluate(frame, ["window"]), model_name, "all")
        per_segment = evaluate(frame, ["window", segment_column])
        yield _label(per_segment.rename({segment_column: "segment"}), model_name, None)


def _label(frame: pl.DataFrame, model_name: str, segment: str | None) -> pl.DataFrame:
    frame = frame.with_columns(pl.lit(model_name).alias("model"))
    if segment is not None:
        frame = frame.with_columns(pl.lit(segment).alias("segment"))
    return frame


def series_metrics(forecasts: pl.DataFrame) -> pl.DataFrame:
    """Metrics per model and series over all windows (long form)."""
    return pl.concat(
        evaluate(forecasts.filter(pl.col("model") == name), ["item_id", "market"])
        .with_columns(pl.lit(name).alias("model"))
        for name in forecasts["model"].unique(maintain_order=True))
