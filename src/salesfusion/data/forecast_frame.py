"""The forecast frame every backtest writes and every report, metric and ensemble reads.

One row per (series, period, model, window): ``FORECAST_COLUMNS``, any quantile columns
``q<level>`` (``q0.1``, ``q0.9``; the level strictly between 0 and 1), and the origin context
``CONTEXT_COLUMNS`` that lets metrics be recomputed from the file alone.
"""

from __future__ import annotations

import polars as pl

FORECAST_COLUMNS = ["item_id", "market", "timestamp", "model", "window", "y_true", "y_pred"]

# The per-(series, window) columns metrics read besides the forecast (see ``origin_context``).
CONTEXT_COLUMNS = ("y_last", "mase_scale", "rmsse_scale", "revenue_weight")


def quantile_columns(columns: list[str]) -> list[str]:
    """The quantile forecast columns of a frame, lowest level first."""
    found = [c for c in columns if c.startswith("q") and _is_level(c[1:])]
    return sorted(found, key=lambda c: float(c[1:]))


def _is_level(text: str) -> bool:
    try:
        return 0 < float(text) < 1
    except ValueError:
        return False


def model_rows(forecasts: pl.DataFrame, model_name: str) -> pl.DataFrame:
    """One model's rows with its own columns only: quantile columns of one model must not leak
    into another's rows after a diagonal concat."""
    rows = forecasts.filter(pl.col("model") == model_name)
    return rows.select([c for c in rows.columns if rows[c].null_count() < rows.height
                        or c in FORECAST_COLUMNS])
