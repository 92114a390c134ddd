"""Forecast accuracy metrics, defined once as polars aggregations so that every grouping (per
series, per market, per segment, per window, overall) uses the same formulas.

Conventions (also in docs/metrics.md):

- Percentages: MAPE, sMAPE and WAPE are in percent.
- MAPE skips points whose actual is 0 (their ratio is undefined); it is null when every actual in
  the group is 0. Intermittent demand has many zeros, so prefer WAPE or MASE there.
- sMAPE is ``200 * |y - yhat| / (|y| + |yhat|)`` averaged over points, with 0/0 counted as 0
  (both zero is a perfect forecast).
- WAPE is ``100 * sum|y - yhat| / sum|y|``; null when all actuals are 0.
- MASE divides each absolute error by its (series, window) scale: the in-sample mean absolute
  one-step difference of that series up to the forecast origin. Points whose scale is 0 (a
  constant history) are skipped.
- bias_pct is ``100 * (sum yhat / sum y - 1)``: the share by which the forecasts' total misses
  the actual total (negative: under-forecast, what a planner runs out of stock on); null when
  all actuals are 0. A median forecast of intermittent demand is biased down however low its
  WAPE, so read the two together.
- RMSSE is M5's: per series, the root of the mean squared error divided by the in-sample mean
  squared one-step difference up to the origin (``rmsse_scale``, the naive forecast's squared
  error), then averaged over series. Over several windows a series' squared errors are each
  scaled by their own window's scale before the mean. Series whose scale is 0 are skipped.
  Squared error is minimised by the mean, so RMSSE does not reward an under-forecasting median.
- WRMSSE is M5's revenue-weighted RMSSE: each (series, window)'s RMSSE weighted by the series'
  revenue over the last ``horizon`` periods before the origin (``revenue_weight``; M5 takes the
  last 28 days, its horizon), so the series that earn most count most. Null on data without
  revenue or prices, and where no scored series sold anything in those periods.
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

from salesfusion.data.forecast_frame import (
    CONTEXT_COLUMNS,
    quantile_columns,
    quantile_level,
    quantile_name,
)

POINT_METRICS = ("MAE", "MSE", "RMSE", "MAPE", "sMAPE", "WAPE", "bias_pct", "MASE", "RMSSE",
                 "WRMSSE", "R2", "direction_accuracy", "direction_AUC")
# The per-series columns that identify one scaled series inside a group, where present.
_SERIES = ("item_id", "market", "window")


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
        pl.when(y.sum() > 0).then(100.0 * (f.sum() / y.sum() - 1.0)).alias("bias_pct"),
        (abs_err / scale).filter(scale > 0).mean().alias("MASE"),
        pl.when(sst > 0).then(1.0 - (err**2).sum() / sst).alias("R2"),
        ((f > pl.col("y_last")).cast(pl.Float64) == up).mean().alias("direction_accuracy"),
        pl.when((n_up > 0) & (n_down > 0))
        .then((rank_sum_up - n_up * (n_up + 1) / 2) / (n_up * n_down))
        .alias("direction_AUC"),
    ]
    if quantiles:
        pinball_terms = [
            pl.max_horizontal(quantile_level(q) * (y - pl.col(q)),
                              (quantile_level(q) - 1) * (y - pl.col(q)))
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
    for column in CONTEXT_COLUMNS:
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias(column))
    by = by or []
    exprs = metric_expressions(quantiles)
    wide = frame.group_by(by, maintain_order=True).agg(exprs) if by else frame.select(exprs)
    rmsse = _rmsse(frame, by)
    wide = wide.join(rmsse, on=by, how="left", nulls_equal=True) if by else \
        wide.with_columns(rmsse.get_columns())
    ordered = [*by, *[c for c in _order(wide.columns) if c not in by]]
    long = wide.select(ordered).unpivot(index=by, variable_name="metric", value_name="value")
    return long.with_columns(pl.col("value").cast(pl.Float64))


def _order(columns: list[str]) -> list[str]:
    """RMSSE and WRMSSE right after MASE, as in POINT_METRICS."""
    scaled = ["RMSSE", "WRMSSE"]
    rest = [c for c in columns if c not in scaled]
    at = rest.index("MASE") + 1 if "MASE" in rest else len(rest)
    return [*rest[:at], *scaled, *rest[at:]]


def _rmsse(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """RMSSE per group of ``by``: a series' scaled squared errors averaged, rooted, then
    averaged over the group's series (a nested aggregation, which one polars ``agg`` cannot
    express). Series are summed in key order, so the same forecasts give the same bits
    whatever order their rows came in."""
    series = [c for c in _SERIES if c in frame.columns and c not in by]
    scaled = (frame.filter(pl.col("rmsse_scale") > 0)
              .with_columns(((pl.col("y_true") - pl.col("y_pred")) ** 2
                             / pl.col("rmsse_scale") ** 2).alias("_scaled")))
    keys = [*by, *series]
    rooted = [pl.col("_scaled").mean().sqrt(), pl.col("revenue_weight").first().alias("_w")]
    per_series = (scaled.group_by(keys).agg(rooted).sort(keys) if keys
                  else scaled.select(rooted))
    weight = pl.col("_w").fill_null(0.0)
    scores = [pl.col("_scaled").mean().cast(pl.Float64).alias("RMSSE"),
              pl.when(weight.sum() > 0).then((pl.col("_scaled") * weight).sum() / weight.sum())
              .cast(pl.Float64).alias("WRMSSE")]
    if by:
        return per_series.group_by(by, maintain_order=True).agg(scores)
    return per_series.select(scores)


def score(y_true: np.ndarray, y_pred: np.ndarray, *, y_last: np.ndarray | float | None = None,
          mase_scale: np.ndarray | float | None = None,
          rmsse_scale: np.ndarray | float | None = None,
          quantiles: dict[float, np.ndarray] | None = None) -> dict[str, float | None]:
    """Every metric on plain arrays (one group, one series for RMSSE), e.g.
    ``score(y, yhat)["WAPE"]``."""
    n = len(y_true)
    columns: dict[str, object] = {
        "y_true": np.asarray(y_true, dtype=float), "y_pred": np.asarray(y_pred, dtype=float),
        **{name: np.broadcast_to(np.nan if value is None else value, n).astype(float)
           for name, value in (("y_last", y_last), ("mase_scale", mase_scale),
                               ("rmsse_scale", rmsse_scale))},
    }
    for level, values in (quantiles or {}).items():
        columns[quantile_name(level)] = np.asarray(values, dtype=float)
    frame = pl.DataFrame(columns).with_columns(
        pl.col("y_last", "mase_scale", "rmsse_scale").fill_nan(None))
    result = evaluate(frame)
    return dict(zip(result["metric"].to_list(), result["value"].to_list(), strict=True))
