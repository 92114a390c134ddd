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
from salesfusion.cli.output import (
    OutFormat,
    check_out_format,
    staged_file,
    staged_forecasts,
    staged_run,
)
from salesfusion.errors import InputError


def _read_config(path: Path) -> tuple[str, dict[str, Any]]:
    from salesfusion.data.yamlfile import read_mapping

    raw = read_mapping(path, "model config")
    if "model" not in raw or set(raw) - {"model", "params"}:
        raise InputError(f"{path}: a model config is a mapping with 'model' (a registered "
                         f"model or preset) and optional 'params', got keys {sorted(raw)}")
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise InputError(f"{path}: 'params' must be a mapping")
    return str(raw["model"]), params


def _configured_model(name: str, params: dict[str, Any], horizon: int | None,
                      config: Path | None) -> Any:
    """The model a config file or a preset (a registered name or a preset YAML file) names,
    validated before any data is read; errors name the file and the key."""
    from salesfusion.models.presets import load_preset
    from salesfusion.models.registry import build_model, model_class

    if Path(name).suffix.lower() in (".yaml", ".yml"):  # a preset file, named alone or by a config
        return build_model(load_preset(name), params, horizon, source=str(config or name))
    return build_model(model_class(name), params, horizon,
                       source=str(config) if config else None)


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
    name, params = _read_config(config) if config else (preset, {})
    if horizon is not None and params.get("horizon", horizon) != horizon:
        raise InputError(f"--horizon {horizon} contradicts 'horizon: {params['horizon']}' in "
                         f"{config}; give one of them")
    model = _configured_model(name, params, horizon, config)  # bad names/params fail here
    place = _training_place(model, name, backend, workers or 2, ray_address)
    panel = panel_from(dataset, spec, check_freq(freq) if freq else None,
                        None, None, None)
    with staged_run(out) as staging:
        with place as plan, console.status(f"Training {name} on {panel.n_series:,} series"):
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
    """Where ``model`` trains: here (None), or a ``RayPlan`` on a Ray session; a model that
    cannot train on Ray is refused before any data is read."""
    if backend == "local":
        return nullcontext(None)
    from salesfusion.distributed import require_ray
    from salesfusion.models.multimodal import MultimodalForecaster

    if not isinstance(model, MultimodalForecaster):
        raise InputError(f"model '{name}' is not a neural model: --backend ray trains neural "
                         f"models only (multimodal and its presets)")
    if model.config.checkpoint_dir:
        raise InputError(f"checkpoint_dir ({model.config.checkpoint_dir}) cannot be used with "
                         f"--backend ray: resuming from a checkpoint folder is local only")
    require_ray("ray.train")
    return _on_ray(workers, address)


@contextmanager
def _on_ray(workers: int, address: str | None) -> Iterator[Any]:
    from salesfusion.distributed import ray_session
    from salesfusion.training.ray_train import distributed

    with ray_session(address, workers), distributed(workers, address) as plan:
        yield plan


@app.command()
@guarded
def predict(
    model: Annotated[Path, typer.Option(help="A saved model folder.")],
    out: Annotated[Path | None, typer.Option(
        help="Forecasts Parquet file (optional with --to).")] = None,
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
             "columns (price, promo, ...) to forecast under instead of the data's.")] = None,
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
) -> None:
    """Forecast with a saved model from the latest data of a dataset."""
    import polars as pl

    from salesfusion.data.panel import SERIES_KEY
    from salesfusion.data.sql import forecast_target
    from salesfusion.models.base import Forecaster

    if out is None and to is None:
        raise InputError("Missing option '--out': give --out FILE.parquet, --to URL, or "
                         "both")
    check_out_format(out_format, out, single_file=True)
    if run_id is not None and to is None:
        raise InputError("--run-id names the rows --to writes; give --to URL")
    if report is not None and report.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"{report}: the report is HTML; use a .html name")
    if report_backtest is not None and report is None:
        raise InputError("--report-backtest goes with --report FILE.html")
    record = _backtest_metrics(report_backtest) if report_backtest is not None else None
    if not launch and (launch_date or items or markets):
        raise InputError("--launch-date, --items and --markets go with --launch")
    if launch and cold_start:
        raise InputError("give one of --launch or --cold-start: a launch forecast is already "
                         "for items without sales")
    forecaster = Forecaster.load(model)
    # Unreachable database or an incompatible table: refused before any forecasting.
    target = forecast_target(to, to_table) if to is not None else None
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
    if plan is not None:
        from salesfusion.data.plans import load_plan

        panel = panel.with_plan(load_plan(plan, panel), where=str(plan))
    if target is not None and run_id is None:
        run_id = _run_id(model, forecaster.name, panel, horizon, plan,
                         [launch, launch_date, items, markets])
    if launch:
        launches = _launches(panel, launch_date, items, markets)
        forecast = forecaster.predict_launch(launches, horizon, history=panel)
        _write(forecast.with_columns(pl.lit(forecaster.name).alias("model")), panel, out,
               target, run_id, out_format)
        _report(report, forecast, panel, model, forecaster.name, record)
        console.print(f"{_head(out)}: {forecast.height:,} rows for {launches.height:,} launches "
                      f"({launches['item_id'].n_unique():,} items in "
                      f"{launches['market'].n_unique():,} markets), periods 1-{horizon} from "
                      f"launch")
        return
    series = panel.data.select(SERIES_KEY).unique(maintain_order=True)
    if cold_start:
        if panel.items is None:
            raise InputError("--cold-start needs an items table in the dataset")
        unsold = panel.items.select("item_id").join(series.select("item_id"), on="item_id",
                                                    how="anti")
        markets = series.select("market").unique(maintain_order=True)
        series = pl.concat([series, unsold.join(markets, how="cross")])
    forecast = forecaster.predict(horizon, history=panel, series=series)
    _write(forecast.with_columns(pl.lit(forecaster.name).alias("model")), panel, out, target,
           run_id, out_format)
    _report(report, forecast, panel, model, forecaster.name, record)
    cold = forecast.filter(pl.col("cold_start")).select(SERIES_KEY).n_unique()
    console.print(f"{_head(out)}: {forecast.height:,} rows for {series.height:,} series "
                  f"({cold:,} without history; {int(forecast['before_launch'].sum()):,} rows "
                  f"before launch, forecast as 0)")


def _write(forecast: Any, panel: Any, out: Path | None, target: Any,
           run_id: str | None, out_format: str = "parquet") -> None:
    """The Parquet file and/or the database rows. The rows are committed inside the file's
    staging, before the file is published: a failed write (connection, constraint,
    incompatible table) leaves neither; only a failure of the publication itself (a rename
    beside ``out``) could leave the rows without the file."""
    import polars as pl

    from salesfusion.data.sql import write_forecasts

    with staged_forecasts(out, out_format) if out is not None else nullcontext() as write:
        if write is not None:
            write(forecast)
        if target is not None:
            # The origin is the last observed period, the same for every series of the panel.
            rows = write_forecasts(forecast.with_columns(
                pl.lit(panel.periods.max()).alias("origin")), target.url, target.table,
                str(run_id))
    if target is not None:
        console.print(f"Upserted {rows:,} rows into {target.describe()} (run {run_id})")


def _backtest_metrics(folder: Path) -> Any:
    import polars as pl

    path = folder / "metrics.csv"
    if not path.is_file():
        raise InputError(f"--report-backtest {folder}: no metrics.csv (not a `salesfusion "
                         f"backtest` output folder)")
    try:
        frame = pl.read_csv(path, infer_schema=False)  # window holds numbers and "all"
        return frame.with_columns(pl.col("value").cast(pl.Float64))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"{path}: not a backtest metrics table ({exc})") from None


def _report(path: Path | None, forecast: Any, panel: Any, model: Path, name: str,
            record: Any) -> None:
    """The planner's report of the forecasts just written (a forecast already written stays:
    the report is a view of it, and is staged so that a failure leaves no partial page)."""
    if path is None:
        return
    from salesfusion.evaluation.forecast_report import write_forecast_report

    with console.status("Writing the report"), staged_file(path) as staged:
        write_forecast_report(forecast, panel, staged, title=f"Forecasts of {model.name}",
                              model_name=name, backtest=record)
    console.print(f"Wrote {path}")


def _head(out: Path | None) -> str:
    return f"Wrote {out}" if out is not None else "Forecasts"


def _run_id(model: Path, name: str, panel: Any, horizon: int, plan: Path | None,
            launch: list[Any]) -> str:
    from salesfusion.data.sql import run_id_for
    from salesfusion.models.artefact import read_manifest, sha256_file

    facts = {"model": read_manifest(model).checksum, "launch": launch,
             "plan": sha256_file(plan) if plan is not None else None}
    return run_id_for(name, horizon, panel.periods.max(), facts)


def _launch_models() -> list[str]:
    from salesfusion.models.registry import model_class, registered_models

    return [n for n in registered_models() if model_class(n).supports_launch]


def _names(option: str, value: str) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    if not names:
        raise InputError(f"{option}: give one or more names separated by commas")
    return names


def _launches(panel: Any, launch_date: str | None, items: str | None,
              markets: str | None) -> Any:
    """``item_id, market, launch`` of the launches ``predict --launch`` asks for."""
    from datetime import datetime

    import polars as pl

    if panel.items is None:
        raise InputError("--launch needs an items table in the dataset")
    catalogue = panel.items.unique("item_id", keep="first", maintain_order=True)
    if items is not None:
        wanted = _names("--items", items)
        unknown = [i for i in wanted if i not in set(catalogue["item_id"].to_list())]
        if unknown:
            raise InputError(f"--items: item {unknown[0]!r} is not in the items table "
                             f"({catalogue.height:,} items, e.g. "
                             f"{catalogue['item_id'].head(3).to_list()})")
    else:
        wanted = catalogue.join(panel.data.select("item_id").unique(), on="item_id",
                                how="anti")["item_id"].to_list()
        if not wanted:
            raise InputError("every item of the items table has sales: name the items to "
                             "launch with --items")
    known = panel.data["market"].unique(maintain_order=True).to_list()
    chosen = known if markets is None else _names("--markets", markets)
    unknown = [m for m in chosen if m not in known]
    if unknown:
        raise InputError(f"--markets: market {unknown[0]!r} is not in the panel (markets: "
                         f"{', '.join(known)})")
    frame = pl.DataFrame({"item_id": wanted})
    if launch_date is not None:
        try:
            when = datetime.strptime(launch_date, "%Y-%m-%d")
        except ValueError:
            raise InputError(f"--launch-date: {launch_date!r} is not a date YYYY-MM-DD") from None
        frame = frame.with_columns(pl.lit(when).alias("launch"))
    else:
        if "launch_date" not in catalogue.columns:
            raise InputError("no launch date: the items table maps no launch_date; give "
                             "--launch-date YYYY-MM-DD")
        frame = frame.join(catalogue.select("item_id", pl.col("launch_date").alias("launch")),
                           on="item_id", how="left", maintain_order="left")
        undated = frame.filter(pl.col("launch").is_null())
        if undated.height:
            raise InputError(f"item {undated['item_id'][0]!r} has no launch_date in the items "
                             f"table ({undated.height:,} items without one); give "
                             f"--launch-date YYYY-MM-DD")
    return frame.join(pl.DataFrame({"market": chosen}), how="cross")
