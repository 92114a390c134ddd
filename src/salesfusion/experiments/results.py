"""An experiment's results from its finished cells: metrics per cell and trial, mean ± std over
trials, rank per dataset, change against the best baseline, paired significance (Diebold-
Mariano with the HLN correction, Wilcoxon across series), critical-difference ranking, and the
tables (Markdown, HTML, LaTeX) and plots that show them.

The headline, the ranks, the critical-difference ranking, the ablation grid and the paired tests
are all by the experiment's ``metric`` (``scoring.selection``: rmsse by default, wape, mae,
bias_abs or pinball; lower is better), shown under its label (``RMSSE``...); the other
``metrics`` are shown beside it. Significance compares each model with the best baseline (the
baseline with the best mean of that metric on that dataset) on the rows both forecast, trial by
trial (``experiments.paired``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from salesfusion.data.forecast_frame import CONTEXT_COLUMNS
from salesfusion.experiments.cells import read_cell, seeded
from salesfusion.experiments.config import ExperimentConfig
from salesfusion.experiments.runner import Plan
from salesfusion.scoring.metrics import evaluate
from salesfusion.scoring.selection import MetricUnavailable, require_scorable, selection_rows

HIGHER_IS_BETTER = {"R2", "direction_accuracy", "direction_AUC"}


@dataclass
class Results:
    cells: pl.DataFrame  # dataset, model, trial, metric, value: every metric of evaluation
    summary: pl.DataFrame  # dataset, model, metric, mean, std, trials
    headline: pl.DataFrame  # dataset, model, primary mean/std, rank, vs best baseline %
    significance: pl.DataFrame
    ranking: dict[str, Any] | None
    ablation: pl.DataFrame | None
    seconds: pl.DataFrame  # dataset, model, trial, seconds
    oracle: pl.DataFrame  # dataset, metric, value: the true mean's error (synthetic data only)


def collect(config: ExperimentConfig, plan: Plan, out: Path) -> Results:
    frames, records = [], []
    baselines = {m.key for m in config.models if m.baseline}
    for cell in plan.cells:
        folder = out / "cells" / cell.folder
        record = read_cell(folder)
        frame = pl.read_parquet(folder / "forecasts.parquet")
        records.append(record)
        copies = [frame]
        if not seeded(cell):
            # An unseeded model ran once: its forecasts stand for every trial (so that it
            # pairs with each trial of the others).
            copies = [frame.with_columns(pl.lit(t).alias("trial"))
                      for t in range(len(config.trial_seeds))]
        frames.extend(copies)
    forecasts = pl.concat(frames, how="diagonal_relaxed")
    cells = _with_scores(evaluate(forecasts, ["dataset", "model", "trial"]), forecasts, config)
    shown = [*config.metrics, *[config.headline_metric] * (config.headline_metric
                                                           not in config.metrics)]
    summary = (cells.filter(pl.col("metric").is_in(shown))
               .group_by("dataset", "model", "metric", maintain_order=True)
               .agg(pl.col("value").mean().alias("mean"), pl.col("value").std().alias("std"),
                    pl.col("value").count().alias("trials")))
    headline = _headline(summary, config.headline_metric, baselines, config)
    horizon = max(r["horizon"] for r in records)
    significance = _significance(forecasts, headline, baselines, horizon, config.metric)
    seconds = pl.DataFrame([{k: r[k] for k in ("dataset", "model", "trial", "seconds")}
                            for r in records])
    return Results(cells, summary, headline, significance,
                   _ranking(cells, config.headline_metric), _ablation(config, summary),
                   seconds, _oracle(config, forecasts))


def _with_scores(cells: pl.DataFrame, forecasts: pl.DataFrame,
                 config: ExperimentConfig) -> pl.DataFrame:
    """``cells`` (every metric per dataset, model and trial) with the selection metric's rows
    where it is not a metrics column already (bias_abs); refused, one line, where a model
    cannot be scored by it (pinball without quantiles), since it could not be ranked."""
    require_scorable(forecasts, config.metric, "the experiment's forecasts")
    scores = selection_rows(cells, config.metric)
    missing = sorted(set(scores.filter(pl.col("value").is_null())["model"].to_list()))
    if missing:
        hint = (" (they forecast no quantiles)" if config.metric == "pinball" else "")
        raise MetricUnavailable(f"metric {config.metric} is undefined for model(s) "
                                f"{', '.join(missing)}{hint}, so the models cannot be ranked "
                                f"by it; choose another metric")
    if config.headline_metric in cells["metric"].to_list():
        return cells
    return pl.concat([cells, scores.select(cells.columns)])


def _oracle(config: ExperimentConfig, forecasts: pl.DataFrame) -> pl.DataFrame:
    """Where the truth is known (the bundled synthetic shop), the error of forecasting its
    true Poisson mean on the rows the models were scored on: the floor no model can beat."""
    from salesfusion.datasets import load_dataset
    from salesfusion.datasets.synthetic import expected_demand

    parts = []
    for dataset in config.datasets:
        if dataset.name != "synthetic":
            continue
        truth = expected_demand(load_dataset("synthetic"))
        rows = (forecasts.filter(pl.col("dataset") == dataset.key)
                .unique(["item_id", "market", "timestamp", "window"])
                .select("item_id", "market", "timestamp", "window", "y_true",
                        *[c for c in CONTEXT_COLUMNS if c in forecasts.columns])
                .join(truth.rename({"mean": "y_pred"}), on=["item_id", "market", "timestamp"],
                      how="inner"))
        if rows.height:
            shown = {*config.metrics, config.headline_metric}
            parts.append(evaluate(rows).filter(pl.col("metric").is_in(list(shown)))
                         .with_columns(pl.lit(dataset.key).alias("dataset"),
                                       pl.lit(rows.height).alias("rows")))
    return (pl.concat(parts).select("dataset", "metric", "value", "rows") if parts
            else pl.DataFrame(schema={"dataset": pl.String, "metric": pl.String,
                                      "value": pl.Float64, "rows": pl.Int64}))


def _headline(summary: pl.DataFrame, metric: str, baselines: set[str],
              config: ExperimentConfig) -> pl.DataFrame:
    higher = metric in HIGHER_IS_BETTER
    primary = summary.filter(pl.col("metric") == metric)
    rows = []
    for dataset in primary["dataset"].unique(maintain_order=True):
        part = primary.filter(pl.col("dataset") == dataset).sort("mean", descending=higher)
        base = part.filter(pl.col("model").is_in(list(baselines)))
        best = base.row(0, named=True) if base.height else None
        for rank, row in enumerate(part.iter_rows(named=True), start=1):
            change = None
            if best is not None and best["mean"]:
                change = 100 * (row["mean"] / best["mean"] - 1)
            rows.append({"dataset": dataset, "model": row["model"],
                         "baseline": row["model"] in baselines, "mean": row["mean"],
                         "std": row["std"], "trials": row["trials"], "rank": rank,
                         "best_baseline": best["model"] if best else None,
                         "vs_best_baseline_pct": change})
    return pl.DataFrame(rows)


def _significance(forecasts: pl.DataFrame, headline: pl.DataFrame, baselines: set[str],
                  horizon: int, metric: str) -> pl.DataFrame:
    from salesfusion.experiments.paired import metric_significance

    parts = []
    for dataset in headline["dataset"].unique(maintain_order=True):
        rows = headline.filter(pl.col("dataset") == dataset)
        best = rows["best_baseline"][0]
        if best is None:
            continue
        models = [m for m in rows["model"].to_list() if m != best]
        if not models:
            continue
        data = forecasts.filter(pl.col("dataset") == dataset)
        parts.append(metric_significance(data, [*models, best], horizon, best, metric))
    return pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()


def _ranking(cells: pl.DataFrame, metric: str) -> dict[str, Any] | None:
    from salesfusion.errors import InputError
    from salesfusion.experiments.ranking import critical_difference

    scores = cells.filter(pl.col("metric") == metric).select("dataset", "model", "trial",
                                                             "value")
    blocks = "dataset" if scores["dataset"].n_unique() >= 2 else "dataset_trial"
    try:
        result = critical_difference(scores, lower_is_better=metric not in HIGHER_IS_BETTER,
                                     blocks=blocks)
    except InputError as exc:
        return {"skipped": str(exc)}
    return {"blocks": blocks, "mean_ranks": result.mean_ranks,
            "critical_difference": result.critical_difference,
            "friedman_p_value": result.friedman_p_value, "groups": result.groups,
            "n_blocks": result.n_blocks, "method": result.method}


def _ablation(config: ExperimentConfig, summary: pl.DataFrame) -> pl.DataFrame | None:
    if config.ablation is None:
        return None
    rows = []
    for variant in config.variants():
        if not variant.levels:
            continue
        part = summary.filter((pl.col("model") == variant.label)
                              & (pl.col("metric") == config.headline_metric))
        for row in part.iter_rows(named=True):
            rows.append({**variant.levels, "dataset": row["dataset"], "model": variant.label,
                         "mean": row["mean"], "std": row["std"]})
    return pl.DataFrame(rows)


def write_results(results: Results, config: ExperimentConfig, folder: Path,
                  record: dict[str, Any]) -> list[str]:
    """Tables (Markdown, HTML, LaTeX), CSVs, plots and ``summary.json`` into ``folder``; the
    file names written."""
    from salesfusion.experiments.tables import render_tables, write_plots

    folder.mkdir(parents=True, exist_ok=True)
    results.cells.write_csv(folder / "cells.csv", float_precision=6)
    results.summary.write_csv(folder / "summary.csv", float_precision=6)
    results.headline.write_csv(folder / "headline.csv", float_precision=6)
    results.seconds.write_csv(folder / "seconds.csv", float_precision=2)
    written = ["cells.csv", "summary.csv", "headline.csv", "seconds.csv"]
    if results.oracle.height:
        results.oracle.write_csv(folder / "oracle.csv", float_precision=6)
        written.append("oracle.csv")
    if results.significance.height:
        # Full precision: p-values such as 1e-14 would round to 0 at 6 decimals.
        results.significance.write_csv(folder / "significance.csv")
        written.append("significance.csv")
    written += render_tables(results, config, folder, record)
    written += write_plots(results, config, folder)
    (folder / "summary.json").write_text(json.dumps(
        {**record, "ranking": results.ranking,
         "headline": results.headline.to_dicts()}, indent=1, default=str) + "\n")
    return [*written, "summary.json"]
