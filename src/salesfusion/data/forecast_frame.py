"""The forecast frame every backtest writes and every report, metric and ensemble reads.

One row per (series, period, model, window): ``FORECAST_COLUMNS``, any quantile columns
``q<level>`` (``q0.1``, ``q0.9``; the level strictly between 0 and 1), and the origin context
``CONTEXT_COLUMNS`` that lets metrics be recomputed from the file alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import polars as pl

FORECAST_COLUMNS = ["item_id", "market", "timestamp", "model", "window", "y_true", "y_pred"]

# The per-(series, window) columns metrics read besides the forecast (see ``origin_context``).
CONTEXT_COLUMNS = ("y_last", "mase_scale", "rmsse_scale", "revenue_weight")


# ``q`` and a number as Python writes a float: q0.1, q0.975, q1e-05.
_QUANTILE = re.compile(r"q((?:\d+\.?\d*|\.\d+)(?:e-?\d+)?)")


def quantile_name(level: float) -> str:
    """The column of quantile ``level``: ``q0.1``, ``q0.9``."""
    return f"q{level}"


def quantile_level(column: str) -> float | None:
    """The level of a quantile column (``q0.9`` -> 0.9); None for any other column."""
    found = _QUANTILE.fullmatch(column)
    level = float(found.group(1)) if found else None
    return level if level is not None and 0 < level < 1 else None


def quantile_columns(columns: Iterable[str]) -> list[str]:
    """The quantile forecast columns of a frame, lowest level first."""
    levels = {c: level for c in columns if (level := quantile_level(c)) is not None}
    return sorted(levels, key=levels.__getitem__)


def model_rows(forecasts: pl.DataFrame, model_name: str) -> pl.DataFrame:
    """One model's rows with its own columns only: quantile columns of one model must not leak
    into another's rows after a diagonal concat."""
    rows = forecasts.filter(pl.col("model") == model_name)
    return rows.select([c for c in rows.columns if rows[c].null_count() < rows.height
                        or c in FORECAST_COLUMNS])
