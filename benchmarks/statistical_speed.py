"""Seconds per forecast of the statsforecast baselines on the full Online Retail weekly panel.

The panel is ``online_retail().panel("W")`` with no activity filter (about 19k series, as
``salesfusion backtest --dataset online_retail --min-nonzero 0`` sees it). Each model is fitted
on the panel up to ``--origin-back`` periods before its end and forecasts 4 periods for every
series: the work of one backtest window. The time is the wall time of ``fit`` + ``predict``
(the best of ``--repeats``); the fallback notes are printed so that a run that routed series
differently shows. ``--n-jobs`` sets the pool size of the models forecast series by series
(``n_jobs`` of their configuration; the vectorised models have none). The first use of the
model registry imports every model (torch, scikit-learn: 10-20 s); that is done before timing.

Run: OMP_NUM_THREADS=2 .venv/bin/python benchmarks/statistical_speed.py \
         [--models naive,imapa] [--n-jobs 2] [--series 5000] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from _provenance import provenance, summary_line

MODELS = ["naive", "seasonal_naive", "moving_average", "croston", "adida", "imapa", "tsb",
          "ets", "arima"]


def _panel(series: int | None) -> Any:
    import polars as pl

    from salesfusion.data.panel import SERIES_KEY
    from salesfusion.datasets.online_retail import online_retail

    panel = online_retail().panel("W")
    if series:
        keys = panel.data.select(SERIES_KEY).unique().sort(SERIES_KEY).head(series)
        panel = panel.select_series(keys)
    return panel, pl


def _time(name: str, panel: Any, origin: Any, n_jobs: int | None, repeats: int) -> dict[str, Any]:
    from salesfusion.models.registry import create_model, model_class

    params: dict[str, Any] = {}
    if n_jobs is not None and "n_jobs" in model_class(name).Config.model_fields:
        params["n_jobs"] = n_jobs
    history = panel.until(origin)
    best, notes, rows = float("inf"), [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        model = create_model(name, horizon=4, **params).fit(history)
        rows = model.predict(4).height
        best = min(best, time.perf_counter() - started)
        notes = model.notes
    return {"model": name, "seconds": round(best, 3), "rows": rows, "notes": notes,
            "n_jobs": params.get("n_jobs")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--n-jobs", type=int, default=None)
    parser.add_argument("--series", type=int, default=None, help="first N series only")
    parser.add_argument("--origin-back", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    panel, _ = _panel(args.series)
    origin = panel.periods[-1 - args.origin_back]
    print(summary_line())
    print(f"{panel.n_series} series, origin {origin}")
    from salesfusion.models.registry import model_class

    for name in args.models.split(","):  # the registry imports every model (torch): untimed
        model_class(name)
    results = []
    for name in args.models.split(","):
        result = _time(name, panel, origin, args.n_jobs, args.repeats)
        print(f"{name:16s} {result['seconds']:9.2f} s  {result['notes']}", flush=True)
        results.append(result)
    if args.out:
        args.out.write_text(json.dumps({"provenance": provenance(), "series": panel.n_series,
                                        "results": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
