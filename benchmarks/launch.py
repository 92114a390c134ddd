"""Launch benchmarks: new products and new markets on Online Retail, held-out launches on the
synthetic shop against its oracle.

Every benchmark is the launch protocol (``evaluation.launch``) at one cutoff, horizon 8 weeks
from launch, the 8 weeks before the cutoff as the validation part:

- ``or_new_product``: the bundled Online Retail weekly panel, every series (19,196); test: the
  items whose first sale anywhere is on or after 2011-08-01 with 8 weeks observed, each
  forecast in every market it sold in from description, price, market and launch week.
- ``or_new_market``: the same panel and cutoff, scope ``market``; test: an item's first 8 weeks
  in a country it enters on or after the cutoff, having sold elsewhere before it (its history
  abroad is in the training panel).
- ``synthetic``: the synthetic shop (300 items, 104 weeks, seed 0), cutoff week 36; the oracle
  row forecasts the true Poisson mean (``datasets.synthetic.expected_demand``), the best any
  model can do, and ``vs oracle`` is a model's WAPE over the oracle's.

Each benchmark runs the five references (mean, median and category launch curves, the kNN
analogue, ``lightgbm_launch``) and the multimodal launch models (``multimodal_launch`` and the
validation-selected ``launch_ensemble``) with ``--seeds`` seeds each (mean and sample std over
seeds; models without a seed run once). Every model, and the oracle, is scored in the same run
by WAPE, bias_pct (100 x (total forecast / total actual - 1): negative = under-forecast), RMSSE
(each test series' RMSE over its market's launch scale, the training launches' root mean
squared one-step difference: ``evaluation.launch``), RMSE and sMAPE. ``vs best reference`` is
the change of a model's mean WAPE against the best reference's by WAPE in the same run
(negative: lower, better); ``vs best reference RMSSE`` the same by RMSSE, against the best
reference by RMSSE (WAPE rewards a median that under-forecasts; RMSSE does not). ``--ablation`` adds
the one-change-at-a-time variants of ``multimodal_launch`` (``ABLATION``: its launch choices and
losses on ``or_new_product``, the item's sales abroad on ``or_new_market``), with
``--ablation-seeds`` seeds each (1 by default: a variant's change within the seed spread of the
headline rows is no effect).

Run: .venv/bin/python benchmarks/launch.py [--seeds 3] [--only or_new_product,synthetic]
     [--ablation [--ablation-seeds 1]] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from _provenance import provenance, summary_line
from rich.console import Console

from salesfusion.data.launch_splits import LaunchProtocol, LaunchSplit
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.datasets.online_retail import online_retail
from salesfusion.datasets.synthetic import expected_demand, synthetic
from salesfusion.evaluation.launch import run_launch_backtest
from salesfusion.models.registry import create_model, model_class
from salesfusion.scoring.metrics import evaluate
from salesfusion.scoring.scales import launch_scale

HORIZON = 8
REFERENCES = ["mean_launch_curve", "median_launch_curve", "category_launch_curve",
              "knn_analogue", "lightgbm_launch"]
SCORED = ("WAPE", "bias_pct", "RMSSE", "RMSE", "sMAPE")
MULTIMODAL = ["multimodal_launch", "launch_ensemble"]
# One change at a time from multimodal_launch (the launch ablation of docs/benchmarks.md),
# per benchmark.
ABLATION: dict[str, dict[str, dict[str, Any]]] = {
    "or_new_product": {
        "multimodal_launch": {},
        "launch_scale: market_level": {"launch_scale": "market_level"},
        "launch_weight: 1": {"launch_weight": 1},
        "text_encoder: minilm": {"text_encoder": "minilm"},
        "point head, mae loss": {"quantiles": [], "loss": "mae"},
        "point head, poisson loss": {"quantiles": [], "loss": "poisson"},
        "epochs: 20": {"epochs": 20},
    },
    "or_new_market": {
        "multimodal_launch": {},
        "cross_market: true": {"cross_market": True},
    },
}


@dataclass
class Benchmark:
    panel: Panel
    protocol: LaunchProtocol
    oracle: pl.DataFrame | None  # item_id, market, timestamp, mean
    params: dict[str, dict[str, Any]]  # per model


def or_benchmark(scope: str) -> Benchmark:
    panel = online_retail().panel("W")
    protocol = LaunchProtocol(horizon=HORIZON, cutoffs=(date(2011, 8, 1),),
                              validation_periods=8, scope=scope)
    # Online Retail declares no categorical attribute: price points make the categories, each
    # with at least 10 launches of its own (fewer: the pooled curve).
    return Benchmark(panel, protocol, None, {
        "category_launch_curve": {"attribute": "median_unit_price", "min_series": 10}})


def synthetic_benchmark(folder: Path) -> Benchmark:
    shop = synthetic(folder, n_items=300, n_weeks=104, seed=0)
    protocol = LaunchProtocol(horizon=HORIZON, cutoffs=(date(2022, 9, 12),),  # week 36
                              validation_periods=8)
    return Benchmark(shop.panel(), protocol, expected_demand(shop), {})


BENCHMARKS: dict[str, Callable[[Path], Benchmark]] = {
    "or_new_product": lambda _: or_benchmark("item"),
    "or_new_market": lambda _: or_benchmark("market"),
    "synthetic": synthetic_benchmark,
}


def _scores(forecasts: pl.DataFrame) -> dict[str, float | None]:
    """``SCORED`` over every row; RMSSE per series (``item_id, market``) then averaged, each
    scaled by its ``rmsse_scale``, so it needs the frame, not bare arrays."""
    found = evaluate(forecasts.with_columns(pl.col("y_pred").clip(0)))
    values = dict(zip(found["metric"].to_list(), found["value"].to_list(), strict=True))
    return {k: None if values.get(k) is None else float(values[k]) for k in SCORED}


def _mean(runs: list[dict[str, Any]], metric: str) -> float | None:
    values = [r[metric] for r in runs if r[metric] is not None]
    return float(np.mean(values)) if values else None


def run_model(bench: Benchmark, name: str, params: dict[str, Any], seeds: int,
              console: Console, label: str | None = None) -> dict[str, Any]:
    seeded = "seed" in model_class(name).Config.model_fields
    runs = []
    for seed in range(seeds if seeded else 1):
        started = time.perf_counter()
        model = create_model(name, **{**bench.params.get(name, {}), **params,
                                      **({"seed": seed} if seeded else {})})
        forecasts = run_launch_backtest(model, bench.panel, bench.protocol)
        runs.append({**_scores(forecasts), "seconds": time.perf_counter() - started,
                     "rows": forecasts.height})
        console.print(f"  {label or name} seed {seed}: WAPE {runs[-1]['WAPE']:.2f}, bias "
                      f"{runs[-1]['bias_pct']:+.1f} %, RMSSE {runs[-1]['RMSSE'] or 0:.3f} "
                      f"({runs[-1]['seconds']:.0f} s)")
    wape = np.array([r["WAPE"] for r in runs])
    return {"model": label or name, "registered_as": name, "params": params,
            "point": model.point,  # what y_pred is: mean or median
            "seeds": len(runs), "wape_mean": float(wape.mean()),
            "wape_std": float(wape.std(ddof=1)) if len(runs) > 1 else 0.0,
            "bias_pct_mean": _mean(runs, "bias_pct"), "rmsse_mean": _mean(runs, "RMSSE"),
            "rmse_mean": _mean(runs, "RMSE"), "smape_mean": _mean(runs, "sMAPE"),
            "seconds_mean": float(np.mean([r["seconds"] for r in runs])), "runs": runs}


def oracle_scores(bench: Benchmark, split: LaunchSplit) -> dict[str, float] | None:
    """The true mean as the forecast, on exactly the rows the models are scored on."""
    if bench.oracle is None:
        return None
    rows = (split.test_actuals(bench.panel, bench.protocol.horizon)
            .join(bench.oracle, on=[*SERIES_KEY, "timestamp"], how="left")
            .join(launch_scale(split.fit_panel(bench.panel), bench.protocol.horizon),
                  on="market", how="left")
            .select(*SERIES_KEY, pl.col("y").alias("y_true"), pl.col("mean").alias("y_pred"),
                    "rmsse_scale"))
    if rows["y_pred"].null_count():
        raise RuntimeError("the oracle misses rows of the test part")
    return _scores(rows)


def run_benchmark(name: str, bench: Benchmark, seeds: int, ablation_seeds: int,
                  console: Console) -> dict[str, Any]:
    split = bench.protocol.split(bench.panel, bench.protocol.cutoff_periods(bench.panel)[0])
    console.print(f"[bold]{name}[/]: {split.test_series.height} test series "
                  f"({split.test_items.len()} items), cutoff {split.cutoff:%Y-%m-%d}")
    rows = [run_model(bench, model, {}, seeds, console) for model in REFERENCES + MULTIMODAL]
    references = [r for r in rows if r["model"] in REFERENCES]
    best_reference = min(references, key=lambda r: r["wape_mean"])
    # RMSSE is null only without a launch scale (no market with training launches).
    best_by_rmsse = min(references, key=lambda r: r["rmsse_mean"] or float("inf"))
    for row in rows:
        row["kind"] = "reference" if row["model"] in REFERENCES else "multimodal"
        row["vs_best_reference_pct"] = 100 * (row["wape_mean"] / best_reference["wape_mean"]
                                              - 1)
        if row["rmsse_mean"] is not None and best_by_rmsse["rmsse_mean"]:
            row["vs_best_reference_rmsse_pct"] = 100 * (
                row["rmsse_mean"] / best_by_rmsse["rmsse_mean"] - 1)
    result: dict[str, Any] = {
        "cutoff": f"{split.cutoff:%Y-%m-%d}", "scope": bench.protocol.scope,
        "test_series": split.test_series.height, "test_items": split.test_items.len(),
        "best_reference": best_reference["model"],
        "best_reference_by_rmsse": best_by_rmsse["model"], "rows": rows}
    oracle = oracle_scores(bench, split)
    if oracle is not None:
        result["oracle"] = oracle
        for row in rows:
            row["vs_oracle"] = row["wape_mean"] / oracle["WAPE"]
            if row["rmsse_mean"] is not None and oracle["RMSSE"]:
                row["vs_oracle_rmsse"] = row["rmsse_mean"] / oracle["RMSSE"]
        console.print(f"  oracle (true mean): WAPE {oracle['WAPE']:.2f}, bias "
                      f"{oracle['bias_pct']:+.1f} %, RMSSE {oracle['RMSSE'] or 0:.3f}")
    if ablation_seeds and name in ABLATION:
        result["ablation"] = [run_model(bench, "multimodal_launch", params, ablation_seeds,
                                        console, label=label)
                              for label, params in ABLATION[name].items()]
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help="comma-separated benchmarks: " + ", ".join(BENCHMARKS))
    parser.add_argument("--ablation", action="store_true",
                        help="also the multimodal_launch ablation variants (ABLATION)")
    parser.add_argument("--ablation-seeds", type=int, default=1,
                        help="seeds of each ablation variant (default 1)")
    parser.add_argument("--json", type=Path,
                        default=Path(__file__).parent / "results" / "launch.json")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    console = Console(width=120)
    console.print(summary_line(load_torch=True))
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            results[name] = run_benchmark(name, BENCHMARKS[name](Path(folder)), args.seeds,
                                          args.ablation_seeds if args.ablation else 0, console)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "benchmark": "launch", "provenance": provenance(load_torch=True),
        "command": f"benchmarks/launch.py --seeds {args.seeds} --only {','.join(names)}"
                   + (f" --ablation --ablation-seeds {args.ablation_seeds}" if args.ablation
                      else ""),
        "horizon": HORIZON, "benchmarks": results}, indent=1))
    console.print(f"Wrote {args.json}")


if __name__ == "__main__":
    main()
