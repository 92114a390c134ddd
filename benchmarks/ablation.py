"""Modality ablation on the synthetic shop: does removing a modality lose its known effect?

Trains the multimodal model with every modality, then with each one removed, then with every
modality but without the event covariates (the live-stream uplifts, known per market), and with
no content at all; scores (1) the cold-start forecasts of items whose history is hidden (their
launch is forecast from content alone, where each modality's effect can only come through its
own pathway), (2) the last-window backtest of every series and (3) that backtest on the weeks a
live stream lifted (the event week and the two after it), where the event covariates carry the
uplift. The generator's effect sizes say what each modality carries (visual: colour + pattern,
only in images; textual: the tier word, only in text; attribute: category + price, only in the
items table).

Run: .venv/bin/python benchmarks/ablation.py [--items 400] [--epochs 20] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from _provenance import provenance, summary_line
from rich.console import Console
from rich.table import Table

from salesfusion.data.panel import SERIES_KEY
from salesfusion.data.splits import BacktestProtocol
from salesfusion.datasets.synthetic import synthetic
from salesfusion.evaluation.backtest import metrics_table
from salesfusion.models.registry import create_model
from salesfusion.scoring.metrics import score

ALL = ["text", "image", "static"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--weeks", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path,
                        default=Path(__file__).parent / "results" / "ablation.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        shop = synthetic(folder, n_items=args.items, n_weeks=args.weeks, seed=args.seed,
                         new_items=0.0)
        panel = shop.panel()
        rng = np.random.default_rng(args.seed)
        items = panel.data["item_id"].unique().sort().to_list()
        held_out = sorted(rng.choice(items, size=len(items) // 5, replace=False).tolist())
        horizon = 4
        periods = panel.periods
        origin = periods[-horizon - 1]
        train = panel.until(origin).select_series(
            panel.data.filter(~pl.col("item_id").is_in(held_out)).select(SERIES_KEY).unique())
        future = panel.data.filter((pl.col("timestamp") > origin)
                                   & pl.col("item_id").is_in(held_out))
        cold_series = future.select(SERIES_KEY).unique()
        truth = shop.truth
        # Weeks whose demand a live stream lifted: the event week and the two after it.
        event_weeks = pl.concat([
            panel.events.filter(pl.col("item_id").is_not_null()).select(
                "item_id", "market", (pl.col("timestamp") + pl.duration(weeks=lag)))
            for lag in range(3)]).unique()
        console = Console(width=140)
        console.print(summary_line(load_torch=True))
        console.print(f"effects (log scale, sd over items): visual "
                      f"{truth.item_effects['visual'].std():.2f}, textual "
                      f"{truth.item_effects['textual'].std():.2f}, attribute "
                      f"{truth.item_effects['attribute'].std():.2f}")
        table = Table(title=f"Modality ablation, synthetic shop ({args.items} items, "
                            f"{len(held_out)} held out as new)")
        for column in ("modalities", "cold-start WAPE", "cold-start MAE", "backtest WAPE",
                       "backtest MASE", "event-weeks WAPE", "seconds"):
            table.add_column(column, justify="right")
        variants = [(ALL, True), *[([m for m in ALL if m != removed], True) for removed in ALL],
                    (ALL, False), ([], True)]
        rows = []
        for modalities, covariates in variants:
            started = time.perf_counter()
            params = {"modalities": modalities, "epochs": args.epochs, "seed": args.seed,
                      "image_encoder": "efficientnet_lite0", "text_encoder": "minilm",
                      "covariates": covariates}
            model = create_model("multimodal", **params).fit(train)
            forecast = model.predict(horizon, history=train, series=cold_series)
            joined = future.join(forecast, on=[*SERIES_KEY, "timestamp"])
            cold = score(joined["y"].to_numpy(), joined["y_pred"].clip(0).to_numpy())
            forecasts = create_model("multimodal", **params).backtest(
                panel, BacktestProtocol(horizon=horizon, windows=1))
            backtest = metrics_table(forecasts)
            lifted = forecasts.join(event_weeks, on=[*SERIES_KEY, "timestamp"], how="semi")
            event_wape = score(lifted["y_true"].to_numpy(),
                               lifted["y_pred"].clip(0).to_numpy())["WAPE"]
            overall = backtest.filter((pl.col("window") == "all")
                                      & (pl.col("segment") == "all"))
            value = dict(zip(overall["metric"], overall["value"], strict=True))
            label = ("+".join(modalities) or "(no item content)") + ("" if covariates
                                                                  else " (no events)")
            rows.append({"variant": label, "cold_start_wape": cold["WAPE"],
                         "cold_start_mae": cold["MAE"], "backtest_wape": value["WAPE"],
                         "event_weeks_wape": event_wape, "event_rows": lifted.height,
                         "backtest_mase": value["MASE"],
                         "seconds": time.perf_counter() - started})
            table.add_row(label, f"{cold['WAPE']:.2f}", f"{cold['MAE']:.3f}",
                          f"{value['WAPE']:.2f}", f"{value['MASE']:.3f}", f"{event_wape:.2f}",
                          f"{rows[-1]['seconds']:.0f}")
        console.print(table)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "benchmark": "ablation", "provenance": provenance(),
            "command": f"benchmarks/ablation.py --items {args.items} --weeks {args.weeks} "
                       f"--epochs {args.epochs} --seed {args.seed}",
            "held_out_items": len(held_out), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
