"""What a trial scores: a configuration trained on the tuning data without its validation part,
forecasting that part.

The tuning data is the panel with its test periods cut off before anything else happens
(``TuningData.from_panel``): a searcher, a trial and the final model never see a test period.
Its last ``horizon`` periods are the validation part (``data.splits.ValidationPeriods``, the rule
every model's early stopping follows inside ``fit``): a trial fits on the periods before it and
forecasts it, and the score is a metric of that forecast (RMSE by default, as seed 000's
reward). The forecast is the rolling backtest's own, one window, so a trial's score is exactly
a backtest metric computed on the validation part.

After the search, the best configuration is trained on the whole tuning data, and, when there
are test periods, forecasts the first ``horizon`` of them: the test metrics of the search's
final model, computed once the search is over.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.data.splits import BacktestProtocol
from salesfusion.errors import InputError
from salesfusion.models.backtest import forecast_window, run_backtest
from salesfusion.models.base import Forecaster
from salesfusion.scoring.metrics import evaluate
from salesfusion.scoring.selection import (
    DEFAULT_METRIC,
    SELECTION_METRICS,
    MetricUnavailable,
    check_metric,
    metric_label,
    selection_rows,
    selection_score,
)
from salesfusion.training.hooks import StopTraining, listen_to_epochs

# Metrics a search logged before the selection metrics were unified may name: read only from a
# resumed search's log (a new search takes one of SELECTION_METRICS).
LEGACY_METRICS = ("RMSE", "MSE", "sMAPE", "MASE")


def tuning_metric(metric: str) -> str:
    """A search's metric: a selection metric (case-insensitive), or a legacy log's own name."""
    return metric if metric in LEGACY_METRICS else check_metric(metric, "tuning")


def metric_display(metric: str) -> str:
    """How log lines and files name the metric (``RMSSE``, ``bias_abs``, legacy ``RMSE``)."""
    return metric if metric in LEGACY_METRICS else metric_label(metric)


@dataclass(frozen=True)
class TuningData:
    """The periods a search may look at, and how a trial is scored on them."""

    panel: Panel  # the tuning data: the full panel without its test periods
    horizon: int
    metric: str = DEFAULT_METRIC
    test: Panel | None = None  # the full panel, for the final model's test metrics only

    @classmethod
    def from_panel(cls, panel: Panel, test_periods: int, horizon: int,
                   metric: str = DEFAULT_METRIC) -> TuningData:
        """Cut the last ``test_periods`` periods off ``panel``; they serve only to score the
        final model after the search."""
        metric = tuning_metric(metric)
        periods = panel.periods.sort()
        keep = len(periods) - test_periods
        if keep < horizon + 2:
            raise InputError(f"the panel has {len(periods)} periods: without its "
                             f"{test_periods} test periods, too few for a validation part of "
                             f"{horizon} and a training part (needs {test_periods + horizon + 2})")
        tuning = panel.until(periods[keep - 1]) if test_periods else panel
        return cls(panel=tuning, horizon=horizon, metric=metric,
                   test=panel if test_periods else None)

    @property
    def label(self) -> str:
        return metric_display(self.metric)

    def fingerprint(self) -> dict[str, Any]:
        """What a resumed search checks: the same tuning data as the search it continues."""
        import hashlib

        data = self.panel.data.sort(*SERIES_KEY, "timestamp")
        digest = hashlib.sha256()
        for column in ("item_id", "market", "timestamp", "y"):
            digest.update(data[column].cast(pl.String).str.join("\x1f").item().encode())
        periods = self.panel.periods.sort()
        return {"series": self.panel.n_series, "rows": data.height,
                "first": str(periods[0]), "last": str(periods[-1]), "sha256": digest.hexdigest()}


@dataclass(frozen=True)
class TrialOutcome:
    status: str  # complete | pruned | failed
    score: float | None
    seconds: float
    epochs: list[float]  # validation loss of each epoch heard (neural models)
    notes: list[str]
    error: str | None = None


def run_trial(model_type: type[Forecaster], params: dict[str, Any], data: TuningData,
              report: Callable[[int, float], bool] | None = None) -> TrialOutcome:
    """Train ``params`` on the tuning data without its validation part and score the forecast
    of that part. ``report`` hears each epoch's validation loss and returns True to prune."""
    started = time.perf_counter()
    losses: list[float] = []

    def listener(epoch: int, value: float) -> None:
        losses.append(value)
        if report is not None and report(epoch, value):
            raise StopTraining(epoch, "pruned by the searcher")

    model: Forecaster | None = None
    try:
        model = model_type(**params)
        with listen_to_epochs(listener):
            forecasts = run_backtest(model, data.panel,
                                     BacktestProtocol(horizon=data.horizon, windows=1))
    except StopTraining:
        return TrialOutcome("pruned", None, time.perf_counter() - started, losses, [])
    except (InputError, ValueError, RuntimeError, ArithmeticError) as exc:
        # A configuration the data cannot train (too long a lookback, a diverging network)
        # is a failed trial, not a failed search.
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        return TrialOutcome("failed", None, time.perf_counter() - started, losses, [], reason)
    # A MetricUnavailable here (pinball of a model without quantiles) ends the search: no
    # configuration of it could be scored.
    value = metric_of(forecasts, data.metric)
    seconds = time.perf_counter() - started
    if value is None or not math.isfinite(value):
        return TrialOutcome("failed", None, seconds, losses, [],
                            f"the validation forecast has no finite {data.label}")
    return TrialOutcome("complete", value, seconds, losses, _notes(forecasts))


def check_scorable(model: Forecaster, metric: str) -> None:
    """Refuse (``MetricUnavailable``, one line) a search by pinball of a model that forecasts
    no quantiles, before any trial trains: none of its configurations could be scored."""
    if metric == "pinball" and not model.supports_quantiles:
        raise MetricUnavailable(f"metric pinball needs quantile forecasts but {model.name} "
                                f"gives none; choose another metric (rmsse, wape, mae or "
                                f"bias_abs) or a model that forecasts quantiles")


def metric_of(forecasts: pl.DataFrame, metric: str) -> float | None:
    """The forecasts' score by the search's metric, lower is better."""
    if metric in SELECTION_METRICS:
        return selection_score(forecasts, metric, "the validation forecasts")
    return test_value(evaluate(forecasts), metric)


def test_value(table: pl.DataFrame, metric: str) -> float | None:
    """The search's metric read from a long metrics table (``evaluate``'s), as it scored."""
    rows = (selection_rows(table, metric) if metric in SELECTION_METRICS
            else table.filter(pl.col("metric") == metric))["value"]
    return None if rows.is_empty() or rows[0] is None else float(rows[0])


def _notes(forecasts: pl.DataFrame) -> list[str]:
    return [f"{forecasts.height:,} validation points of "
            f"{forecasts.select(SERIES_KEY).n_unique():,} series"]


def fit_final(model_type: type[Forecaster], params: dict[str, Any],
              data: TuningData) -> tuple[Forecaster, pl.DataFrame | None]:
    """The model trained with ``params`` on the whole tuning data, and (with test periods) its
    metrics on the first ``horizon`` test periods: overall and per market."""
    model = model_type(**params).fit(data.panel)
    if data.test is None:
        return model, None
    joined = forecast_window(model, data.test, data.panel, data.horizon, model.name, 0)
    overall = evaluate(joined).with_columns(pl.lit("all").alias("market"))
    by_market = evaluate(joined, ["market"])
    return model, pl.concat([overall.select(by_market.columns), by_market])
