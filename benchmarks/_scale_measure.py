"""What the steps of ``_scale_steps.py`` share: the clock and memory of the work, the inputs
(our panel, the peers' frame) and both LightGBMs' settings."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
from _provenance import requested_threads

MONDAY = "1970-01-05"  # pytorch-forecasting's time_idx: weeks since a Monday
CV = {"h": 4, "n_windows": 3, "step_size": 4}  # ours: BacktestProtocol(4, 3, 4, refit=True)
LOOKBACK = 16
BEFORE: dict[str, float] = {}  # ru_maxrss and the load average when the timed work starts


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mib(field: str) -> float | None:
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.exists() else []
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith(field)), None)


def timed(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    if "mib" not in BEFORE:  # the step's first timed call: its work starts here
        BEFORE["mib"], BEFORE["rss_mib"] = peak_mib(), _status_mib("VmRSS")
        BEFORE["load"] = os.getloadavg()[0]  # other work on the machine inflates wall times
        try:  # Linux: restart the high-water mark, so that it measures the work alone
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            BEFORE["rss_mib"] = None
    started = time.perf_counter()
    return call(*args, **kwargs), time.perf_counter() - started


def work_mib() -> float | None:
    """The memory the work added: the resident set's high-water mark since the work started,
    less the resident set then (interpreter, imports and inputs); None where Linux's
    ``clear_refs`` is not available."""
    high = _status_mib("VmHWM")
    return None if BEFORE.get("rss_mib") is None or high is None else high - BEFORE["rss_mib"]


def our_panel(folder: Path) -> Any:
    if folder.name == "or":  # the bundled dataset's own panel, covariates and all
        from salesfusion.datasets.online_retail import online_retail

        return online_retail().panel("W")
    from salesfusion.data.panel import build_panel
    from salesfusion.data.spec import load_spec
    from salesfusion.data.validate import load_tables

    return build_panel(load_tables(load_spec(folder / "spec.yaml")), "W")


def peer_frame(folder: Path) -> Any:
    """unique_id, ds, y (pandas) for statsforecast and mlforecast: the series longer than the
    12 test weeks (statsforecast refuses the others; every synthetic series is longer, the
    Online Retail panel has late launches, which ours forecasts from their first week)."""
    test_weeks = CV["h"] + CV["step_size"] * (CV["n_windows"] - 1)
    return pl.read_parquet(folder / "sales.parquet").select(
        pl.concat_str("item_id", "market", separator="|").alias("unique_id"),
        pl.col("week").cast(pl.Datetime("ns")).alias("ds"),
        pl.col("quantity").cast(pl.Float64).alias("y")).filter(
        pl.len().over("unique_id") > test_weeks).to_pandas()


def our_lightgbm(rounds: int) -> Any:
    from salesfusion.models.registry import create_model

    return create_model("lightgbm", horizon=4, max_rounds=rounds, early_stopping=False)


def mlforecast(rounds: int) -> Any:
    """Our BoosterConfig's settings and the same rounds; one model per step (direct, as ours).
    ``min_samples=1`` (with ``dropna=False`` when fitting) trains on every origin from a
    series' first week, as ours does (LightGBM reads a missing lag as missing); mlforecast's
    defaults would drop each series' first 26 weeks, half the rows of a 52-week panel."""
    import lightgbm as lgb
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean

    booster = lgb.LGBMRegressor(
        objective="l1", learning_rate=0.05, num_leaves=31, min_child_samples=50,
        colsample_bytree=0.8, subsample=0.8, subsample_freq=1, reg_lambda=1.0,
        n_estimators=rounds, n_jobs=requested_threads(), random_state=0, verbosity=-1)
    return MLForecast(models={"lgbm": booster}, freq="W-MON", lags=list(range(1, 9)),
                      lag_transforms={1: [RollingMean(w, min_samples=1) for w in (4, 8, 13, 26)]},
                      date_features=[week, month])


def week(dates: Any) -> Any:  # pandas 2 has no DatetimeIndex.week
    return dates.isocalendar().week.to_numpy()


def month(dates: Any) -> Any:
    return dates.month
