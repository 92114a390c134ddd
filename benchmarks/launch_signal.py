"""Launch models where the content carries less, or nothing: the synthetic launch benchmark of
``benchmarks/launch.py`` (300 items, 104 weeks, cutoff week 36, 8 weeks from launch) on shops
generated at several ``content_signal`` levels (``datasets.synthetic``: 0 = photos, texts and
categories drawn as usual but unrelated to demand; 1 = the default shop) and several shop seeds.

A content model's gain over the launch curves should shrink with the signal, and at 0 it should
be within noise of them or come from what is not content (price, launch calendar, market,
events). Every model is scored by WAPE, bias_pct and RMSSE (as in ``benchmarks/launch.py``),
beside the oracle (the true mean); the summary gives each model's mean and standard deviation
over the shop seeds per signal, and its mean WAPE change against the best curve's.

Run: .venv/bin/python benchmarks/launch_signal.py [--signals 0,0.5,1] [--shops 0,1,2]
     [--models mean_launch_curve,...] [--json benchmarks/results/launch_signal.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import _provenance  # noqa: F401 (before torch: passive OpenMP waits)
import numpy as np
from _provenance import provenance, summary_line
from launch import HORIZON, Benchmark, _scores, oracle_scores
from rich.console import Console

from salesfusion.data.launch_splits import LaunchProtocol
from salesfusion.datasets.synthetic import expected_demand, synthetic
from salesfusion.evaluation.launch import run_launch_backtest
from salesfusion.models.registry import create_model

CURVES = ["mean_launch_curve", "median_launch_curve"]
# label -> (registered model, parameters): the cheap launch models by default; add
# multimodal_launch or the default launch_ensemble with --models (minutes per fit each).
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "mean_launch_curve": ("mean_launch_curve", {}),
    "median_launch_curve": ("median_launch_curve", {}),
    "lightgbm_launch": ("lightgbm_launch", {}),
    "lightgbm_launch reference=mean": ("lightgbm_launch", {"reference": "mean_launch_curve"}),
    "lightgbm_launch validation_folds=3": ("lightgbm_launch", {"validation_folds": 3}),
    "lightgbm_launch covariates=false": ("lightgbm_launch", {"covariates": False}),
    "launch_ensemble of lightgbm_launch+mean curve": (
        "launch_ensemble", {"members": ["lightgbm_launch", "mean_launch_curve"]}),
    "multimodal_launch": ("multimodal_launch", {}),
    "launch_ensemble": ("launch_ensemble", {}),
}
DEFAULT_MODELS = list(MODELS)[:7]


def shop_benchmark(folder: Path, signal: float, seed: int) -> Benchmark:
    shop = synthetic(folder / f"signal{signal:g}_seed{seed}", n_items=300, n_weeks=104,
                     seed=seed, content_signal=signal)
    protocol = LaunchProtocol(horizon=HORIZON, cutoffs=(date(2022, 9, 12),),  # week 36
                              validation_periods=8)
    return Benchmark(shop.panel(), protocol, expected_demand(shop), {})


def summarise(runs: list[dict[str, Any]], models: list[str]) -> list[dict[str, Any]]:
    """Per signal and model: mean and sd over shops of each metric, and the WAPE change
    against the best curve (by mean WAPE) at that signal."""
    rows = []
    for signal in sorted({r["signal"] for r in runs}):
        at = [r for r in runs if r["signal"] == signal]
        best_curve = min((np.mean([r["WAPE"] for r in at if r["model"] == c]), c)
                         for c in CURVES if any(r["model"] == c for r in at))
        for model in [*models, "oracle"]:
            mine = [r for r in at if r["model"] == model]
            row: dict[str, Any] = {"signal": signal, "model": model, "shops": len(mine)}
            for metric in ("WAPE", "bias_pct", "RMSSE"):
                values = [r[metric] for r in mine if r[metric] is not None]
                row[f"{metric}_mean"] = float(np.mean(values)) if values else None
                row[f"{metric}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            row["vs_best_curve_pct"] = 100 * (row["WAPE_mean"] / best_curve[0] - 1)
            row["best_curve"] = best_curve[1]
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", default="0,0.5,1")
    parser.add_argument("--shops", default="0,1,2", help="shop seeds")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated labels: " + ", ".join(MODELS))
    parser.add_argument("--json", type=Path,
                        default=Path(__file__).parent / "results" / "launch_signal.json")
    args = parser.parse_args()
    signals = [float(s) for s in args.signals.split(",")]
    shops = [int(s) for s in args.shops.split(",")]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model label(s) {unknown}; choose from {list(MODELS)}")
    console = Console(width=120)
    console.print(summary_line(load_torch=True))
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        for signal in signals:
            for seed in shops:
                bench = shop_benchmark(Path(folder), signal, seed)
                split = bench.protocol.split(bench.panel,
                                             bench.protocol.cutoff_periods(bench.panel)[0])
                runs.append({"signal": signal, "shop": seed, "model": "oracle", "seconds": 0.0,
                             **oracle_scores(bench, split)})
                for label in models:
                    name, params = MODELS[label]
                    started = time.perf_counter()
                    forecasts = run_launch_backtest(create_model(name, **params), bench.panel,
                                                    bench.protocol)
                    runs.append({"signal": signal, "shop": seed, "model": label,
                                 "seconds": time.perf_counter() - started,
                                 **_scores(forecasts)})
                    run = runs[-1]
                    console.print(f"signal {signal:g} shop {seed} {label}: WAPE "
                                  f"{run['WAPE']:.2f}, bias {run['bias_pct']:+.1f} %, RMSSE "
                                  f"{run['RMSSE'] or 0:.3f} ({run['seconds']:.0f} s)")
    summary = summarise(runs, models)
    for row in summary:
        console.print(f"signal {row['signal']:g} {row['model']}: WAPE {row['WAPE_mean']:.2f} "
                      f"(sd {row['WAPE_sd']:.2f}), bias {row['bias_pct_mean']:+.1f} %, RMSSE "
                      f"{row['RMSSE_mean'] or 0:.3f}, vs {row['best_curve']} "
                      f"{row['vs_best_curve_pct']:+.1f} %")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "benchmark": "launch_signal", "provenance": provenance(load_torch=True),
        "command": f"benchmarks/launch_signal.py --signals {args.signals} --shops {args.shops} "
                   f"--models {','.join(models)}",
        "horizon": HORIZON, "summary": summary, "runs": runs}, indent=1))
    console.print(f"Wrote {args.json}")


if __name__ == "__main__":
    main()
