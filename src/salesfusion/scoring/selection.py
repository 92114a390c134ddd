"""Choosing between forecasts by the planner's loss: the one definition of "score a forecast by
metric name, lower is better" that ensembles, ``tune``, ``experiment`` and the backtest report's
"which model to trust" all use.

The metrics themselves are ``scoring.metrics``'; this module only names which of them a
choice may be made by, and how each becomes a lower-is-better score:

- ``rmsse`` (the default): M5's RMSSE. Squared error is minimised by the mean, so it does not
  reward a median that under-forecasts intermittent demand the way WAPE does.
- ``wape``: WAPE (percent); rewards the median.
- ``mae``: mean absolute error (units).
- ``bias_abs``: ``|bias_pct|``, how far the total forecast misses the total actual (percent).
- ``pinball``: the pinball loss averaged over the forecast's quantile columns; forecasts without
  quantiles cannot be scored by it (``MetricUnavailable``).
"""

from __future__ import annotations

from typing import Literal, get_args

import polars as pl

from salesfusion.data.forecast_frame import quantile_columns
from salesfusion.errors import InputError
from salesfusion.scoring.metrics import evaluate

SelectionMetric = Literal["rmsse", "wape", "mae", "bias_abs", "pinball"]
SELECTION_METRICS: tuple[str, ...] = get_args(SelectionMetric)
DEFAULT_METRIC = "rmsse"
# The column of ``evaluate``'s table each is read from.
_COLUMNS = {"rmsse": "RMSSE", "wape": "WAPE", "mae": "MAE", "bias_abs": "bias_pct",
            "pinball": "pinball"}
# How each is shown in tables and log lines: the metrics.csv name where there is one (bias_abs,
# |bias_pct|, is not a column there).
_LABELS = {"rmsse": "RMSSE", "wape": "WAPE", "mae": "MAE", "bias_abs": "bias_abs",
           "pinball": "pinball"}
METRIC_HELP = ("What to choose by, lower is better: rmsse (default; rewards the mean), wape "
               "(rewards the median), mae, bias_abs (|bias_pct|) or pinball (needs quantiles).")


class MetricUnavailable(InputError):
    """The forecasts cannot be scored by the metric asked (pinball without quantiles, RMSSE
    without a scale). A subclass so that a tuning trial re-raises it instead of counting it as
    one failed configuration: no configuration of the search could be scored."""


def check_metric(name: str, what: str = "selection") -> SelectionMetric:
    """``name`` as a selection metric (case-insensitive: ``WAPE`` is ``wape``), or an error
    listing the choices."""
    found = str(name).strip().lower()
    if found not in SELECTION_METRICS:
        raise InputError(f"unknown {what} metric {name!r}; use one of "
                         f"{', '.join(SELECTION_METRICS)}")
    return found  # type: ignore[return-value]


def metric_label(metric: str) -> str:
    """The metric as tables and log lines show it: ``RMSSE``, ``WAPE``, ``bias_abs``..."""
    return _LABELS[check_metric(metric)]


def metric_column(metric: str) -> str:
    """The metric name in ``evaluate``'s (and ``metrics.csv``'s) table it is read from."""
    return _COLUMNS[check_metric(metric)]


def selection_rows(table: pl.DataFrame, metric: str) -> pl.DataFrame:
    """The rows of a long metrics table (``..., metric, value``: ``evaluate``, ``metrics.csv``)
    that score ``metric``, as lower-is-better values labelled ``metric_label(metric)``."""
    metric = check_metric(metric)
    rows = table.filter(pl.col("metric") == _COLUMNS[metric])
    value = pl.col("value").abs() if metric == "bias_abs" else pl.col("value")
    return rows.with_columns(value.alias("value"), pl.lit(_LABELS[metric]).alias("metric"))


def require_scorable(frame: pl.DataFrame, metric: str, what: str = "the forecasts") -> None:
    """Raise ``MetricUnavailable`` (one line naming ``what``) when ``frame`` lacks what
    ``metric`` needs: quantile columns for pinball, ``rmsse_scale`` for RMSSE."""
    metric = check_metric(metric)
    if metric == "pinball" and not quantile_columns(frame.columns):
        raise unavailable(metric, what)
    if metric == "rmsse" and ("rmsse_scale" not in frame.columns
                              or frame["rmsse_scale"].is_null().all()):
        raise unavailable(metric, what)


def unavailable(metric: str, what: str) -> MetricUnavailable:
    """The one-line error of forecasts (``what``) that ``metric`` cannot score."""
    if metric == "pinball":
        return MetricUnavailable(f"metric pinball needs quantile forecasts (columns q0.1, "
                                 f"q0.9, ...) but {what} have none; choose another --metric "
                                 f"(rmsse, wape, mae or bias_abs) or models that forecast "
                                 f"quantiles")
    return MetricUnavailable(f"metric {metric} needs each series' scale (rmsse_scale, from its "
                             f"history before the forecast) but {what} have none; choose "
                             f"another --metric")


def selection_score(frame: pl.DataFrame, metric: str = DEFAULT_METRIC,
                    what: str = "the forecasts") -> float | None:
    """``frame``'s score by ``metric``, lower is better: a forecast frame (``y_true``,
    ``y_pred``, any ``q<level>`` columns, ``rmsse_scale`` and the series keys for RMSSE), scored
    by ``scoring.metrics.evaluate``. None when the metric is undefined on these rows (every
    actual 0 for WAPE, every scale 0 for RMSSE)."""
    require_scorable(frame, metric, what)
    rows = selection_rows(evaluate(frame), metric)["value"]
    return None if rows.is_empty() or rows[0] is None else float(rows[0])
