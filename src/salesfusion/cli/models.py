"""``salesfusion train`` and ``salesfusion predict``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from salesfusion.cli.common import (
    DEFAULT_TABLE,
    Backend,
    RayAddress,
    ToTable,
    ToUrl,
    Workers,
    app,
    check_backend,
    check_freq,
    console,
    guarded,
    panel_from,
)
from salesfusion.cli.fit_display import FitDisplay
from salesfusion.cli.forecast_output import (
    _backtest_metrics,
    _head,
    _report,
    _run_id,
    _write,
    out_kind,
    parse_service_level,
    with_order_quantity,
)
from salesfusion.cli.launches import _launch_models, _launches
from salesfusion.cli.model_files import configured_model, read_model_config
from salesfusion.cli.output import OutFormat, check_out_format, staged_run
from salesfusion.errors import InputError
from salesfusion.scoring.selection import DEFAULT_METRIC, METRIC_HELP, check_metric
from salesfusion.training.fit_progress import listen_to_fit


@app.command()
@guarded
def train(
    out: Annotated[Path, typer.Option(help="Model folder to write.")],
    config: Annotated[Path | None, typer.Option(help="YAML: model: NAME, params: {...}")] = None,
    preset: Annotated[str | None, typer.Option(
        help="A registered model or preset, or a preset YAML file.")] = None,
    dataset: Annotated[str | None, typer.Option(help="A bundled dataset.")] = None,
    spec: Annotated[Path | None, typer.Option(help="A YAML dataset spec.")] = None,
    freq: Annotated[str | None, typer.Option(help="D, W or M.")] = None,
    horizon: Annotated[int | None, typer.Option(
        min=1, help="Periods ahead the model is trained for (models with a fixed horizon; "
                    "the config's or preset's when omitted).")] = None,
    backend: Backend = "local",
    workers: Workers = None,
    ray_address: RayAddress = None,
) -> None:
    """Train a model (a preset or a config) on a dataset and save it."""
    if (config is None) == (preset is None):
        raise InputError("give exactly one of --config CFG or --preset NAME")
    check_backend(backend, workers, ray_address)
    name, params = read_model_config(config) if config else (preset, {})
    if horizon is not None and params.get("horizon", horizon) != horizon:
        raise InputError(f"--horizon {horizon} contradicts 'horizon: {params['horizon']}' in "
                         f"{config}; give one of them")
    model = configured_model(name, params, horizon, config)  # bad names/params fail here
    place = _training_place(model, name, backend, workers or 2, ray_address)
    panel = panel_from(dataset, spec, check_freq(freq) if freq else None,
                        None, None, None)
    with staged_run(out) as staging:
        shown = FitDisplay(console, name, f"Training {name} on {panel.n_series:,} series")
        with place as plan, shown, listen_to_fit(shown.step):
            started = time.perf_counter()
            model.fit(panel)
        model.save(staging)
    for note in getattr(model, "notes", []):
        console.print(f"note: {note}")
    if plan is not None:
        sizes = sorted({run.world_size for run in plan.runs})
        console.print(f"trained on Ray: {', '.join(map(str, sizes))} workers, DDP")
    console.print(f"Trained {name} in {time.perf_counter() - started:,.1f} s; saved to {out}")


def _training_place(model: Any, name: str, backend: str, workers: int,
                    address: str | None) -> AbstractContextManager[Any]:
    """Where ``model`` trains: here (None), or on a Ray session with the ``RayPlan`` it was told
    to train on; a model that cannot train on Ray is refused before any data is read."""
    if backend == "local":
        return nullcontext(None)
    from salesfusion.distributed import require_ray
    from salesfusion.training.ray_train import ray_plan, refuse_checkpoint_dir

    plan = ray_plan(workers, address)
    model.train_on(plan)  # refuses a model that cannot
    refuse_checkpoint_dir(model.config.checkpoint_dir)
    require_ray("ray.train")
    return _on_ray(plan)


@contextmanager
def _on_ray(plan: Any) -> Iterator[Any]:
    from salesfusion.distributed import ray_session

    with ray_session(plan.address, plan.workers):
        yield plan


@app.command()
@guarded
def predict(
    model: Annotated[Path, typer.Option(help="A saved model folder.")],
    out: Annotated[Path | None, typer.Option(
        help="Forecasts file, its format chosen by the suffix: .parquet, .csv or .xlsx (one "
             "sheet per market and a totals sheet); optional with --to.")] = None,
    horizon: Annotated[int, typer.Option(min=1)] = 4,
    dataset: Annotated[str | None, typer.Option(help="A bundled dataset.")] = None,
    spec: Annotated[Path | None, typer.Option(help="A YAML dataset spec.")] = None,
    freq: Annotated[str | None, typer.Option(help="D, W or M.")] = None,
    cold_start: Annotated[bool, typer.Option(
        help="Also forecast every item of the items table that has no sales yet, in every "
             "market.")] = False,
    launch: Annotated[bool, typer.Option(
        help="Forecast items' first H periods from their launch (a launch-capable model), "
             "dated by the items table's launch_date or --launch-date.")] = False,
    launch_date: Annotated[str | None, typer.Option(
        help="YYYY-MM-DD: the launch of the --launch items, instead of the items "
             "table's.")] = None,
    items: Annotated[str | None, typer.Option(
        help="ID,ID: the items --launch forecasts (every item of the items table without "
             "sales when omitted).")] = None,
    markets: Annotated[str | None, typer.Option(
        help="A,B: the markets --launch forecasts in (every market of the panel when "
             "omitted).")] = None,
    plan: Annotated[Path | None, typer.Option(
        help="CSV/Parquet what-if plan: timestamp, item_id, market and future-known covariate "
             "columns (price, promo, ...) to forecast under instead of the data's; also "
             "writes <out stem>_plan_vs_base<suffix>: each planned series' units without "
             "and with the plan.")] = None,
    service_level: Annotated[str | None, typer.Option(
        metavar="LEVEL", help="A probability in (0, 1), e.g. 0.9: adds order_quantity, the "
                              "forecast's quantile at that level, beside y_pred (a model "
                              "with quantiles; between two of its levels, "
                              "interpolated).")] = None,
    to: ToUrl = None,
    to_table: ToTable = DEFAULT_TABLE,
    run_id: Annotated[str | None, typer.Option(
        help="Run id of the rows --to writes (default: from the model's checksum, the data's "
             "last period, the horizon and any plan or launch options, so rerunning the same "
             "command replaces its rows).")] = None,
    report: Annotated[Path | None, typer.Option(
        help="Also write an HTML report of these forecasts for planners (.html).")] = None,
    report_backtest: Annotated[Path | None, typer.Option(
        help="A `salesfusion backtest` output folder whose metrics.csv the report shows as "
             "the model's record per market.")] = None,
    out_format: OutFormat = "parquet",
    metric: Annotated[str, typer.Option(help=(
        "What the report's backtest record compares models by: " + METRIC_HELP))
    ] = DEFAULT_METRIC,
) -> None:
    """Forecast with a saved model from the latest data of a dataset."""
    import polars as pl

    from salesfusion.data.panel import SERIES_KEY
    from salesfusion.data.sql_write import forecast_target
    from salesfusion.models.base import Forecaster

    if out is None and to is None:
        raise InputError("Missing option '--out': give --out FILE.parquet, --to URL, or "
                         "both")
    check_out_format(out_format, out)
    out_kind(out, out_format)  # an unknown suffix: refused before any work
    level = parse_service_level(service_level)
    if run_id is not None and to is None:
        raise InputError("--run-id names the rows --to writes; give --to URL")
    if report is not None and report.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"{report}: the report is HTML; use a .html name")
    if report_backtest is not None and report is None:
        raise InputError("--report-backtest goes with --report FILE.html")
    record = _backtest_metrics(report_backtest) if report_backtest is not None else None
    metric = check_metric(metric)
    if not launch and (launch_date or items or markets):
        raise InputError("--launch-date, --items and --markets go with --launch")
    if launch and cold_start:
        raise InputError("give one of --launch or --cold-start: a launch forecast is already "
                         "for items without sales")
    forecaster = Forecaster.load(model)
    # Unreachable database or an incompatible table: refused before any forecasting.
    target = forecast_target(to, to_table, run_id) if to is not None else None
    if launch and not forecaster.supports_launch:
        raise InputError(f"{model}: model '{forecaster.name}' cannot forecast from a launch "
                         f"date; train a launch-anchored model ({', '.join(_launch_models())})")
    if freq is not None and forecaster.freq and check_freq(freq) != forecaster.freq:
        raise InputError(f"{model}: the model was trained at frequency '{forecaster.freq}' "
                         f"and cannot forecast at --freq '{check_freq(freq)}'; leave --freq out "
                         f"or train a model at '{check_freq(freq)}'")
    # The model's own frequency, not the spec's default: a weekly model forecasts weeks.
    panel = panel_from(dataset, spec, check_freq(freq) if freq else forecaster.freq,
                        None, None, None)
    base, plan_frame = panel, None
    if plan is not None:
        from salesfusion.data.plans import load_plan

        plan_frame = load_plan(plan, panel)
        panel = panel.with_plan(plan_frame, where=str(plan))
    if target is not None and run_id is None:
        run_id = _run_id(model, forecaster.name, panel, horizon, plan,
                         [launch, launch_date, items, markets])
    if launch:
        launches = _launches(panel, launch_date, items, markets)

        def forecast_from(history: Any) -> Any:
            return forecaster.predict_launch(launches, horizon, history=history)
    else:
        series = panel.data.select(SERIES_KEY).unique(maintain_order=True)
        if cold_start:
            if panel.items is None:
                raise InputError("--cold-start needs an items table in the dataset")
            unsold = panel.items.select("item_id").join(series.select("item_id"), on="item_id",
                                                        how="anti")
            every_market = series.select("market").unique(maintain_order=True)
            series = pl.concat([series, unsold.join(every_market, how="cross")])

        def forecast_from(history: Any) -> Any:
            return forecaster.predict(horizon, history=history, series=series)
    forecast = forecast_from(panel)
    note = None
    if level is not None:  # before the plan's base forecast: a model without it fails fast
        forecast, note = with_order_quantity(forecast, level, forecaster.name)
    sides = {}
    if plan_frame is not None:
        from salesfusion.data.plans import plan_vs_base

        sides["plan_vs_base"] = plan_vs_base(forecast_from(base), forecast, plan_frame)
    written = _write(forecast.with_columns(pl.lit(forecaster.name).alias("model")), panel, out,
                     target, run_id, out_format, sides)
    _report(report, forecast, panel, model, forecaster.name, record, metric)
    if note is not None:
        console.print(f"note: {note}")
    if launch:
        console.print(f"{_head(out)}: {forecast.height:,} rows for {launches.height:,} launches "
                      f"({launches['item_id'].n_unique():,} items in "
                      f"{launches['market'].n_unique():,} markets), periods 1-{horizon} from "
                      f"launch")
    else:
        cold = forecast.filter(pl.col("cold_start")).select(SERIES_KEY).n_unique()
        console.print(f"{_head(out)}: {forecast.height:,} rows for {series.height:,} series "
                      f"({cold:,} without history; {int(forecast['before_launch'].sum()):,} "
                      f"rows before launch, forecast as 0)")
    if plan_frame is not None:
        _plan_summary(sides["plan_vs_base"], written)


def _plan_summary(table: Any, written: list[Path]) -> None:
    base, planned = float(table["base_units"].sum()), float(table["plan_units"].sum())
    change = f" ({100 * (planned / base - 1):+.1f} %)" if base else ""
    where = f"; wrote {written[0]}" if written else ""
    console.print(f"Plan vs base: {table.height:,} planned series, {base:,.1f} units without "
                  f"the plan, {planned:,.1f} with it{change}{where}")
