"""``salesfusion demo`` and ``salesfusion backtest``."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from salesfusion.cli.common import (
    DEFAULT_TABLE,
    Backend,
    RayAddress,
    ToTable,
    ToUrl,
    Workers,
    app,
    backend_session,
    check_freq,
    console,
    guarded,
    panel_from,
)
from salesfusion.cli.output import (
    DATASET,
    OutFormat,
    check_out_format,
    staged_run,
)
from salesfusion.data.launch_splits import LaunchProtocol
from salesfusion.data.panel import Panel
from salesfusion.data.partitioned import write_dataset
from salesfusion.data.splits import BacktestProtocol
from salesfusion.data.sql_write import ForecastTarget, forecast_target, run_id_for
from salesfusion.datasets import load_dataset
from salesfusion.errors import InputError
from salesfusion.evaluation.progress import ConsoleProgress
from salesfusion.models.artefact import sha256_file
from salesfusion.scoring.selection import DEFAULT_METRIC, METRIC_HELP, check_metric

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


def _run_backtest(panel: Panel, models: list[Any],
                  protocol: BacktestProtocol | LaunchProtocol,
                  out: Path | None, title: str, progress: ConsoleProgress,
                  target: ForecastTarget | None = None, run_id: str | None = None,
                  out_format: str = "parquet", on_ray: bool = False,
                  metric: str = DEFAULT_METRIC) -> None:
    """Backtest and write the run folder ``out`` and/or the forecasts into ``target``. The
    rows are committed inside the folder's staging, before it is published, so a failed write
    of either leaves neither (only a failed publication, a rename, could leave the rows)."""
    from salesfusion.data.sql_write import write_forecasts
    from salesfusion.evaluation.report import write_report
    from salesfusion.evaluation.report_launch import write_launch_report
    from salesfusion.evaluation.runner import backtest_models

    # Too short a panel, or a cutoff with no train or test item, fails before anything is written.
    launch = isinstance(protocol, LaunchProtocol)
    if launch:
        for cutoff in protocol.cutoff_periods(panel):
            protocol.split(panel, cutoff)
    else:
        protocol.origins(panel.periods)
    with staged_run(out) if out is not None else nullcontext() as staging:
        run = backtest_models(panel, models, protocol, progress=progress, on_ray=on_ray)
        progress.close()  # the bars end before the report's own status line
        if staging is not None:
            partitioned = out_format == "partitioned"
            run.write(staging, forecasts=not partitioned)
            if partitioned:
                write_dataset(run.forecasts, staging, DATASET)
            with progress.stage("Writing the report"):
                # The launch report's axis is age since launch, not the rolling windows'.
                if launch:
                    write_launch_report(run, staging / "report.html", title=title)
                else:
                    write_report(run, staging / "report.html", title=title, metric=metric)
        if target is not None:
            rows = write_forecasts(_with_origin(run.forecasts, panel, protocol), target.url,
                                   target.table, str(run_id))
    _print_summary(run.summary())
    if out is not None:
        written = "metrics_since_launch.csv, report.html" if launch else "report.html"
        forecasts = "forecasts/ (partitioned)" if out_format == "partitioned" \
            else "forecasts.parquet"
        console.print(f"Wrote {out}/metrics.csv, {forecasts}, notes.json and {written}")
    if target is not None:
        console.print(f"Upserted {rows:,} rows into {target.describe()} (run {run_id})")
    if run.failures:
        for model, error in run.failures.items():
            print(f"error: model '{model}' failed: {error}", file=sys.stderr)
        listed = f"listed in {out}/failures.json and the report" if out else "listed above"
        print(f"error: {len(run.failures)} model(s) failed ({listed}); the other models' "
              f"results are written", file=sys.stderr)
        raise typer.Exit(1)


def _chosen_models(entries: list[str], horizon: int) -> list[Any]:
    """Each ``--models`` entry as a registered name or, for a config or preset file, the model
    it describes; every name or file is checked before any data is read, and two entries may
    not carry the same name (results are keyed by it)."""
    from salesfusion.cli.model_files import is_model_file, model_from_file
    from salesfusion.models.registry import model_class

    chosen: list[Any] = []
    for entry in entries:
        if is_model_file(entry):
            chosen.append(model_from_file(Path(entry), horizon))
        else:
            model_class(entry)
            chosen.append(entry)
    labels = [m if isinstance(m, str) else m.name for m in chosen]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise InputError(f"--models: the name(s) {', '.join(repeated)} are given twice (a "
                         f"config file is named by its file name); rename one")
    return chosen


def _with_origin(forecasts: pl.DataFrame, panel: Panel,
                 protocol: BacktestProtocol | LaunchProtocol) -> pl.DataFrame:
    """The forecasts with ``origin``, the last period observed in their window: a rolling
    window's training end, or the period before a launch cutoff."""
    periods = panel.periods.sort()
    if isinstance(protocol, LaunchProtocol):
        origins = [periods.filter(periods < cutoff).max() or cutoff
                   for cutoff in protocol.cutoff_periods(panel)]
    else:
        origins = protocol.origins(periods)
    windows = pl.DataFrame({"window": range(len(origins)), "origin": origins},
                           schema={"window": forecasts["window"].dtype,
                                   "origin": pl.Datetime("us")})
    return forecasts.join(windows, on="window", how="left")


def _backtest_run_id(names: list[str], protocol: BacktestProtocol | LaunchProtocol,
                     panel: Panel, source: str, options: list[Any]) -> str:
    facts = {"models": sorted(names), "protocol": protocol.model_dump(mode="json"),
             "source": source, "freq": panel.freq, "options": options}
    return run_id_for("backtest", protocol.horizon, panel.periods.max(), facts)


def _read_test_items(path: Path) -> tuple[str, ...]:
    """The item ids of a ``--test-items`` file: one per line; blank lines and lines starting
    with '#' are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--test-items {path}: cannot be read ({exc})") from None
    items = tuple(dict.fromkeys(line.strip() for line in lines
                                if line.strip() and not line.lstrip().startswith("#")))
    if not items:
        raise InputError(f"--test-items {path}: lists no item id (one per line)")
    return items


def _launch_protocol(horizon: int, cutoffs: list[datetime] | None, test_fraction: float,
                     validation_periods: int, min_observed: int | None,
                     scope: str, test_items: Path | None = None) -> LaunchProtocol:
    fixed = _read_test_items(test_items) if test_items is not None else ()
    try:
        return LaunchProtocol(horizon=horizon, cutoffs=tuple(c.date() for c in cutoffs or ()),
                              test_fraction=test_fraction, validation_periods=validation_periods,
                              min_observed=min_observed, scope=scope, test_items=fixed)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise InputError(f"launch protocol: {where + ': ' if where else ''}"
                         f"{error['msg'].removeprefix('Value error, ')}") from None


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
    models: Annotated[str, typer.Option(help=(
        "Comma-separated models: registered names, or model config files (model: NAME, "
        "params: {...}; labelled by the file name) and preset files (.yaml).")) ],
    out: Annotated[Path | None, typer.Option(help="Output folder (optional with --to).")] = None,
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
    protocol_name: Annotated[str, typer.Option("--protocol", help=(
        "rolling: rolling-origin windows over series with history; launch: items held out by "
        "launch date, each scored on its first --horizon periods from launch."))] = "rolling",
    cutoff: Annotated[list[datetime] | None, typer.Option(
        formats=["%Y-%m-%d"], help=("Launch protocol: first period of the test part; repeat "
                                    "for one window per cutoff."))] = None,
    test_fraction: Annotated[float, typer.Option(help=(
        "Launch protocol without --cutoff: share of the launches left to test."))] = 0.2,
    validation_periods: Annotated[int, typer.Option(min=0, help=(
        "Launch protocol: periods before the cutoff whose launches form the validation "
        "part."))] = 0,
    min_observed: Annotated[int | None, typer.Option(min=1, help=(
        "Launch protocol: periods a test series needs observed (the horizon by "
        "default)."))] = None,
    test_items: Annotated[Path | None, typer.Option(help=(
        "Launch protocol: a file of the test items' ids, one per line (a fixed split, as "
        "public benchmarks give it); the cutoff is their earliest launch."))] = None,
    launch_scope: Annotated[str, typer.Option(help=(
        "Launch protocol: item (new products held out by launch) or market (items' entries "
        "into a market after selling elsewhere, forecast from their history abroad and "
        "content)."))] = "item",
    to: ToUrl = None,
    to_table: ToTable = DEFAULT_TABLE,
    out_format: OutFormat = "parquet",
    run_id: Annotated[str | None, typer.Option(
        help="Run id of the rows --to writes (default: from the data source, the models, the "
             "protocol and the data's last period, so rerunning the same command replaces its "
             "rows).")] = None,
    backend: Backend = "local",
    workers: Workers = None,
    ray_address: RayAddress = None,
    metric: Annotated[str, typer.Option(help=(
        "What the report's 'which model to trust' chooses by: " + METRIC_HELP))] = DEFAULT_METRIC,
) -> None:
    """Backtest models on a bundled dataset or a spec: rolling-origin (default) or by launch."""
    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise InputError("--models names no model")
    metric = check_metric(metric)
    check_out_format(out_format, out)
    session = backend_session(backend, workers, ray_address)
    if out is None and to is None:
        raise InputError("Missing option '--out': give --out FOLDER, --to URL, or both")
    if run_id is not None and to is None:
        raise InputError("--run-id names the rows --to writes; give --to URL")
    if protocol_name not in ("rolling", "launch"):
        raise InputError(f"unknown protocol '{protocol_name}'; use rolling or launch")
    protocol: BacktestProtocol | LaunchProtocol
    if test_items is not None and protocol_name != "launch":
        raise InputError("--test-items fixes the test items of --protocol launch")
    if protocol_name == "launch":
        if min_nonzero is not None or lookback is not None:
            raise InputError("--min-nonzero and --lookback select series active before a "
                             "rolling test part; they do not apply to --protocol launch")
        protocol = _launch_protocol(horizon, cutoff, test_fraction, validation_periods,
                                    min_observed, launch_scope, test_items)
        min_nonzero = 0  # a bundled benchmark's selection would drop the new items
    else:
        protocol = BacktestProtocol(horizon=horizon, windows=windows, step=step, refit=refit)
    chosen = _chosen_models(names, horizon)
    names = [m if isinstance(m, str) else m.name for m in chosen]
    # Unreachable database or an incompatible table: refused before the (long) backtest.
    target = forecast_target(to, to_table, run_id) if to is not None else None
    progress = ConsoleProgress(console)
    with progress, session:
        with progress.stage("Building the panel", spinner=False):
            panel = panel_from(dataset, spec, check_freq(freq) if freq else None,
                               protocol if isinstance(protocol, BacktestProtocol) else None,
                               min_nonzero, lookback)
        if target is not None and run_id is None:
            source = dataset or sha256_file(Path(str(spec)))
            configured = {m.name: m.params for m in chosen if not isinstance(m, str)}
            run_id = _backtest_run_id(names, protocol, panel, str(source),
                                      [min_nonzero, lookback, configured])
        _run_backtest(panel, chosen, protocol, out, progress=progress,
                      title=f"salesfusion backtest: {dataset or spec}", target=target,
                      run_id=run_id, out_format=out_format, on_ray=backend == "ray",
                      metric=metric)
    progress.finished("Backtest")


