"""Backtest several models on one panel with progress, timing and the standard output files."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from salesfusion.data.panel import Panel
from salesfusion.evaluation.backtest import metrics_table, run_backtest
from salesfusion.evaluation.protocol import BacktestProtocol
from salesfusion.models.registry import create_model, model_class


@dataclass
class BacktestRun:
    """Everything a backtest of several models produced."""

    panel: Panel
    protocol: BacktestProtocol
    forecasts: pl.DataFrame
    metrics: pl.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self, metrics: tuple[str, ...] = ("WAPE", "MASE", "sMAPE", "RMSE")) -> pl.DataFrame:
        """Overall metrics per model over all windows, best WAPE first, with wall time."""
        overall = (self.metrics.filter((pl.col("window") == "all") & (pl.col("segment") == "all")
                                       & pl.col("metric").is_in(metrics))
                   .pivot(on="metric", index="model", values="value"))
        timing = pl.DataFrame({"model": list(self.seconds),
                               "seconds": list(self.seconds.values())})
        return (overall.join(timing, on="model", how="left")
                .select("model", *[m for m in metrics if m in overall.columns], "seconds")
                .sort(metrics[0], nulls_last=True))

    def write(self, folder: Path) -> None:
        """``metrics.csv`` and ``forecasts.parquet`` (the output contract) and ``timings.csv``
        (wall seconds of each model's fits and forecasts over every window)."""
        self.metrics.write_csv(folder / "metrics.csv", float_precision=6)
        self.forecasts.write_parquet(folder / "forecasts.parquet")
        pl.DataFrame({"model": list(self.seconds), "seconds": list(self.seconds.values())},
                     schema={"model": pl.String, "seconds": pl.Float64}).write_csv(
            folder / "timings.csv", float_precision=2)


def backtest_models(panel: Panel, model_names: list[str], protocol: BacktestProtocol,
                    progress: Progress | None = None) -> BacktestRun:
    """Backtest each named model on the panel under one protocol."""
    for name in model_names:
        model_class(name)  # fail on an unknown name before any work is done
    progress = progress or Progress(
        TextColumn("[bold]{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("windows"), TimeElapsedColumn(), transient=False)
    forecasts, seconds = [], {}
    with progress:
        for name in model_names:
            task = progress.add_task(name, total=protocol.windows)
            model = create_model(name, horizon=protocol.horizon)
            started = time.perf_counter()
            forecasts.append(run_backtest(model, panel, protocol,
                                          on_window=lambda _w, t=task: progress.advance(t)))
            seconds[name] = time.perf_counter() - started
    all_forecasts = pl.concat(forecasts, how="diagonal")
    return BacktestRun(panel=panel, protocol=protocol, forecasts=all_forecasts,
                       metrics=metrics_table(all_forecasts), seconds=seconds)
