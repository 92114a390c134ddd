"""The ``salesfusion`` command line.

Bad input ends with one line on stderr naming the file, column or value, exit code 2, and no
partial output: results are written to a staging folder that replaces the output only once
everything has succeeded.
"""

from __future__ import annotations

import functools
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from salesfusion.data.io import write_table
from salesfusion.data.panel import Panel, build_panel
from salesfusion.data.spec import FREQUENCIES, load_spec
from salesfusion.data.validate import load_tables
from salesfusion.datasets import load_dataset
from salesfusion.datasets.online_retail import (
    OR_WEEKLY_LOOKBACK,
    OR_WEEKLY_MIN_NONZERO,
    OR_WEEKLY_PROTOCOL,
)
from salesfusion.errors import InputError
from salesfusion.evaluation.protocol import BacktestProtocol, keep_active_series

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Multimodal demand forecasting for cross-border e-commerce.")
data_app = typer.Typer(no_args_is_help=True, help="Check dataset specs and build panels.")
app.add_typer(data_app, name="data")
console = Console(stderr=True)
DEFAULT_CACHE = Path.home() / ".cache" / "salesfusion" / "embeddings"

BASELINES = ["naive", "seasonal_naive", "moving_average", "ets", "croston", "adida", "imapa",
             "tsb", "lightgbm", "knn_analogue"]
# The demo adds one neural multimodal model (descriptions + attributes + history -> GRU).
DEMO_MODELS = [*BASELINES, "multimodal"]


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an ``InputError`` into one line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            message = " ".join(str(exc).split())
            print(f"error: {message}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper


@contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` that becomes ``out`` only if the block succeeds."""
    out = out.resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: output path exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    out.mkdir(exist_ok=True)
    for item in staging.iterdir():
        target = out / item.name
        if target.is_dir():
            shutil.rmtree(target)
        item.replace(target)
    staging.rmdir()


def _check_freq(freq: str) -> str:
    if freq.upper() not in FREQUENCIES:
        raise InputError(f"unknown frequency '{freq}'; use one of {', '.join(FREQUENCIES)}")
    return freq.upper()


def _panel_from(dataset: str | None, spec: Path | None, freq: str | None,
                protocol: BacktestProtocol, min_nonzero: int | None,
                lookback: int | None) -> Panel:
    if (dataset is None) == (spec is None):
        raise InputError("give exactly one of --dataset NAME or --spec SPEC")
    with console.status("Building the panel"):
        if dataset is not None:
            panel = load_dataset(dataset).panel(freq)
            if dataset == "online_retail":  # the standard OR-weekly selection
                min_nonzero = OR_WEEKLY_MIN_NONZERO if min_nonzero is None else min_nonzero
                lookback = OR_WEEKLY_LOOKBACK if lookback is None else lookback
        else:
            panel = build_panel(load_tables(load_spec(spec)), freq)
        if min_nonzero:
            panel = keep_active_series(panel, protocol, lookback=lookback or len(panel.periods),
                                       min_nonzero=min_nonzero)
    console.print(f"Panel: {panel.n_series:,} series, {panel.data.height:,} rows, "
                  f"{len(panel.periods)} periods (freq {panel.freq})")
    return panel


def _print_summary(summary: Any) -> None:
    table = Table(title="Backtest, all windows and markets (lower is better)")
    for column in summary.columns:
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in summary.iter_rows():
        table.add_row(*[f"{v:,.3f}" if isinstance(v, float) else str(v) for v in row])
    Console().print(table)


def _run_backtest(panel: Panel, models: list[str], protocol: BacktestProtocol, out: Path,
                  title: str) -> None:
    from salesfusion.evaluation.report import write_report
    from salesfusion.evaluation.runner import backtest_models

    protocol.origins(panel.periods)  # too short a panel fails before anything is written
    with staged_folder(out) as staging:
        run = backtest_models(panel, models, protocol)
        run.write(staging)
        with console.status("Writing the report"):
            write_report(run, staging / "report.html", title=title)
    _print_summary(run.summary())
    console.print(f"Wrote {out}/metrics.csv, forecasts.parquet and report.html")


@app.command()
@guarded
def demo(out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/demo")) -> None:
    """The main job on the bundled data: OR-weekly panel, every baseline and the multimodal
    model backtested, report."""
    started = time.perf_counter()
    panel = _panel_from("online_retail", None, "W", OR_WEEKLY_PROTOCOL, None, None)
    _run_backtest(panel, DEMO_MODELS, OR_WEEKLY_PROTOCOL, out,
                  title="salesfusion demo: baselines and a multimodal model on OR-weekly")
    console.print(f"Demo finished in {time.perf_counter() - started:,.0f} s")


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
    panel = _panel_from(dataset, spec, _check_freq(freq) if freq else None, protocol,
                        min_nonzero, lookback)
    _run_backtest(panel, names, protocol, out, title=f"salesfusion backtest: {dataset or spec}")


@app.command()
@guarded
def encode(
    modality: Annotated[str, typer.Option(help="text, image or static.")],
    encoder: Annotated[str, typer.Option(help="A registered encoder of that modality.")],
    dataset: Annotated[str | None, typer.Option(help="A bundled dataset.")] = None,
    spec: Annotated[Path | None, typer.Option(help="A YAML dataset spec.")] = None,
    cache: Annotated[Path, typer.Option(help="Embedding cache folder.")] = DEFAULT_CACHE,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    out: Annotated[Path | None, typer.Option(help="Write item_id, mask, problem, vector "
                                             "to this Parquet file.")] = None,
) -> None:
    """Encode one modality of the items table (cached), printing throughput and cache hits."""
    from salesfusion.encoders.cache import EmbeddingCache
    from salesfusion.encoders.inputs import item_inputs
    from salesfusion.encoders.registry import create_encoder, encoder_class

    if encoder_class(encoder).modality != modality:
        raise InputError(f"encoder '{encoder}' encodes {encoder_class(encoder).modality}, "
                         f"not {modality}")
    if (dataset is None) == (spec is None):
        raise InputError("give exactly one of --dataset NAME or --spec SPEC")
    source = load_dataset(dataset) if dataset else None
    tables = source.tables if source else load_tables(load_spec(spec))
    ids, inputs, params = item_inputs(tables, modality)
    model = create_encoder(encoder, **params)
    if model.needs_fit:
        corpus = inputs
        if getattr(model, "fits_on_pairs", False):  # clip: (image, title) pairs
            corpus = list(zip(inputs, item_inputs(tables, "text")[1], strict=True))
        with console.status(f"Fitting {encoder} on {len(inputs):,} items"):
            model.fit(corpus)
    started = time.perf_counter()
    result = model.encode(inputs, batch_size=batch_size, cache=EmbeddingCache(cache),
                          progress=True)
    seconds = time.perf_counter() - started
    console.print(f"{encoder}: {len(inputs):,} inputs ({result.unique:,} unique contents), "
                  f"{result.cache_hits:,} cache hits, {result.masked:,} masked, "
                  f"{seconds:,.2f} s, {len(inputs) / max(seconds, 1e-9):,.1f} inputs/s")
    for index, problem in list(result.problems.items())[:5]:
        console.print(f"  masked {ids[index]}: {problem}")
    if out is not None:
        import polars as pl

        frame = pl.DataFrame({"item_id": ids, "mask": result.mask,
                              "problem": [result.problems.get(i) for i in range(len(ids))],
                              "vector": list(result.vectors.reshape(len(ids), -1))})
        with staged_folder(out.parent) as staging:
            frame.write_parquet(staging / out.name)
        console.print(f"Wrote {out}")


def _read_config(path: Path) -> tuple[str, dict[str, Any]]:
    import yaml

    if not path.is_file():
        raise InputError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML") from exc
    if not isinstance(raw, dict) or "model" not in raw:
        raise InputError(f"{path}: a model config is a mapping with 'model' (a registered "
                         f"model or preset) and optional 'params'")
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise InputError(f"{path}: 'params' must be a mapping")
    return str(raw["model"]), params


@app.command()
@guarded
def train(
    out: Annotated[Path, typer.Option(help="Model folder to write.")],
    config: Annotated[Path | None, typer.Option(help="YAML: model: NAME, params: {...}")] = None,
    preset: Annotated[str | None, typer.Option(help="A registered model or preset.")] = None,
    dataset: Annotated[str | None, typer.Option(help="A bundled dataset.")] = None,
    spec: Annotated[Path | None, typer.Option(help="A YAML dataset spec.")] = None,
    freq: Annotated[str | None, typer.Option(help="D, W or M.")] = None,
) -> None:
    """Train a model (a preset or a config) on a dataset and save it."""
    from salesfusion.models.registry import create_model

    if (config is None) == (preset is None):
        raise InputError("give exactly one of --config CFG or --preset NAME")
    name, params = _read_config(config) if config else (preset, {})
    model = create_model(name, **params)  # unknown names and parameters fail here
    panel = _panel_from(dataset, spec, _check_freq(freq) if freq else None,
                        OR_WEEKLY_PROTOCOL, None, None)
    with staged_folder(out) as staging:
        with console.status(f"Training {name} on {panel.n_series:,} series"):
            started = time.perf_counter()
            model.fit(panel)
        model.save(staging)
    for note in getattr(model, "notes", []):
        console.print(f"note: {note}")
    console.print(f"Trained {name} in {time.perf_counter() - started:,.1f} s; saved to {out}")


@app.command()
@guarded
def predict(
    model: Annotated[Path, typer.Option(help="A saved model folder.")],
    out: Annotated[Path, typer.Option(help="Forecasts Parquet file.")],
    horizon: Annotated[int, typer.Option(min=1)] = 4,
    dataset: Annotated[str | None, typer.Option(help="A bundled dataset.")] = None,
    spec: Annotated[Path | None, typer.Option(help="A YAML dataset spec.")] = None,
    freq: Annotated[str | None, typer.Option(help="D, W or M.")] = None,
    cold_start: Annotated[bool, typer.Option(
        help="Also forecast every item of the items table that has no sales yet, in every "
             "market.")] = False,
) -> None:
    """Forecast with a saved model from the latest data of a dataset."""
    import polars as pl

    from salesfusion.data.panel import SERIES_KEY
    from salesfusion.models.base import Forecaster

    if out.suffix.lower() not in (".parquet", ".pq"):
        raise InputError(f"{out}: forecasts are written as Parquet; use a .parquet name")
    forecaster = Forecaster.load(model)
    panel = _panel_from(dataset, spec, _check_freq(freq) if freq else None,
                        OR_WEEKLY_PROTOCOL, None, None)
    series = panel.data.select(SERIES_KEY).unique(maintain_order=True)
    if cold_start:
        if panel.items is None:
            raise InputError("--cold-start needs an items table in the dataset")
        unsold = panel.items.select("item_id").join(series.select("item_id"), on="item_id",
                                                    how="anti")
        markets = series.select("market").unique(maintain_order=True)
        series = pl.concat([series, unsold.join(markets, how="cross")])
    forecast = forecaster.predict(horizon, history=panel, series=series)
    with staged_folder(out.parent) as staging:
        forecast.with_columns(pl.lit(forecaster.name).alias("model")).write_parquet(
            staging / out.name)
    console.print(f"Wrote {out}: {forecast.height:,} rows for {series.height:,} series")


@data_app.command("validate")
@guarded
def data_validate(spec: Annotated[Path, typer.Argument(help="A YAML dataset spec.")]) -> None:
    """Check a spec and its tables; print what each table holds."""
    tables = load_tables(load_spec(spec))
    for name, table in tables.spec.tables().items():
        frame = getattr(tables, name)
        console.print(f"{name}: {frame.height:,} rows from {tables.spec.resolve(table.path)} "
                      f"(roles: {', '.join(table.columns)})")
    panel = build_panel(tables)
    console.print(f"OK: panel at freq {panel.freq} would have {panel.n_series:,} series and "
                  f"{panel.data.height:,} rows")


@data_app.command("build")
@guarded
def data_build(
    spec: Annotated[Path, typer.Argument(help="A YAML dataset spec.")],
    out: Annotated[Path, typer.Option(help="Panel file: .parquet, .csv or .duckdb.")],
    freq: Annotated[str | None, typer.Option(help="D, W or M (the spec's when omitted).")] = None,
) -> None:
    """Aggregate the spec's sales into a regular panel file."""
    if out.suffix.lower() not in (".parquet", ".pq", ".csv", ".duckdb", ".db"):
        raise InputError(f"{out}: unknown output format '{out.suffix}'; use .parquet, .csv "
                         f"or .duckdb")
    panel = build_panel(load_tables(load_spec(spec)), _check_freq(freq) if freq else None)
    with staged_folder(out.parent) as staging:
        write_table(panel.data, staging / out.name)
    console.print(f"Wrote {out}: {panel.n_series:,} series, {panel.data.height:,} rows")


if __name__ == "__main__":
    app()
