"""Paired significance between forecasting models: Diebold-Mariano with the Harvey-Leybourne-
Newbold correction and Wilcoxon signed-rank across series (the critical-difference ranking across
datasets is in ``experiments.ranking``).

A mean score per model hides whether one model is reliably better than another or just lucky on
a few series, so the experiment runner reports these tests beside its tables. The forecasts frame
is long: ``dataset, model, trial, item_id, market, timestamp, window, y_true, y_pred``. Two models
are compared only on the rows both forecast (inner join on every key), so a model that skipped a
series, a window or a trial is neither credited nor blamed for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from scipy import stats as sps

from salesfusion.errors import InputError

ROW_KEY = ["dataset", "trial", "item_id", "market", "timestamp", "window"]
SERIES_KEY = ["dataset", "item_id", "market"]
FORECAST_COLUMNS = [*ROW_KEY, "model", "y_true", "y_pred"]
ALTERNATIVES = ("two-sided", "less", "greater")
LOSSES = ("squared", "absolute")
METRICS = ("MAE", "RMSE")
BLOCKS = ("dataset", "dataset_trial")


class TooFewObservations(InputError):
    """The data are valid but too few for the test asked (periods, shared rows). A subclass so
    that ``significance_table`` can note it in its row instead of failing the whole table."""


@dataclass(frozen=True)
class DMResult:
    """Diebold-Mariano test on d_t = loss_a_t - loss_b_t: a negative ``mean_difference`` means A
    is more accurate. ``statistic`` is the HLN-corrected one, compared with Student's t(n - 1);
    ``statistic_uncorrected`` is DM (1995). ``variance_fallback`` is True when the long-run
    variance from lags 0..h-1 was not positive and the lag-0 variance (the test at h = 1) was used.
    """

    statistic: float
    statistic_uncorrected: float
    p_value: float
    n: int
    horizon: int
    mean_difference: float
    long_run_variance: float
    variance_fallback: bool
    alternative: str


@dataclass(frozen=True)
class WilcoxonResult:
    """Wilcoxon signed-rank test on per-series metric pairs (A minus B; lower metric is better)."""

    statistic: float
    p_value: float
    n_series: int
    a_better: int
    b_better: int
    tied: int
    metric: str


def diebold_mariano(loss_a: np.ndarray, loss_b: np.ndarray, horizon: int = 1,
                    alternative: str = "two-sided") -> DMResult:
    """Diebold & Mariano (1995) test with the long-run variance from autocovariances up to lag
    h-1 (rectangular kernel, as DM 1995: h-step errors are MA(h-1)) and the Harvey, Leybourne &
    Newbold (1997) factor sqrt((T + 1 - 2h + h(h-1)/T) / T), compared with t(T-1).

    ``alternative``: ``less`` means A is more accurate (E[d] < 0), ``greater`` that B is.
    Rules: a constant differential has no variance: all zero (identical losses) gives statistic 0
    and p-value 1 for every alternative; a non-zero constant gives statistic +-inf and the limit
    p-value. A non-positive long-run variance falls back, as R's ``forecast::dm.test`` does, to
    the test at h = 1 (lag-0 variance and the h = 1 factor) with ``variance_fallback`` set.
    """
    # Written by hand: neither scipy nor statsmodels has a DM test, and the small packages that do
    # lack the HLN correction or use the normal law; this follows R's forecast::dm.test, against
    # whose published output the tests check it.
    a, b = _losses(loss_a, "loss_a"), _losses(loss_b, "loss_b")
    if a.shape != b.shape:
        raise InputError(f"loss_a and loss_b differ in length ({a.size} vs {b.size})")
    t = a.size
    if t < 3:
        raise TooFewObservations(f"the Diebold-Mariano test needs at least 3 periods, got {t}")
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise InputError(f"horizon must be a positive integer, got {horizon!r}")
    if horizon >= t:
        # The HLN factor is (T-h)(T-h+1)/T^2: zero at h = T.
        raise TooFewObservations(f"horizon {horizon} needs more than {horizon} periods, got {t}")
    _choice(alternative, ALTERNATIVES, "alternative")
    d = a - b
    # A constant d is tested for directly: its float mean can miss d[0] by an ulp, leaving a
    # variance of 1e-34 and a finite but meaningless statistic.
    constant = bool(np.all(d == d[0]))
    mean = float(d[0]) if constant else float(d.mean())
    centred = d - mean
    gammas = [float(centred[k:] @ centred[:t - k]) / t for k in range(int(horizon))]
    if constant or gammas[0] <= 0.0:
        infinite = float(np.copysign(np.inf, mean)) if mean != 0.0 else 0.0
        p_value = 1.0 if mean == 0.0 else _t_p_value(infinite, t - 1, alternative)
        return DMResult(infinite, infinite, p_value, t, int(horizon), mean, 0.0, False, alternative)
    variance = gammas[0] + 2.0 * sum(gammas[1:])
    fallback = variance <= 0.0
    h = 1 if fallback else int(horizon)
    if fallback:
        variance = gammas[0]
    uncorrected = mean / np.sqrt(variance / t)
    statistic = uncorrected * np.sqrt((t + 1 - 2 * h + h * (h - 1) / t) / t)
    return DMResult(float(statistic), float(uncorrected), _t_p_value(statistic, t - 1, alternative),
                    t, int(horizon), mean, float(variance), fallback, alternative)


def panel_dm(forecasts: pl.DataFrame | pd.DataFrame, model_a: str, model_b: str, horizon: int,
             loss: str = "squared", alternative: str = "two-sided",
             dataset: str | None = None) -> DMResult:
    """DM test of two models on a panel: on the rows both forecast, the loss at each period
    (timestamp) is the mean over every series, trial and window forecasting it, giving one
    differential series over the dataset's forecast periods in time order.

    Why the period mean: DM needs one time series, and averaging across series keeps the time
    dependence the test corrects for while letting every series count. ``horizon`` is the
    backtest horizon: errors of forecasts made at one origin share it, so the differential is
    treated as MA(horizon-1). One dataset at a time (its periods are its own calendar): pass
    ``dataset`` when the frame holds several.
    """
    frame = _frame(forecasts)
    _choice(loss, LOSSES, "loss")
    if dataset is None and frame["dataset"].n_unique() > 1:
        names = ", ".join(map(str, frame["dataset"].unique().sort().to_list()))
        raise InputError(f"panel_dm compares one dataset at a time; pass dataset=, one of: {names}")
    pairs = _paired(frame, model_a, model_b, dataset)
    periods = _mean_losses(pairs, ["timestamp"], loss)
    return diebold_mariano(periods["a"].to_numpy(), periods["b"].to_numpy(), horizon, alternative)


def wilcoxon_across_series(forecasts: pl.DataFrame | pd.DataFrame, model_a: str, model_b: str,
                           metric: str = "MAE", alternative: str = "two-sided",
                           dataset: str | None = None) -> WilcoxonResult:
    """Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, paired) across series (dataset,
    item_id, market) of each model's metric over the rows both forecast (all trials, windows and
    periods of the series). It asks whether A beats B on most series, not on average, so one
    huge series cannot decide it. Tied series are dropped by the test (scipy's default); if every
    series ties, the statistic is 0 and the p-value 1 (what scipy returns, without its warning).
    """
    frame = _frame(forecasts)
    _choice(metric, METRICS, "metric")
    _choice(alternative, ALTERNATIVES, "alternative")
    pairs = _paired(frame, model_a, model_b, dataset)
    loss = "absolute" if metric == "MAE" else "squared"
    per_series = _mean_losses(pairs, SERIES_KEY, loss)
    a, b = per_series["a"].to_numpy(), per_series["b"].to_numpy()
    if metric == "RMSE":
        a, b = np.sqrt(a), np.sqrt(b)
    counts = (int((a < b).sum()), int((a > b).sum()), int((a == b).sum()))
    if counts[2] == a.size:
        return WilcoxonResult(0.0, 1.0, a.size, *counts, metric)
    result = sps.wilcoxon(a, b, alternative=alternative)
    return WilcoxonResult(float(result.statistic), float(result.pvalue), a.size, *counts, metric)


def significance_table(forecasts: pl.DataFrame | pd.DataFrame, models: Sequence[str],
                       horizon: int, baseline: str | None = None, loss: str = "squared",
                       metric: str = "MAE", alternative: str = "two-sided") -> pl.DataFrame:
    """Per dataset, panel DM and Wilcoxon-across-series for every pair of ``models`` (in the
    order given) or, with ``baseline``, for each model against it (model as A, baseline as B).
    A pair whose data are too few for a test keeps its row, with nulls and the reason in ``note``,
    so a table shows what was not tested rather than silently dropping it."""
    frame = _frame(forecasts)
    models = list(models)
    if len(set(models)) != len(models):
        raise InputError(f"models are listed more than once: {models}")
    _known(frame, [*models, *([baseline] if baseline is not None else [])])
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise InputError(f"horizon must be a positive integer, got {horizon!r}")
    if baseline is None:
        pairs = list(itertools.combinations(models, 2))
    else:
        pairs = [(model, baseline) for model in models if model != baseline]
    if not pairs:
        raise InputError("significance_table needs two models, or a model besides the baseline")
    rows = []
    for name in frame["dataset"].unique().sort().to_list():
        for model_a, model_b in pairs:
            rows.append(_table_row(frame, name, model_a, model_b, horizon, loss, metric,
                                   alternative))
    return pl.DataFrame(rows, schema=TABLE_SCHEMA, orient="row")


TABLE_SCHEMA = {
    "dataset": pl.Utf8, "model_a": pl.Utf8, "model_b": pl.Utf8, "loss": pl.Utf8,
    "dm_statistic": pl.Float64, "dm_statistic_uncorrected": pl.Float64, "dm_p_value": pl.Float64,
    "dm_mean_difference": pl.Float64, "dm_periods": pl.Int64, "dm_variance_fallback": pl.Boolean,
    "metric": pl.Utf8, "wilcoxon_statistic": pl.Float64, "wilcoxon_p_value": pl.Float64,
    "n_series": pl.Int64, "a_better": pl.Int64, "b_better": pl.Int64, "tied": pl.Int64,
    "note": pl.Utf8,
}


def _table_row(frame: pl.DataFrame, dataset: Any, model_a: str, model_b: str, horizon: int,
               loss: str, metric: str, alternative: str) -> tuple:
    notes: list[str] = []
    dm_part: tuple = (None,) * 6
    wx_part: tuple = (None,) * 6
    try:
        dm = panel_dm(frame, model_a, model_b, horizon, loss, alternative, dataset)
        dm_part = (dm.statistic, dm.statistic_uncorrected, dm.p_value, dm.mean_difference, dm.n,
                   dm.variance_fallback)
    except TooFewObservations as error:
        notes.append(f"DM: {error}")
    try:
        wx = wilcoxon_across_series(frame, model_a, model_b, metric, alternative, dataset)
        wx_part = (wx.statistic, wx.p_value, wx.n_series, wx.a_better, wx.b_better, wx.tied)
    except TooFewObservations as error:
        notes.append(f"Wilcoxon: {error}")
    return (str(dataset), model_a, model_b, loss, *dm_part, metric, *wx_part,
            "; ".join(notes) or None)


def _losses(values: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as error:
        raise InputError(f"{name} must be numbers: {error}") from None
    if array.ndim != 1:
        raise InputError(f"{name} must be one-dimensional, got shape {array.shape}")
    bad = int((~np.isfinite(array)).sum())
    if bad:
        raise InputError(f"{name} has {bad} missing or non-finite value(s)")
    return array


def _choice(value: str, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def _t_p_value(statistic: float, df: int, alternative: str) -> float:
    if alternative == "two-sided":
        return float(2.0 * sps.t.sf(abs(statistic), df))
    if alternative == "less":
        return float(sps.t.cdf(statistic, df))
    return float(sps.t.sf(statistic, df))


def _frame(forecasts: Any) -> pl.DataFrame:
    if isinstance(forecasts, pd.DataFrame):
        forecasts = pl.from_pandas(forecasts)
    if not isinstance(forecasts, pl.DataFrame):
        raise InputError(f"forecasts must be a polars or pandas DataFrame, got {type(forecasts)}")
    missing = [c for c in FORECAST_COLUMNS if c not in forecasts.columns]
    if missing:
        raise InputError(f"the forecasts frame lacks column(s): {', '.join(missing)}")
    return forecasts


def _known(frame: pl.DataFrame, models: Sequence[str]) -> None:
    known = frame["model"].unique().sort().to_list()
    for model in models:
        if model not in known:
            raise InputError(f"unknown model {model!r}; the forecasts have: "
                             f"{', '.join(map(str, known))}")


def _paired(frame: pl.DataFrame, model_a: str, model_b: str,
            dataset: Any | None) -> pl.DataFrame:
    """Rows both models forecast: ``ROW_KEY``, ``y_true``, ``pred_a``, ``pred_b``."""
    if model_a == model_b:
        raise InputError(f"cannot compare model {model_a!r} with itself")
    _known(frame, [model_a, model_b])
    if dataset is not None:
        if dataset not in frame["dataset"].unique().to_list():
            raise InputError(f"unknown dataset {dataset!r} in the forecasts frame")
        frame = frame.filter(pl.col("dataset") == dataset)
    sides = []
    for model, column in ((model_a, "pred_a"), (model_b, "pred_b")):
        rows = frame.filter(pl.col("model") == model).select(
            *ROW_KEY, pl.col("y_true").cast(pl.Float64), pl.col("y_pred").cast(pl.Float64)
            .alias(column))
        for key in ROW_KEY:
            if rows[key].null_count():
                raise InputError(f"model {model!r} has {rows[key].null_count()} row(s) with no "
                                 f"{key}: every key column must be filled")
        repeated = int(rows.select(ROW_KEY).is_duplicated().sum())
        if repeated:
            raise InputError(f"model {model!r} has {repeated} rows sharing one "
                             f"{'/'.join(ROW_KEY)}: each forecast must appear once")
        sides.append(rows)
    joined = sides[0].join(sides[1], on=ROW_KEY, how="inner", suffix="_b")
    if joined.height == 0:
        raise TooFewObservations(f"models {model_a!r} and {model_b!r} share no forecast rows")
    finite = pl.all_horizontal(pl.col(c).is_finite().fill_null(False)
                               for c in ("y_true", "y_true_b", "pred_a", "pred_b"))
    bad = joined.height - int(joined.select(finite.sum()).item())
    if bad:
        raise InputError(f"{bad} paired row(s) of {model_a!r} vs {model_b!r} have a missing or "
                         "non-finite y_true or y_pred")
    gap = (pl.col("y_true") - pl.col("y_true_b")).abs() > 1e-9 * (1.0 + pl.col("y_true").abs())
    differ = int(joined.select(gap.sum()).item())
    if differ:
        raise InputError(f"{differ} paired row(s) of {model_a!r} vs {model_b!r} disagree on "
                         "y_true: they are not forecasts of the same actuals")
    return joined.drop("y_true_b")


def _mean_losses(pairs: pl.DataFrame, by: list[str], loss: str) -> pl.DataFrame:
    """Mean loss of each model (columns ``a``, ``b``) per group of ``by``, in order of ``by``."""
    errors = {side: pl.col(f"pred_{side}") - pl.col("y_true") for side in ("a", "b")}
    means = [(e.pow(2) if loss == "squared" else e.abs()).mean().alias(side)
             for side, e in errors.items()]
    return pairs.group_by(by).agg(means).sort(by)
