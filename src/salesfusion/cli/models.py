"""``salesfusion train`` and ``salesfusion predict``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from salesfusion.cli.common import app, check_freq, console, guarded, panel_from, staged_folder
from salesfusion.datasets.online_retail import OR_WEEKLY_PROTOCOL
from salesfusion.errors import InputError


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
    panel = panel_from(dataset, spec, check_freq(freq) if freq else None,
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
    panel = panel_from(dataset, spec, check_freq(freq) if freq else None,
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


