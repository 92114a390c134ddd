"""Where ``salesfusion predict``'s forecasts go: the Parquet file and/or the database rows (with
their run id), and the planner's HTML report of them, which may show a backtest's metrics."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

from salesfusion.cli.common import console
from salesfusion.cli.output import staged_file, staged_forecasts
from salesfusion.errors import InputError


def _write(forecast: Any, panel: Any, out: Path | None, target: Any,
           run_id: str | None, out_format: str = "parquet") -> None:
    """The Parquet file and/or the database rows. The rows are committed inside the file's
    staging, before the file is published: a failed write (connection, constraint,
    incompatible table) leaves neither; only a failure of the publication itself (a rename
    beside ``out``) could leave the rows without the file."""
    import polars as pl

    from salesfusion.data.sql_write import write_forecasts

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
    from salesfusion.data.sql_write import run_id_for
    from salesfusion.models.artefact import read_manifest, sha256_file

    facts = {"model": read_manifest(model).checksum, "launch": launch,
             "plan": sha256_file(plan) if plan is not None else None}
    return run_id_for(name, horizon, panel.periods.max(), facts)
