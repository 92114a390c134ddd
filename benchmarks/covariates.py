"""Covariate benchmark: what each covariate adds to accuracy, and whether the models recover the
planted price elasticity and promotion uplift.

Datasets:

- the synthetic shop with ``covariates=True`` and ``reviews=True`` (``datasets.synthetic``):
  weekly price plans with permanent price changes and discounted promotion spells, a promotion
  flag, a search-trend series per category, and star-rated reviews, all with a known effect on
  log demand (truth: price elasticity ``PRICE_ELASTICITY``, promotion uplift ``promo_uplift``
  beyond the discount, category trend ``trend_effect`` per standard deviation, lagged one week,
  and ``review_effect`` per star of the latest reviewed week's mean rating away from 3). Its
  sales table is period grain, so price and promo are future-known (planned) covariates; the
  trend and the review channels (``review_count``, ``review_rating``) are past-only. The
  ``+review texts`` variant reads the review count and the texts' channels (minilm, 4 axes:
  ``encoders.review_text``) but not the stars, so what it gains comes from the words.
- OR-weekly (Online Retail, the bundled benchmark's series): a transaction log, so its prices
  are past-only (a price is only observed where something sold); ``price`` is the seller's
  (GBP) and ``price_local`` the buyer's currency through the ECB rates.

Accuracy: a rolling-origin backtest per variant (which covariate channels the model may read;
``none`` turns the model's covariates off), WAPE, bias, RMSSE and RMSE over all windows, with
the WAPE difference to ``none``. Recovery (synthetic only): the model trained at the last origin
forecasts the test periods under what-if plans (``Panel.with_plan``): every planned price x1.1
and x0.9 (arc elasticity ``log(q+/q-) / log(1.1/0.9)`` of total units), and the promotion flag
set to 1 and to 0 at unchanged prices (uplift ``log(q1/q0)``), each against the truth.

Run: .venv/bin/python benchmarks/covariates.py [--models lightgbm,lstm] [--only synthetic]
     [--items 300] [--seed 0] [--json benchmarks/results/covariates.json]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import _provenance  # noqa: F401 (before torch: passive OpenMP waits)
import polars as pl
from _provenance import provenance
from rich.console import Console
from rich.table import Table

from salesfusion.data.panel import Panel, build_panel
from salesfusion.data.reviews import review_texts
from salesfusion.data.spec import ReviewTextEmbedding
from salesfusion.data.splits import BacktestProtocol
from salesfusion.datasets import load_dataset, or_weekly
from salesfusion.datasets.synthetic import PRICE_ELASTICITY, synthetic
from salesfusion.encoders.review_text import review_text_channels
from salesfusion.evaluation.backtest import metrics_table
from salesfusion.models.backtest import run_backtest
from salesfusion.models.registry import create_model

SYNTHETIC = {"covariates": True, "reviews": True, "n_items": 300, "n_weeks": 104,
             "image_size": 16}
REVIEWS = ["review_count", "review_rating"]
TEXT_EMBEDDING = ReviewTextEmbedding(encoder="minilm", dims=4)
REVIEW_TEXTS = ["review_count", *review_text_channels(TEXT_EMBEDDING.dims)]
EVENTS = "events"  # the variant keeping the panel's events
VARIANTS = {
    "synthetic": {"none": None, "events": [], "+price": ["price", "price_local"],
                  "+promo": ["promo"], "+trend": ["trend_by_category"], "+reviews": REVIEWS,
                  "+review texts": REVIEW_TEXTS,
                  "all": ["price", "price_local", "promo", "trend_by_category", *REVIEWS]},
    "or_weekly": {"none": None, "price (seller, GBP)": ["price"],
                  "price_local (buyer)": ["price_local"], "both": ["price", "price_local"]},
}
# The neural models are trained per window (3 fits per variant), so on 2 cores they compare
# only without and with every covariate.
NEURAL_VARIANTS = ("none", "all", "both")
PARAMS = {"lightgbm": {"max_rounds": 300},
          "lstm": {"epochs": 8, "lookback": 26, "hidden": 32, "max_train_windows": 20000}}


def keep_channels(panel: Panel, channels: list[str] | None) -> Panel:
    """The panel with only ``channels`` of its covariate tables (events stay); its review texts
    only when ``channels`` names their channels (a model derives those when it fits)."""
    if channels is None:
        return replace(panel, review_texts=None)
    tables = []
    for table in panel.covariate_tables:
        kept = tuple(c for c in table.channels if c in channels)
        if kept:
            tables.append(replace(table, channels=kept,
                                  frame=table.frame.select(*table.keys, *kept)))
    texts = panel.review_texts if set(review_text_channels(1)) & set(channels) else None
    return replace(panel, covariate_tables=tables, review_texts=texts,
                   past_only=[c for c in panel.past_only if c in channels],
                   future_known=[c for c in panel.future_known if c in channels])


def model_for(name: str, horizon: int, channels: list[str] | None, seed: int) -> Any:
    params = dict(PARAMS.get(name, {}), horizon=horizon, seed=seed)
    if channels is None:
        params["covariates"] = False
    return create_model(name, **params)


def accuracy(panel: Panel, protocol: BacktestProtocol, name: str, variants: dict,
             seed: int, console: Console) -> list[dict]:
    rows = []
    for variant, channels in variants.items():
        started = time.perf_counter()
        model = model_for(name, protocol.horizon, channels, seed)
        forecasts = run_backtest(model, keep_channels(panel, channels), protocol)
        long = metrics_table(forecasts).filter((pl.col("window") == "all")
                                               & (pl.col("segment") == "all"))
        metrics = dict(zip(long["metric"], long["value"], strict=True))
        rows.append({"model": name, "variant": variant, "channels": channels,
                     "wape": metrics["WAPE"], "bias_pct": metrics["bias_pct"],
                     "rmsse": metrics["RMSSE"], "rmse": metrics["RMSE"],
                     "seconds": round(time.perf_counter() - started, 1)})
        console.print(f"  {name} {variant}: WAPE {metrics['WAPE']:.2f} bias "
                      f"{metrics['bias_pct']:+.2f} % RMSSE {metrics['RMSSE']:.4f} RMSE "
                      f"{metrics['RMSE']:.3f} ({rows[-1]['seconds']} s)")
    return rows


def _plan(history: Panel, horizon: int, **changes: Any) -> pl.DataFrame:
    """The sales covariates of the ``horizon`` periods after ``history``, changed."""
    last = history.data["timestamp"].max()
    sales = next(t for t in history.covariate_tables if t.source == "sales")
    future = sorted(p for p in sales.frame["timestamp"].unique() if p > last)[:horizon]
    frame = sales.frame.filter(pl.col("timestamp").is_in(future))
    return frame.with_columns(**changes).select("item_id", "market", "timestamp",
                                                *changes.keys())


def recovery(panel: Panel, horizon: int, name: str, seed: int, truth: dict) -> dict:
    history = panel.until(panel.periods[-horizon - 1])
    model = model_for(name, horizon, VARIANTS["synthetic"]["all"], seed).fit(history)

    def units(**changes: Any) -> float:
        plan = _plan(history, horizon, **changes)
        return float(model.predict(horizon, history.with_plan(plan))["y_pred"].sum())

    up = units(price=pl.col("price") * 1.1, price_local=pl.col("price_local") * 1.1)
    down = units(price=pl.col("price") * 0.9, price_local=pl.col("price_local") * 0.9)
    promo = units(promo=pl.lit(1.0))
    no_promo = units(promo=pl.lit(0.0))
    return {"model": name,
            "elasticity": {"estimated": math.log(up / down) / math.log(1.1 / 0.9),
                           "truth": truth["elasticity"]},
            "promo_uplift": {"estimated": math.log(promo / no_promo),
                             "truth": truth["promo_uplift"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lightgbm,lstm")
    parser.add_argument("--only", default="synthetic,or_weekly")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--items", type=int, default=SYNTHETIC["n_items"],
                        help="Items of the synthetic shop (fewer for a quick look).")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/covariates.json"))
    args = parser.parse_args()
    console = Console()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    shop_params = {**SYNTHETIC, "n_items": args.items}
    results: dict[str, Any] = {"provenance": provenance(load_torch=True), "synthetic_params":
                               shop_params, "model_params": PARAMS, "seed": args.seed,
                               "accuracy": [], "recovery": []}
    for dataset in [d.strip() for d in args.only.split(",") if d.strip()]:
        if dataset == "synthetic":
            shop = synthetic(**shop_params)
            panel = build_panel(shop.tables)
            panel = replace(panel, review_texts=review_texts(
                shop.tables.reviews, panel.data, panel.freq, TEXT_EMBEDDING, "reviews"))
            protocol = BacktestProtocol(horizon=4, windows=3)
            truth = {"elasticity": PRICE_ELASTICITY, "promo_uplift": shop.truth.promo_uplift}
        else:
            bundled = load_dataset("online_retail")
            panel = or_weekly(bundled)
            protocol = BacktestProtocol.from_benchmark(bundled.benchmark)
        console.print(f"{dataset}: {panel.n_series:,} series, {len(panel.periods)} periods, "
                      f"covariates past-only {panel.past_only}, future-known "
                      f"{panel.future_known}")
        for name in models:
            variants = VARIANTS[dataset] if name == "lightgbm" else {
                k: v for k, v in VARIANTS[dataset].items() if k in NEURAL_VARIANTS}
            for row in accuracy(panel, protocol, name, variants, args.seed, console):
                results["accuracy"].append({"dataset": dataset, **row})
            if dataset == "synthetic":
                found = recovery(panel, protocol.horizon, name, args.seed, truth)
                results["recovery"].append(found)
                console.print(f"  {name} recovery: {found}")
    _show(results, console)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    console.print(f"Wrote {args.json}")


def _show(results: dict, console: Console) -> None:
    table = Table(title="Covariate effect on accuracy (all windows)")
    for column in ("dataset", "model", "variant", "WAPE", "vs none", "bias %", "RMSSE", "RMSE",
                   "s"):
        table.add_column(column)
    baseline = {(r["dataset"], r["model"]): r["wape"] for r in results["accuracy"]
                if r["variant"] == "none"}
    for r in results["accuracy"]:
        delta = r["wape"] - baseline[(r["dataset"], r["model"])]
        table.add_row(r["dataset"], r["model"], r["variant"], f"{r['wape']:.2f}",
                      f"{delta:+.2f}", f"{r['bias_pct']:+.2f}", f"{r['rmsse']:.4f}",
                      f"{r['rmse']:.3f}", str(r["seconds"]))
    console.print(table)
    for found in results["recovery"]:
        console.print(f"{found['model']}: elasticity {found['elasticity']['estimated']:.3f} "
                      f"(truth {found['elasticity']['truth']}), promotion uplift "
                      f"{found['promo_uplift']['estimated']:.3f} (truth "
                      f"{found['promo_uplift']['truth']})")


if __name__ == "__main__":
    main()
