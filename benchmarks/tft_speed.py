"""Training and prediction speed of our TFT against pytorch-forecasting's, matched in size.

Both nets are fitted on the whole OR-weekly panel (each holds out its last 4 periods as the
validation set it scores after every epoch) for the same number of epochs with no early stopping,
the same batch size, quantiles [0.1, 0.5, 0.9], encoder (lookback) 16 and horizon 4:

- ours: ``create_model("multimodal", backbone="tft", modalities=[], hidden=H, layers=1,
  epochs=E, patience=E, lookback=16, horizon=4, quantiles=[0.1, 0.5, 0.9], batch_size=B)``;
- theirs: ``pytorch_forecasting.TemporalFusionTransformer`` (the ``pf_tft`` adapter of
  ``peers.py``) with hidden_size=H, lstm_layers=1, attention_head_size=4,
  hidden_continuous_size=H, max_epochs=E, early-stopping patience above E.

"train s" is the wall time of ``fit()`` (data preparation, training, the per-epoch validation);
"predict s" the median of ``--repeats`` wall times of forecasting every series for 4 periods
after the panel's end, from the panel. The two libraries window differently (ours: every origin
with a lookback of 16 and at least one target before the validation boundary, theirs: every
(series, origin) with 1..16 encoder steps and 4 whole target steps), so samples per epoch and time
per training sample are printed too. torch uses the same thread count on both sides (``--threads``;
by default ``OMP_NUM_THREADS``, else 2), with passive OpenMP waiting (``OMP_WAIT_POLICY=PASSIVE``,
set by ``_provenance``), and the 1-minute load average is recorded. The results file carries the
commit, date, core count and thread settings of the run (``provenance``).

Run: .venv/bin/python benchmarks/tft_speed.py [--hidden 32] [--epochs 5] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _provenance import provenance, requested_threads, summary_line
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))

DEFAULT_JSON = Path(__file__).parent / "results" / "tft_speed.json"
QUANTILES = [0.1, 0.5, 0.9]


def _timed_predict(model: Any, repeats: int) -> tuple[float, list[float], int]:
    times, rows = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        rows = model.predict(4).height
        times.append(time.perf_counter() - started)
    return statistics.median(times), times, rows


def _ours(panel: Any, args: argparse.Namespace) -> dict[str, Any]:

    from salesfusion.models import multimodal
    from salesfusion.models.registry import create_model

    counted: list[int] = []
    original = multimodal.gathered_loader

    def counting_loader(samples: Any, *rest: Any, **kwargs: Any) -> Any:
        counted.append(len(samples))  # the training loader comes first
        return original(samples, *rest, **kwargs)

    multimodal.gathered_loader = counting_loader
    try:
        model = create_model("multimodal", backbone="tft", modalities=[], hidden=args.hidden,
                             layers=1, epochs=args.epochs, patience=args.epochs, lookback=16,
                             horizon=4, quantiles=QUANTILES, batch_size=args.batch_size)
        started = time.perf_counter()
        model.fit(panel)
        train = time.perf_counter() - started
    finally:
        multimodal.gathered_loader = original
    predict, times, rows = _timed_predict(model, args.repeats)
    return {"train_s": train, "predict_s": predict, "predict_runs_s": times,
            "forecast_rows": rows, "epochs": args.epochs,
            "parameters": sum(p.numel() for p in model._net.parameters()),
            "train_samples_per_epoch": counted[0] if counted else None,
            "validation_samples": counted[1] if len(counted) > 1 else None}


def _theirs(panel: Any, args: argparse.Namespace) -> dict[str, Any]:
    from peers import PFTemporalFusion

    model = PFTemporalFusion(hidden=args.hidden, hidden_continuous=args.hidden, heads=4,
                             batch_size=args.batch_size, max_epochs=args.epochs,
                             patience=args.epochs + 1)
    started = time.perf_counter()
    model.fit(panel)
    train = time.perf_counter() - started
    predict, times, rows = _timed_predict(model, args.repeats)
    return {"train_s": train, "predict_s": predict, "predict_runs_s": times,
            "forecast_rows": rows, "epochs": model.epochs_run,
            "parameters": sum(p.numel() for p in model._net.parameters()),
            "train_samples_per_epoch": model.train_samples,
            "validation_samples": panel.n_series}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--threads", type=int, default=requested_threads(2))
    args = parser.parse_args()
    import torch
    from peers import LoadSampler, _quiet

    from salesfusion.datasets.online_retail import or_weekly

    _quiet()
    torch.set_num_threads(args.threads)
    console = Console(width=140)
    console.print(summary_line())
    panel = or_weekly()
    console.print(f"OR-weekly: {panel.n_series:,} series, {panel.data.height:,} rows; hidden "
                  f"{args.hidden}, {args.epochs} epochs, batch {args.batch_size}, "
                  f"{torch.get_num_threads()} threads")
    results = {}
    for side, run in (("salesfusion", _ours), ("pytorch-forecasting", _theirs)):
        with console.status(f"fitting {side}"), LoadSampler() as load:
            results[side] = run(panel, args)
        r = results[side]
        r["load_1min"] = load.summary()
        r["train_s_per_sample"] = (r["train_s"] / (r["train_samples_per_epoch"] * r["epochs"])
                                   if r["train_samples_per_epoch"] else None)
    ours, theirs = results["salesfusion"], results["pytorch-forecasting"]
    table = Table(title=f"TFT speed on OR-weekly (hidden {args.hidden}, {args.epochs} epochs, "
                        f"batch {args.batch_size})")
    for column in ("", "salesfusion", "pytorch-forecasting", "ours / theirs"):
        table.add_column(column, justify="left" if not column else "right")
    rows = [("parameters", "parameters", "{:,}"),
            ("train samples / epoch", "train_samples_per_epoch", "{:,}"),
            ("epochs run", "epochs", "{}"),
            ("train s (fit)", "train_s", "{:.1f}"),
            ("train µs / sample", "train_s_per_sample", "{:.1f}"),
            (f"predict s (median of {args.repeats})", "predict_s", "{:.3f}"),
            ("forecast rows", "forecast_rows", "{:,}")]
    ratios = {}
    for label, key, fmt in rows:
        a, b = ours[key], theirs[key]
        if key == "train_s_per_sample":
            a, b = a * 1e6, b * 1e6
        ratios[key] = a / b if a is not None and b else None
        table.add_row(label, fmt.format(a), fmt.format(b),
                      "" if ratios[key] is None else f"{ratios[key]:.2f}")
    console.print(table)
    for side, r in results.items():
        if r["load_1min"]["mean"] > (os.cpu_count() or 1) + 0.5:
            console.print(f"warning: other work was running while {side} ran (mean 1-min load "
                          f"{r['load_1min']['mean']}): its times are inflated")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "benchmark": "tft_speed", "panel": "OR-weekly", "provenance": provenance(),
        "settings": {"hidden": args.hidden, "epochs": args.epochs,
                     "batch_size": args.batch_size, "lookback": 16, "horizon": 4,
                     "quantiles": QUANTILES, "threads": torch.get_num_threads(),
                     "predict_repeats": args.repeats,
                     "omp_wait_policy": os.environ["OMP_WAIT_POLICY"]},
        "results": results, "ratios_ours_over_theirs": ratios}, indent=2))
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
