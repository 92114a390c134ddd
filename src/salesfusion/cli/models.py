"""``salesfusion train`` and ``salesfusion predict``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from salesfusion.cli.common import app, check_freq, console, guarded, panel_from, staged_folder
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

    if config is None and Path(name).suffix.lower() in (".yaml", ".yml"):
        return build_model(load_preset(name), params, horizon, source=name)
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
) -> None:
    """Train a model (a preset or a config) on a dataset and save it."""
    if (config is None) == (preset is None):
        raise InputError("give exactly one of --config CFG or --preset NAME")
    name, params = _read_config(config) if config else (preset, {})
    if horizon is not None and params.get("horizon", horizon) != horizon:
        raise InputError(f"--horizon {horizon} contradicts 'horizon: {params['horizon']}' in "
                         f"{config}; give one of them")
    model = _configured_model(name, params, horizon, config)  # bad names/params fail here
    panel = panel_from(dataset, spec, check_freq(freq) if freq else None,
                        None, None, None)
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
    if freq is not None and forecaster.freq and check_freq(freq) != forecaster.freq:
        raise InputError(f"{model}: the model was trained at frequency '{forecaster.freq}' "
                         f"and cannot forecast at --freq '{check_freq(freq)}'; leave --freq out "
                         f"or train a model at '{check_freq(freq)}'")
    # The model's own frequency, not the spec's default: a weekly model forecasts weeks.
    panel = panel_from(dataset, spec, check_freq(freq) if freq else forecaster.freq,
                        None, None, None)
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
    cold = forecast.filter(pl.col("cold_start")).select(SERIES_KEY).n_unique()
    console.print(f"Wrote {out}: {forecast.height:,} rows for {series.height:,} series "
                  f"({cold:,} without history; {int(forecast['before_launch'].sum()):,} rows "
                  f"before launch, forecast as 0)")


