"""Where a model errs: forecast accuracy per model and segment (and step, market... on request),
from the forecasts a backtest writes (``models.backtest.run_backtest``).

Numbers per group (definitions; the first two come from ``scoring.metrics``, so a segment's
WAPE here is the WAPE of the metrics table restricted to its rows):

- ``wape``: ``100 * sum|y - yhat| / sum|y|``; null when every actual is 0.
- ``mae``: mean ``|y - yhat|`` over the rows.
- ``bias``: ``100 * sum(yhat - y) / sum|y|``, signed, in percent of the actual total: positive
  means the model forecast more than sold. Null when every actual is 0. (The metrics module has
  no bias; this is its only definition in the project.)
- ``n_series``: distinct (item_id, market); ``n_rows``: forecast points; ``actual_total``:
  ``sum y``.
- ``coverage_<p>``: for each central interval the forecasts carry (quantile columns ``q<a>`` and
  ``q<1-a>``, e.g. ``q0.1`` and ``q0.9`` give ``coverage_80``), the share (0..1) of actuals
  inside ``[q<a>, q<1-a>]``, the metrics module's coverage on that pair. Null for a model
  without those quantiles.

``step`` is the forecast step (1 = the first period after the origin). A forecasts file without
a ``step`` column gets it from ``window``: the rank of the point's period among its window's
periods for that model.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from salesfusion.data.forecast_frame import model_rows, quantile_columns, quantile_level
from salesfusion.errors import InputError
from salesfusion.explain.contributions import with_segments
from salesfusion.explain.segments import Segments
from salesfusion.scoring.metrics import evaluate

REQUIRED = ("model", "item_id", "market", "timestamp", "y_true", "y_pred")


def central_intervals(columns: Sequence[str]) -> list[tuple[str, str, int]]:
    """The quantile pairs ``(q<a>, q<1-a>, nominal percent)`` among ``columns``, widest
    first; a quantile without its mirror image is left out."""
    levels = {quantile_level(c): c for c in quantile_columns(columns)}
    pairs = []
    for low, name in levels.items():
        mirror = next((c for q, c in levels.items() if abs(q - (1 - low)) < 1e-9), None)
        if low < 0.5 and mirror is not None:
            pairs.append((name, mirror, round(100 * (1 - 2 * low))))
    return sorted(pairs, key=lambda p: -p[2])


def _prepare(forecasts: pl.DataFrame, segments: Segments | None, by: list[str]) -> pl.DataFrame:
    if "y_true" not in forecasts.columns and "y" in forecasts.columns:
        forecasts = forecasts.rename({"y": "y_true"})
    missing = [c for c in REQUIRED if c not in forecasts.columns]
    if missing:
        raise InputError(f"segment_errors: forecasts lack column(s) {', '.join(missing)} "
                         f"(columns: {', '.join(forecasts.columns)})")
    if "segment" in by:
        if segments is not None:
            forecasts = with_segments(forecasts, segments)
        elif "segment" not in forecasts.columns:  # no segments: each market is its own
            forecasts = forecasts.with_columns(pl.col("market").alias("segment"))
    if "step" in by and "step" not in forecasts.columns:
        if "window" not in forecasts.columns:
            raise InputError("segment_errors: by 'step' needs a step or a window column in the "
                             "forecasts")
        forecasts = forecasts.with_columns(pl.col("timestamp").rank("dense")
                                           .over("model", "window").cast(pl.Int64).alias("step"))
    unknown = [c for c in by if c not in forecasts.columns]
    if unknown:
        raise InputError(f"segment_errors: by column(s) {', '.join(unknown)} not in the "
                         f"forecasts (columns: {', '.join(forecasts.columns)})")
    return forecasts


def _wide(long: pl.DataFrame, keys: list[str], names: dict[str, str]) -> pl.DataFrame:
    picked = long.filter(pl.col("metric").is_in(list(names))).with_columns(
        pl.col("metric").replace_strict(names))
    return picked.pivot(on="metric", index=keys, values="value")


def _one_model(rows: pl.DataFrame, keys: list[str], quantiles: bool) -> pl.DataFrame:
    y, f = pl.col("y_true"), pl.col("y_pred")
    base = rows.select(*dict.fromkeys([*keys, "item_id", "market", "y_true", "y_pred"]))
    counts = base.group_by(keys, maintain_order=True).agg(
        pl.when(y.abs().sum() > 0).then(100.0 * (f - y).sum() / y.abs().sum()).alias("bias"),
        pl.struct("item_id", "market").n_unique().alias("n_series"),
        pl.len().alias("n_rows"),
        y.sum().alias("actual_total"))
    out = _wide(evaluate(base.select(*keys, "y_true", "y_pred"), keys), keys,
                {"WAPE": "wape", "MAE": "mae"}).join(counts, on=keys, nulls_equal=True)
    if quantiles:
        for low, high, percent in central_intervals(rows.columns):
            pair = rows.select(*keys, "y_true", "y_pred", low, high)
            covered = _wide(evaluate(pair, keys), keys, {"coverage": f"coverage_{percent}"})
            out = out.join(covered, on=keys, how="left", nulls_equal=True)
    return out


def segment_errors(forecasts: pl.DataFrame, segments: Segments | None = None,
                   by: Sequence[str] = ("segment",), quantiles: bool = True) -> pl.DataFrame:
    """Accuracy per model and cell of ``by`` (``segment``, ``step``, ``market`` or any column
    of the forecasts): ``model, *by, wape, bias, mae, n_series, n_rows, actual_total`` and,
    when ``quantiles``, a ``coverage_<p>`` per central interval present (see the module
    docstring). ``segments`` maps markets to segments (unknown markets -> "unknown"); without
    it the segment is the market. The actual is ``y_true`` (a plain ``y`` is accepted)."""
    by = [c for c in dict.fromkeys(by) if c != "model"]
    forecasts = _prepare(forecasts, segments, by)
    keys = by or ["_all"]
    if not by:
        forecasts = forecasts.with_columns(pl.lit("all").alias("_all"))
    parts = []
    for name in forecasts["model"].unique(maintain_order=True):
        rows = model_rows(forecasts, name)  # drops quantile columns another model brought in
        parts.append(_one_model(rows, keys, quantiles).with_columns(pl.lit(name).alias("model")))
    out = pl.concat(parts, how="diagonal")
    coverage = sorted((c for c in out.columns if c.startswith("coverage_")),
                      key=lambda c: -int(c.split("_")[1]))
    columns = ["model", *by, "wape", "bias", "mae", "n_series", "n_rows", "actual_total",
               *coverage]
    return (out.select(columns).with_columns(pl.col("n_series", "n_rows").cast(pl.Int64))
            .sort("model", *by))
