"""Forecast accuracy metrics, defined once as polars aggregations so that every grouping (per
series, per market, per segment, per window, overall) uses the same formulas.

Conventions (also in the README):

- Percentages: MAPE, sMAPE and WAPE are in percent.
- MAPE skips points whose actual is 0 (their ratio is undefined); it is null when every actual in
  the group is 0. Intermittent demand has many zeros, so prefer WAPE or MASE there.
- sMAPE is ``200 * |y - yhat| / (|y| + |yhat|)`` averaged over points, with 0/0 counted as 0
  (both zero is a perfect forecast).
- WAPE is ``100 * sum|y - yhat| / sum|y|``; null when all actuals are 0.
- MASE divides each absolute error by its (series, window) scale: the in-sample mean absolute
  one-step difference of that series up to the forecast origin. Points whose scale is 0 (a
  constant history) are skipped.
- R2 is ``1 - SSE / SST`` around the group's mean actual; null when the actuals are constant.
- Direction: demand "went up" when the actual exceeds the last value observed at the origin
  (``y_last``). Directional accuracy compares that with ``y_pred > y_last``; directional AUC
  ranks points by ``y_pred - y_last`` (ties averaged) and is null when the group has only one
  class.
- Quantile columns are named ``q<level>`` (``q0.1``, ``q0.9``); the pinball loss is averaged over
  the levels given, and coverage is the share of actuals inside [lowest, highest] quantile.
"""

from __future__ import annotations

import numpy as np
import polars as pl

POINT_METRICS = ("MAE", "MSE", "RMSE", "MAPE", "sMAPE", "WAPE", "MASE", "R2",
                 "direction_accuracy", "direction_AUC")


def quantile_columns(columns: list[str]) -> list[str]:
    """The quantile forecast columns of a frame, lowest level first."""
    found = [c for c in columns if c.startswith("q") and _is_level(c[1:])]
    return sorted(found, key=lambda c: float(c[1:]))


def _is_level(text: str) -> bool:
    try:
        return 0 < float(text) < 1
    except ValueError:
        return False


def metric_expressions(quantiles: list[str] | None = None) -> list[pl.Expr]:
    """Aggregations over y_true and y_pred (and mase_scale, y_last for MASE and direction)."""
    y, f = pl.col("y_true"), pl.col("y_pred")
    err = y - f
    abs_err = err.abs()
    nonzero = y != 0
    smape_terms = pl.when((y.abs() + f.abs()) == 0).then(0.0).otherwise(
        200.0 * abs_err / (y.abs() + f.abs()))
    scale = pl.col("mase_scale")
    up = (y > pl.col("y_last")).cast(pl.Float64)
    score = f - pl.col("y_last")
    n_up, n_down = up.sum(), (1.0 - up).sum()
    rank_sum_up = (score.rank("average") * up).sum()
    sst = ((y - y.mean()) ** 2).sum()
    exprs = [
        abs_err.mean().alias("MAE"),
        (err**2).mean().alias("MSE"),
        (err**2).mean().sqrt().alias("RMSE"),
        (100.0 * (abs_err / y.abs()).filter(nonzero).mean()).alias("MAPE"),
        smape_terms.mean().alias("sMAPE"),
        pl.when(y.abs().sum() > 0).then(100.0 * abs_err.sum() / y.abs().sum()).alias("WAPE"),
        (abs_err / scale).filter(scale > 0).mean().alias("MASE"),
        pl.when(sst > 0).then(1.0 - (err**2).sum() / sst).alias("R2"),
        ((f > pl.col("y_last")).cast(pl.Float64) == up).mean().alias("direction_accuracy"),
        pl.when((n_up > 0) & (n_down > 0))
        .then((rank_sum_up - n_up * (n_up + 1) / 2) / (n_up * n_down))
        .alias("direction_AUC"),
    ]
    if quantiles:
        pinball_terms = [
            pl.max_horizontal(float(q[1:]) * (y - pl.col(q)), (float(q[1:]) - 1) * (y - pl.col(q)))
            for q in quantiles
        ]
        exprs.append((pl.sum_horizontal(pinball_terms) / len(quantiles)).mean().alias("pinball"))
        if len(quantiles) >= 2:
            inside = (y >= pl.col(quantiles[0])) & (y <= pl.col(quantiles[-1]))
            exprs.append(inside.cast(pl.Float64).mean().alias("coverage"))
    return exprs


def evaluate(frame: pl.DataFrame, by: list[str] | None = None) -> pl.DataFrame:
    """Metrics per group of ``by`` (overall when empty) in long form: ``*by, metric, value``."""
    quantiles = quantile_columns(frame.columns)
    for column, default in (("y_last", None), ("mase_scale", None)):
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(default, dtype=pl.Float64).alias(column))
    by = by or []
    exprs = metric_expressions(quantiles)
    wide = frame.group_by(by, maintain_order=True).agg(exprs) if by else frame.select(exprs)
    long = wide.unpivot(index=by, variable_name="metric", value_name="value")
    return long.with_columns(pl.col("value").cast(pl.Float64))


def score(y_true: np.ndarray, y_pred: np.ndarray, *, y_last: np.ndarray | float | None = None,
          mase_scale: np.ndarray | float | None = None,
          quantiles: dict[float, np.ndarray] | None = None) -> dict[str, float | None]:
    """Every metric on plain arrays (one group), e.g. ``score(y, yhat)["WAPE"]``."""
    n = len(y_true)
    columns: dict[str, object] = {
        "y_true": np.asarray(y_true, dtype=float), "y_pred": np.asarray(y_pred, dtype=float),
        "y_last": np.broadcast_to(np.nan if y_last is None else y_last, n).astype(float),
        "mase_scale": np.broadcast_to(np.nan if mase_scale is None else mase_scale, n)
        .astype(float),
    }
    for level, values in (quantiles or {}).items():
        columns[f"q{level}"] = np.asarray(values, dtype=float)
    frame = pl.DataFrame(columns).with_columns(
        pl.col("y_last", "mase_scale").fill_nan(None))
    result = evaluate(frame)
    return dict(zip(result["metric"].to_list(), result["value"].to_list(), strict=True))
