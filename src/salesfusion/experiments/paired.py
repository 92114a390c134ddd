"""The paired significance tests (``experiments.stats``) by the experiment's selection metric.

``stats`` tests the absolute or squared error of ``y_pred``; each selection metric is
re-expressed as one of those, so the same tested code answers for every metric:

- ``wape``, ``mae``: absolute error (WAPE of fixed actuals is total absolute error over their
  total, so a model with the lower absolute loss has the lower WAPE).
- ``rmsse``: each row's error divided by its series' ``rmsse_scale`` (rows without a positive
  scale dropped, as RMSSE drops them), tested as squared error: DM on the mean scaled squared
  error per period, Wilcoxon on each series' RMSSE.
- ``pinball``: each row's pinball loss (``scoring.metrics``' definition, averaged over the
  model's own quantile columns), tested as absolute loss.
- ``bias_abs``: a bias is a total, not a mean of per-row losses, so no row loss tests it; the
  tests use absolute error and each row's note says so.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from salesfusion.data.forecast_frame import model_rows
from salesfusion.experiments.stats import significance_table
from salesfusion.scoring.metrics import evaluate
from salesfusion.scoring.selection import check_metric

# (stats' loss, stats' Wilcoxon metric, what the table's loss and metric columns say)
_TESTED = {"wape": ("absolute", "MAE", "absolute error", "MAE"),
           "mae": ("absolute", "MAE", "absolute error", "MAE"),
           "bias_abs": ("absolute", "MAE", "absolute error", "MAE"),
           "rmsse": ("squared", "RMSE", "scaled squared error", "RMSSE"),
           "pinball": ("absolute", "MAE", "pinball loss", "pinball")}
BIAS_NOTE = "bias is a total, not a per-row loss: tested on absolute error"


def metric_significance(forecasts: pl.DataFrame, models: Sequence[str], horizon: int,
                        baseline: str, metric: str) -> pl.DataFrame:
    """``stats.significance_table`` of ``models`` against ``baseline`` by ``metric``."""
    metric = check_metric(metric)
    loss, wilcoxon, loss_name, metric_name = _TESTED[metric]
    table = significance_table(_as_errors(forecasts, metric), models, horizon,
                               baseline=baseline, loss=loss, metric=wilcoxon)
    note = pl.col("note")
    if metric == "bias_abs":
        note = pl.concat_str([pl.lit(BIAS_NOTE), note], separator="; ", ignore_nulls=True)
    return table.with_columns(pl.lit(loss_name).alias("loss"), pl.lit(metric_name).alias("metric"),
                              note.alias("note"))


def _as_errors(forecasts: pl.DataFrame, metric: str) -> pl.DataFrame:
    """The forecasts with ``y_pred`` replaced by the row loss whose absolute or squared value
    the tests take (``y_true`` 0), for rmsse and pinball; unchanged otherwise."""
    if metric == "rmsse":
        return forecasts.filter(pl.col("rmsse_scale") > 0).with_columns(
            ((pl.col("y_pred") - pl.col("y_true")) / pl.col("rmsse_scale")).alias("y_pred"),
            pl.lit(0.0).alias("y_true"))
    if metric != "pinball":
        return forecasts
    parts = []
    for name in forecasts["model"].unique(maintain_order=True).to_list():
        # Each model's own quantile columns: another model's, null on its rows, must not count.
        rows = model_rows(forecasts, name).with_row_index("_row")
        per_row = evaluate(rows, ["_row"]).filter(pl.col("metric") == "pinball")
        parts.append(rows.join(per_row.select("_row", pl.col("value").alias("_loss")),
                               on="_row", how="left")
                     .with_columns(pl.col("_loss").alias("y_pred"), pl.lit(0.0).alias("y_true"))
                     .drop("_row", "_loss"))
    return pl.concat(parts, how="diagonal_relaxed")
