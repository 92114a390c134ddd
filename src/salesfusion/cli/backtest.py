"""``salesfusion demo`` and ``salesfusion backtest``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from salesfusion.cli.common import app, check_freq, console, guarded, panel_from, staged_folder
from salesfusion.data.panel import Panel
from salesfusion.datasets import load_dataset
from salesfusion.errors import InputError
from salesfusion.evaluation.progress import ConsoleProgress
from salesfusion.evaluation.protocol import BacktestProtocol

BASELINES = ["naive", "seasonal_naive", "moving_average", "ets", "croston", "adida", "imapa",
             "tsb", "lightgbm", "knn_analogue"]
# The demo adds one neural multimodal model (descriptions + attributes + history -> GRU).
DEMO_MODELS = [*BASELINES, "multimodal"]


def _print_summary(summary: Any) -> None:
    table = Table(title="Backtest, all windows and markets (lower is better)")
    for column in summary.columns:
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in summary.iter_rows():
        table.add_row(*[f"{v:,.3f}" if isinstance(v, float) else str(v) for v in row])
    Console().print(table)


def _run_backtest(panel: Panel, models: list[str], protocol: BacktestProtocol, out: Path,
                  title: str, progress: ConsoleProgress) -> None:
    from salesfusion.evaluation.report import write_report
    from salesfusion.evaluation.runner import backtest_models

    protocol.origins(panel.periods)  # too short a panel fails before anything is written
    with staged_folder(out) as staging:
        run = backtest_models(panel, models, protocol, progress=progress)
        progress.close()  # the bars end before the report's own status line
        run.write(staging)
        with progress.stage("Writing the report"):
            write_report(run, staging / "report.html", title=title)
    _print_summary(run.summary())
    console.print(f"Wrote {out}/metrics.csv, forecasts.parquet, notes.json and report.html")


@app.command()
@guarded
def demo(out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/demo")) -> None:
    """The main job on the bundled data: OR-weekly panel, every baseline and the multimodal
    model backtested, report."""
    progress = ConsoleProgress(console)
    dataset = load_dataset("online_retail")
    protocol = BacktestProtocol.from_benchmark(dataset.benchmark)
    with progress:
        # panel_from shows its own spinner on a terminal; a log file gets the start/end lines.
        with progress.stage("Building the panel", spinner=False):
            panel = panel_from(dataset, None, "W", protocol, None, None)
        _run_backtest(panel, DEMO_MODELS, protocol, out, progress=progress,
                      title="salesfusion demo: baselines and a multimodal model on OR-weekly")
    progress.finished("Demo")


@app.command()
@guarded
def backtest(
    models: Annotated[str, typer.Option(help="Comma-separated model names.")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    dataset: Annotated[str | None, typer.Option(help="A bundled dataset.")] = None,
    spec: Annotated[Path | None, typer.Option(help="A YAML dataset spec.")] = None,
    horizon: Annotated[int, typer.Option(min=1)] = 4,
    windows: Annotated[int, typer.Option(min=1)] = 3,
    step: Annotated[int | None, typer.Option(min=1, help="Defaults to the horizon.")] = None,
    refit: Annotated[bool, typer.Option(help="Refit at every origin.")] = True,
    freq: Annotated[str | None, typer.Option(help="D, W or M (the spec's when omitted).")] = None,
    min_nonzero: Annotated[int | None, typer.Option(
        help="Keep series with this many non-zero periods before the test part.")] = None,
    lookback: Annotated[int | None, typer.Option(
        help="Periods before the test part that --min-nonzero counts in.")] = None,
) -> None:
    """Rolling-origin backtest of models on a bundled dataset or a spec."""
    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise InputError("--models names no model")
    from salesfusion.models.registry import model_class

    for name in names:
        model_class(name)
    protocol = BacktestProtocol(horizon=horizon, windows=windows, step=step, refit=refit)
    progress = ConsoleProgress(console)
    with progress:
        with progress.stage("Building the panel", spinner=False):
            panel = panel_from(dataset, spec, check_freq(freq) if freq else None, protocol,
                               min_nonzero, lookback)
        _run_backtest(panel, names, protocol, out, progress=progress,
                      title=f"salesfusion backtest: {dataset or spec}")
    progress.finished("Backtest")


