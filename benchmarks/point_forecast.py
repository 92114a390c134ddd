"""Mean against median point forecasts on the OR-weekly benchmark: WAPE, bias and RMSSE side by
side, overall and per window, for the LightGBM objectives and the intermittent-demand baselines.

WAPE rewards the median, which lies far below the mean on intermittent series; bias_pct (total
forecast over total demand, minus 1) and RMSSE show what that costs a planner. Each window is
printed as WAPE/bias so that a gain bought in one window is seen.

Run: OMP_NUM_THREADS=2 .venv/bin/python benchmarks/point_forecast.py [--models lightgbm_mean,...]
"""

from __future__ import annotations

import argparse
import time

import polars as pl
from _provenance import summary_line

from salesfusion.data.splits import BacktestProtocol
from salesfusion.datasets import load_dataset, or_weekly
from salesfusion.evaluation.runner import backtest_models
from salesfusion.models.registry import create_model

VARIANTS: dict[str, tuple[str, dict]] = {
    "lightgbm_median_l1": ("lightgbm", {"point": "median"}),
    "lightgbm_mean_tweedie": ("lightgbm", {}),
    "lightgbm_mean_tweedie_p1.5": ("lightgbm", {"tweedie_variance_power": 1.5}),
    "lightgbm_mean_l2": ("lightgbm", {"objective": "l2"}),
    "lightgbm_mean_poisson": ("lightgbm", {"objective": "poisson"}),
    # The mean objective's settings, one change at a time (does any reach the median's WAPE?).
    "lightgbm_mean_unscaled": ("lightgbm", {"target_scaling": False}),
    "lightgbm_mean_leaves63_min20": ("lightgbm", {"num_leaves": 63, "min_data_in_leaf": 20}),
    "lightgbm_mean_leaves15_min100": ("lightgbm", {"num_leaves": 15, "min_data_in_leaf": 100}),
    "lightgbm_mean_lr0.02": ("lightgbm", {"learning_rate": 0.02, "max_rounds": 1500}),
    "lightgbm_mean_l2_unscaled": ("lightgbm", {"objective": "l2", "target_scaling": False}),
    "imapa": ("imapa", {}),
    "ets": ("ets", {}),
    "naive": ("naive", {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(VARIANTS),
                        help=f"comma-separated, of {', '.join(VARIANTS)}")
    chosen = parser.parse_args().models.split(",")
    print(summary_line())
    panel = or_weekly()
    protocol = BacktestProtocol.from_benchmark(load_dataset("online_retail").benchmark)
    for label in chosen:
        name, params = VARIANTS[label]
        started = time.perf_counter()
        run = backtest_models(panel, [create_model(name, horizon=protocol.horizon, **params)],
                              protocol)
        scores = run.metrics.filter(pl.col("segment") == "all")
        overall = {r["metric"]: r["value"] for r in scores.filter(
            pl.col("window") == "all").iter_rows(named=True)}
        windows = []
        for window in sorted(w for w in scores["window"].unique() if w != "all"):
            part = {r["metric"]: r["value"] for r in scores.filter(
                pl.col("window") == window).iter_rows(named=True)}
            windows.append(f"{part['WAPE']:.1f}/{part['bias_pct']:+.1f}")
        print(f"{label:28s} WAPE {overall['WAPE']:6.2f}  bias {overall['bias_pct']:+6.1f} %  "
              f"RMSSE {overall['RMSSE']:.4f}  windows WAPE/bias {' '.join(windows)}  "
              f"{time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
