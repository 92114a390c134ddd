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
from salesfusion.errors import InputError
from salesfusion.evaluation.backtest import forecast_window, run_backtest
from salesfusion.evaluation.metrics import evaluate
from salesfusion.evaluation.protocol import BacktestProtocol
from salesfusion.models.base import Forecaster
from salesfusion.training.hooks import StopTraining, listen_to_epochs

METRICS = ("RMSE", "MAE", "MSE", "WAPE", "sMAPE", "MASE")


@dataclass(frozen=True)
class TuningData:
    """The periods a search may look at, and how a trial is scored on them."""

    panel: Panel  # the tuning data: the full panel without its test periods
    horizon: int
    metric: str = "RMSE"
    test: Panel | None = None  # the full panel, for the final model's test metrics only

    @classmethod
    def from_panel(cls, panel: Panel, test_periods: int, horizon: int,
                   metric: str = "RMSE") -> TuningData:
        """Cut the last ``test_periods`` periods off ``panel``; they serve only to score the
        final model after the search."""
        if metric not in METRICS:
            raise InputError(f"unknown tuning metric '{metric}'; use one of {', '.join(METRICS)}")
        periods = panel.periods.sort()
        keep = len(periods) - test_periods
        if keep < horizon + 2:
            raise InputError(f"the panel has {len(periods)} periods: without its "
                             f"{test_periods} test periods, too few for a validation part of "
                             f"{horizon} and a training part (needs {test_periods + horizon + 2})")
        tuning = panel.until(periods[keep - 1]) if test_periods else panel
        return cls(panel=tuning, horizon=horizon, metric=metric,
                   test=panel if test_periods else None)

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
    value = metric_of(forecasts, data.metric)
    seconds = time.perf_counter() - started
    if value is None or not math.isfinite(value):
        return TrialOutcome("failed", None, seconds, losses, [],
                            f"the validation forecast has no finite {data.metric}")
    return TrialOutcome("complete", value, seconds, losses, _notes(forecasts))


def metric_of(forecasts: pl.DataFrame, metric: str) -> float | None:
    table = evaluate(forecasts)
    value = table.filter(pl.col("metric") == metric)["value"]
    return None if value.is_empty() or value[0] is None else float(value[0])


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
