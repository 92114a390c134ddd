"""Searcher benchmark: msrl (both update rules), random, Optuna TPE and grid search tuning
``msrl_bigru`` at the same trial budget, on the synthetic shop and on OR-weekly.

Every searcher searches the same discrete space (``SPACE``: the agent's three states, hidden
units x epochs x learning rate, 3 x 3 x 3 = 27 settings), so the comparison is exact and cheap to
repeat over many seeds: every setting is trained once per dataset, on the tuning data without
its validation part, and scored on the validation part (``tuning.objective.run_trial``, what
``salesfusion tune`` does); each search then runs the real searcher and the real search loop
(``tuning.runner.run_search``) with each trial's score and wall time looked up in that table.
Scores are deterministic per setting (every trial's model has the same seed), so a lookup is
what a retraining would give. Each searcher's final model (its best validation setting) is
trained on the whole tuning data and scored on the first ``horizon`` test periods, which no
search sees.

Deviations from the preset, to fit 2 cores: ``max_train_windows`` 10,000 (the preset samples up
to 100,000 windows per epoch) and epochs of 3 / 6 / 12 instead of the preset's 5 / 10 / 20 / 30;
the preset's 80-setting space would take about 11 hours per dataset here. Optuna runs without
pruning (a lookup has no epochs to prune).

Reported per dataset: the best validation RMSE after k trials (mean and sample std over seeds),
its regret against the best setting of the space, the test RMSE of the final model, the training
time the search spent (the looked-up trial times) and the searcher's own time, and paired
Wilcoxon signed-rank tests over seeds of msrl against random and against TPE on the final best
validation RMSE.

Run: .venv/bin/python benchmarks/searchers.py [--seeds 20] [--budget 10]
     [--only synthetic,or_weekly] [--json PATH] [--cache DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import _provenance  # noqa: F401 (before torch: passive OpenMP waits)
from _provenance import provenance, summary_line
from rich.console import Console
from scipy.stats import wilcoxon

from salesfusion.cli.common import panel_from
from salesfusion.data.splits import BacktestProtocol
from salesfusion.datasets import load_dataset
from salesfusion.models.registry import model_class
from salesfusion.models.search_space import parse_space
from salesfusion.tuning.log import TrialLog
from salesfusion.tuning.objective import TrialOutcome, TuningData, fit_final, run_trial
from salesfusion.tuning.runner import Budget, run_search, trial_params
from salesfusion.tuning.searchers import build_searcher
from salesfusion.tuning.searchers.base import key_of

MODEL = "msrl_bigru"
SPACE = {
    "hidden": {"type": "int", "low": 16, "high": 64, "log": True, "actions": [16, 32, 64]},
    "epochs": {"type": "int", "low": 3, "high": 12, "actions": [3, 6, 12]},
    "lr": {"type": "float", "low": 0.001, "high": 0.01, "log": True,
           "actions": [0.001, 0.003, 0.01]},
}
FIXED = {"accelerator": "cpu", "max_train_windows": 10_000}
SEARCHERS: dict[str, tuple[str, dict[str, Any]]] = {
    "msrl (paper update)": ("msrl", {"update": "paper"}),
    "msrl (standard update)": ("msrl", {"update": "standard"}),
    "random": ("random", {"discrete": True}),
    "optuna TPE": ("optuna", {"discrete": True, "pruner": "none"}),
    "grid": ("grid", {}),
}
DATASETS = ("synthetic", "or_weekly")
SEED = 0  # every trial's model


def tuning_data(name: str) -> TuningData:
    """The dataset's panel without its backtest test periods (as ``salesfusion tune``)."""
    bundled = load_dataset("online_retail" if name == "or_weekly" else "synthetic")
    panel = panel_from(bundled, None, "W", None, None, None)
    protocol = (BacktestProtocol.from_benchmark(bundled.benchmark) if bundled.benchmark
                else BacktestProtocol())
    horizon = model_class(MODEL).default_config().horizon
    return TuningData.from_panel(panel, protocol.test_length, horizon, "RMSE")


def measure(name: str, data: TuningData, cache: Path, console: Console) -> dict[str, dict]:
    """Every setting's validation score and wall time, trained once (kept in ``cache``)."""
    space = parse_space(SPACE, "benchmark")
    path = cache / f"{name}_table.json"
    table: dict[str, dict] = json.loads(path.read_text()) if path.is_file() else {}
    model_type = model_class(MODEL)
    settings = [dict(zip(space.names, combo, strict=True)) for combo in
                itertools.product(*(space.values(n) for n in space.names))]
    for index, params in enumerate(settings, start=1):
        key = key_of(params)
        if key in table:
            continue
        outcome = run_trial(model_type, trial_params(model_type, FIXED, params, SEED), data)
        table[key] = {"params": params, "status": outcome.status, "score": outcome.score,
                      "seconds": outcome.seconds, "epochs": outcome.epochs}
        path.write_text(json.dumps(table, indent=1))
        console.print(f"{name}: setting {index}/{len(settings)} {params}: {outcome.status} "
                      f"RMSE {outcome.score} in {outcome.seconds:.0f} s")
    return table


def search(name: str, label: str, seed: int, budget: int, data: TuningData,
           table: dict[str, dict], folder: Path) -> dict[str, Any]:
    """One search with looked-up scores: the best-so-far curve and the final setting."""
    searcher_name, options = SEARCHERS[label]
    space = parse_space(SPACE, "benchmark")
    model_type = model_class(MODEL)
    searcher = build_searcher(searcher_name, space, seed, options,
                              {**model_type.preset_params, **FIXED})
    log = TrialLog(folder / f"{name}-{searcher_name}-{label.replace(' ', '_')}-{seed}")
    log.create({"benchmark": True}, {})

    def lookup(proposal: Any, params: dict[str, Any]) -> TrialOutcome:
        row = table[key_of(proposal.params)]
        return TrialOutcome(row["status"], row["score"], row["seconds"], row["epochs"], [])

    started = time.perf_counter()
    result = run_search(model_type, FIXED, searcher, data, log, Budget(budget), SEED,
                        progress=lambda line: None, trial=lookup)
    elapsed = time.perf_counter() - started
    searcher.close()
    trained = sorted(result.state.trained, key=lambda e: e.trial)
    curve, best = [], float("inf")
    for end in trained:
        if end.status == "complete" and end.score is not None:
            best = min(best, end.score)
        curve.append(best)
    training = sum(e.seconds for e in trained)
    return {"curve": curve, "best": result.best.params if result.best else None,
            "best_score": result.best.score if result.best else None,
            "training_seconds": training, "searcher_seconds": elapsed,
            "cached_proposals": sum(e.status == "cached" for e in result.state.ends.values()),
            "stopped": result.stopped}


def final_test(data: TuningData, params: dict[str, Any], cache: dict[str, float]) -> float:
    key = key_of(params)
    if key not in cache:
        model_type = model_class(MODEL)
        _, test = fit_final(model_type, trial_params(model_type, FIXED, params, SEED), data)
        overall = test.filter((test["market"] == "all") & (test["metric"] == "RMSE"))
        cache[key] = float(overall["value"][0])
    return cache[key]


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def paired(a: list[float], b: list[float]) -> dict[str, Any]:
    """Wilcoxon signed-rank on paired final scores (a - b < 0: a better)."""
    differences = [x - y for x, y in zip(a, b, strict=True)]
    better = sum(d < 0 for d in differences)
    worse = sum(d > 0 for d in differences)
    if all(d == 0 for d in differences):
        return {"p_value": None, "better": 0, "worse": 0, "ties": len(differences),
                "median_difference": 0.0}
    test = wilcoxon(a, b, zero_method="zsplit")
    return {"p_value": float(test.pvalue), "better": better, "worse": worse,
            "ties": len(differences) - better - worse,
            "median_difference": statistics.median(differences)}


def run_dataset(name: str, seeds: int, budget: int, cache: Path, console: Console) -> dict:
    data = tuning_data(name)
    table = measure(name, data, cache, console)
    scores = [r["score"] for r in table.values() if r["score"] is not None]
    optimum = min(scores)
    tests_path = cache / f"{name}_tests.json"
    tests: dict[str, float] = json.loads(tests_path.read_text()) if tests_path.is_file() else {}
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for label in SEARCHERS:
            runs = [search(name, label, seed, budget, data, table, Path(folder))
                    for seed in range(seeds)]
            finals = [r["best_score"] for r in runs]
            test_scores = [final_test(data, r["best"], tests) for r in runs]
            tests_path.write_text(json.dumps(tests, indent=1))
            curve = [_mean_std([r["curve"][k] for r in runs]) for k in range(budget)]
            rows[label] = {
                "curve": curve, "final": _mean_std(finals), "finals": finals,
                "regret_percent": _mean_std([100 * (f / optimum - 1) for f in finals]),
                "found_optimum": sum(f == optimum for f in finals),
                "test_rmse": _mean_std(test_scores), "test_scores": test_scores,
                "training_seconds": _mean_std([r["training_seconds"] for r in runs]),
                "searcher_seconds": _mean_std([r["searcher_seconds"] for r in runs]),
                "cached_proposals": _mean_std([r["cached_proposals"] for r in runs])}
            console.print(f"{name} {label}: best validation RMSE after {budget} trials "
                          f"{rows[label]['final']['mean']:.4f} ± {rows[label]['final']['std']:.4f}"
                          f" (optimum {optimum:.4f}); test RMSE "
                          f"{rows[label]['test_rmse']['mean']:.4f}")
    tests_against = {}
    for msrl_label in ("msrl (paper update)", "msrl (standard update)"):
        for other in ("random", "optuna TPE"):
            tests_against[f"{msrl_label} vs {other}"] = paired(rows[msrl_label]["finals"],
                                                              rows[other]["finals"])
    return {"settings": len(table), "optimum_validation_rmse": optimum,
            "median_setting_rmse": statistics.median(scores),
            "table_training_seconds": sum(r["seconds"] for r in table.values()),
            "searchers": rows, "paired_tests": tests_against,
            "table": list(table.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=10)
    parser.add_argument("--only", default=",".join(DATASETS))
    parser.add_argument("--json", type=Path,
                        default=Path(__file__).parent / "results" / "searchers.json")
    parser.add_argument("--cache", type=Path, default=Path("runs") / "searchers",
                        help="the measured tables (a rerun trains only missing settings)")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        parser.error(f"unknown dataset(s) {unknown}; choose from {list(DATASETS)}")
    console = Console(width=120)
    console.print(summary_line(load_torch=True))
    args.cache.mkdir(parents=True, exist_ok=True)
    results = {name: run_dataset(name, args.seeds, args.budget, args.cache, console)
               for name in names}
    pooled = {}
    for msrl_label in ("msrl (paper update)", "msrl (standard update)"):
        for other in ("random", "optuna TPE"):
            pooled[f"{msrl_label} vs {other}"] = paired(
                [f / results[n]["optimum_validation_rmse"] for n in names
                 for f in results[n]["searchers"][msrl_label]["finals"]],
                [f / results[n]["optimum_validation_rmse"] for n in names
                 for f in results[n]["searchers"][other]["finals"]])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "benchmark": "searchers", "provenance": provenance(load_torch=True),
        "command": f"benchmarks/searchers.py --seeds {args.seeds} --budget {args.budget} "
                   f"--only {','.join(names)}",
        "model": MODEL, "space": SPACE, "fixed": FIXED, "budget": args.budget,
        "seeds": args.seeds, "datasets": results, "pooled_paired_tests": pooled},
        indent=1))
    console.print(f"Wrote {args.json}")


if __name__ == "__main__":
    main()
