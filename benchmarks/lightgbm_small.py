"""LightGBM on a small monthly panel, ours against mlforecast's, in one run: the case of a
planner's few hundred monthly series, where a backtest should take seconds.

The panel: ``--series`` (350) seeded series of ``--months`` (60) months, Poisson demand around a
log-normal level with a yearly season and a slow random-walk trend. Both sides backtest the same
``--windows`` (3) windows of ``--horizon`` (6) months, refitting at every origin:

- ours: ``lightgbm`` as the CLI runs it (early-stopped probe fit, then a refit, up to 500
  rounds), and with ``--rounds`` (100) fixed rounds and no probe;
- mlforecast: ``LGBMRegressor`` with its default 100 rounds, lags 1, 2, 3, 6, 12, rolling means
  of 3 and 12 and the month (its ``cross_validation``; needs the ``bench`` extra).

Printed and written: wall seconds (best of ``--repeats``), the ratio ours / mlforecast, and
WAPE and bias % of each over the same rows. Ours trains one model for every step ahead (the
step is a feature, so a window's rows are the horizon times mlforecast's recursive one-step
rows) and reads more features; that, not the objective, is where its time goes.

Run: .venv/bin/python benchmarks/lightgbm_small.py [--series 350] [--months 60] [--repeats 3]
     [--json benchmarks/results/lightgbm_small.json]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import _provenance  # noqa: F401 (before lightgbm: passive OpenMP waits)
import numpy as np
import polars as pl
from _provenance import provenance, summary_line
from rich.console import Console

from salesfusion.data.panel import Panel
from salesfusion.data.splits import BacktestProtocol
from salesfusion.evaluation.runner import backtest_models
from salesfusion.models.registry import create_model


def monthly_panel(series: int, months: int, seed: int) -> pl.DataFrame:
    """``unique_id, ds, y`` of the seeded panel (see the module docstring)."""
    rng = np.random.default_rng(seed)
    level = np.exp(rng.normal(2, 1, series))
    season = 1 + 0.3 * np.sin(2 * np.pi * np.arange(months) / 12)[None, :]
    trend = np.exp(np.cumsum(rng.normal(0, 0.05, (series, months)), axis=1))
    y = rng.poisson(level[:, None] * season * trend).astype(float)
    stamps = pl.datetime_range(datetime(2019, 1, 1), datetime(2019 + (months - 1) // 12,
                               (months - 1) % 12 + 1, 1), "1mo", eager=True, time_unit="us")
    return pl.DataFrame({"unique_id": np.repeat([f"S{i:04d}" for i in range(series)], months),
                         "ds": np.tile(stamps.to_numpy(), series), "y": y.ravel()})


def _scores(y: np.ndarray, forecast: np.ndarray) -> dict[str, float]:
    return {"wape": float(100 * np.abs(y - forecast).sum() / y.sum()),
            "bias_pct": float(100 * (forecast.sum() / y.sum() - 1))}


def ours(frame: pl.DataFrame, args: argparse.Namespace, **params: Any) -> dict[str, Any]:
    panel = Panel(data=frame.select(pl.col("unique_id").alias("item_id"),
                                    pl.lit("ALL").alias("market"), pl.col("ds").alias("timestamp"),
                                    "y").sort("item_id", "market", "timestamp"), freq="M")
    protocol = BacktestProtocol(horizon=args.horizon, windows=args.windows)
    best, run = float("inf"), None
    for _ in range(args.repeats):
        model = create_model("lightgbm", horizon=args.horizon, **params)
        started = time.perf_counter()
        run = backtest_models(panel, [model], protocol)
        best = min(best, time.perf_counter() - started)
    rows = run.forecasts
    return {"seconds": best, "rows": rows.height,
            **_scores(rows["y_true"].to_numpy(), rows["y_pred"].to_numpy())}


def theirs(frame: pl.DataFrame, args: argparse.Namespace) -> dict[str, Any]:
    import lightgbm as lgb
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean

    data = frame.to_pandas()
    best, cv = float("inf"), None
    for _ in range(args.repeats):
        forecaster = MLForecast(models={"lgb": lgb.LGBMRegressor(verbosity=-1)}, freq="MS",
                                lags=[1, 2, 3, 6, 12], date_features=["month"],
                                lag_transforms={1: [RollingMean(3), RollingMean(12)]})
        started = time.perf_counter()
        cv = forecaster.cross_validation(data, n_windows=args.windows, h=args.horizon,
                                         step_size=args.horizon)
        best = min(best, time.perf_counter() - started)
    return {"seconds": best, "rows": len(cv),
            **_scores(cv["y"].to_numpy(), np.clip(cv["lgb"].to_numpy(), 0, None))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=350)
    parser.add_argument("--months", type=int, default=60)
    parser.add_argument("--horizon", type=int, default=6)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path,
                        default=Path(__file__).parent / "results" / "lightgbm_small.json")
    args = parser.parse_args()
    console = Console()
    console.print(summary_line())
    frame = monthly_panel(args.series, args.months, args.seed)
    results = {"ours (CLI default: probe + refit)": ours(frame, args),
               f"ours ({args.rounds} rounds, no probe)": ours(
                   frame, args, early_stopping=False, max_rounds=args.rounds),
               "mlforecast LightGBM": theirs(frame, args)}
    reference = results["mlforecast LightGBM"]["seconds"]
    for label, found in results.items():
        found["ratio_seconds"] = found["seconds"] / reference
        console.print(f"{label}: {found['seconds']:.2f} s ({found['ratio_seconds']:.1f}x), "
                      f"WAPE {found['wape']:.2f}, bias {found['bias_pct']:+.2f} % over "
                      f"{found['rows']:,} rows")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"benchmark": "lightgbm_small", "provenance": provenance(),
                                     "settings": vars(args) | {"json": str(args.json)},
                                     "results": results}, indent=1) + "\n")
    console.print(f"Wrote {args.json}")


if __name__ == "__main__":
    main()
