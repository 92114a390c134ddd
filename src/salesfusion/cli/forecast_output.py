"""Where ``salesfusion predict``'s forecasts go: a Parquet, CSV or Excel file (chosen by the
suffix of ``--out``) or a partitioned dataset, and/or the database rows (with their run id),
with side tables beside them (the plan-versus-base table of ``--plan``); the order quantity of
``--service-level``; and the planner's HTML report of them, which may show a backtest's
metrics.

Every file is written into the forecasts' staging folder and published with them (``cli.output``:
nothing is written unless everything succeeded, nothing salesfusion did not write is replaced,
and each file is listed in the folder's output record). CSV and Excel hold the Parquet's numbers
(Excel keeps 16 significant digits), with timestamps as dates: Excel has one sheet per market
and a ``totals`` sheet (units per timestamp summed over markets).
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import polars as pl

from salesfusion.cli.common import console
from salesfusion.cli.output import staged_dataset, staged_file
from salesfusion.data.forecast_frame import quantile_columns, quantile_level
from salesfusion.data.partitioned import write_dataset
from salesfusion.errors import InputError

FILE_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".xlsx": "xlsx"}
EXCEL_ROWS = 1_048_576  # rows of an Excel sheet, the header's included
_SHEET_BAD = re.compile(r"[\[\]:*?/\\\x00-\x1f]")
# Sheet names Excel keeps for itself or this writer uses (compared without letter case).
_RESERVED = ("totals", "history")


def out_kind(out: Path | None, out_format: str) -> str:
    """``partitioned``, or the file format ``--out``'s suffix names (an unknown suffix is an
    ``InputError``)."""
    if out is None or out_format == "partitioned":
        return out_format
    kind = FILE_FORMATS.get(out.suffix.lower())
    if kind is None:
        raise InputError(f"{out}: the forecasts' format is chosen by the name's suffix: use "
                         f".parquet, .csv or .xlsx (or --out-format partitioned for a folder), "
                         f"not '{out.suffix or '(none)'}'")
    return kind


def side_path(out: Path, kind: str, tag: str) -> Path:
    """Where the side table ``tag`` goes: ``<out stem>_<tag><out suffix>`` beside a file,
    ``<out>/<tag>.parquet`` in a partitioned output's folder."""
    return out / f"{tag}.parquet" if kind == "partitioned" else \
        out.with_name(f"{out.stem}_{tag}{out.suffix}")


def _write(forecast: Any, panel: Any, out: Path | None, target: Any,
           run_id: str | None, out_format: str = "parquet",
           sides: dict[str, pl.DataFrame] | None = None) -> list[Path]:
    """The forecasts file (or dataset) with its ``sides`` tables, and/or the database rows;
    returns the side tables' paths. The rows are committed inside the files' staging, before
    the files are published: a failed write (connection, constraint, incompatible table)
    leaves neither; only a failure of the publication itself (a rename beside ``out``) could
    leave the rows without the files."""
    from salesfusion.data.sql_write import write_forecasts

    sides = sides if out is not None and sides else {}
    kind = out_kind(out, out_format)
    paths = [side_path(out, kind, tag) for tag in sides] if out is not None else []
    if out is None:
        staging: Any = nullcontext()
    elif kind == "partitioned":
        staging = staged_dataset(out)
    else:
        staging = staged_file(out)
    with staging as staged:
        if out is not None and kind == "partitioned":
            write_dataset(forecast, staged, "forecasts")
            folder = staged
        elif out is not None:
            write_table(forecast, staged, kind, by_market=True)
            folder = staged.parent
        for (tag, frame), path in zip(sides.items(), paths, strict=True):
            # The same staging folder: published with the forecasts, listed in the record.
            write_table(frame, folder / path.name, "parquet" if kind == "partitioned" else kind,
                        sheet=tag)
        if target is not None:
            # The origin is the last observed period, the same for every series of the panel.
            rows = write_forecasts(forecast.with_columns(
                pl.lit(panel.periods.max()).alias("origin")), target.url, target.table,
                str(run_id))
    if target is not None:
        console.print(f"Upserted {rows:,} rows into {target.describe()} (run {run_id})")
    return paths


def write_table(frame: pl.DataFrame, path: Path, kind: str, by_market: bool = False,
                sheet: str = "forecasts") -> None:
    """``frame`` as Parquet, CSV or Excel (timestamps as dates in CSV and Excel). Excel: with
    ``by_market``, one sheet per market and a ``totals`` sheet; else one sheet ``sheet``."""
    if kind == "parquet":
        frame.write_parquet(path)
        return
    dated = frame.with_columns(pl.col(c).cast(pl.Date) for c, t in frame.schema.items()
                               if isinstance(t, pl.Datetime))
    if kind == "csv":
        dated.write_csv(path)
    elif by_market and "market" in frame.columns:
        markets = sorted(dated["market"].unique().to_list())
        names = sheet_names(markets)
        _write_excel(path, [(names[m], dated.filter(pl.col("market") == m)) for m in markets]
                     + [("totals", totals(dated))])
    else:
        _write_excel(path, [(sheet, dated)])


def totals(frame: pl.DataFrame) -> pl.DataFrame:
    """Units per timestamp summed over every series and market: the point forecast and, with
    ``--service-level``, the order quantity (quantiles are not additive: left out)."""
    summed = [c for c in ("y_pred", "order_quantity") if c in frame.columns]
    return (frame.group_by("timestamp").agg(pl.col(*summed).sum(),
                                           pl.col("market").n_unique().alias("markets"),
                                           pl.len().alias("series"))
            .sort("timestamp"))


def sheet_names(markets: list[str]) -> dict[str, str]:
    """A sheet name per market that Excel accepts: at most 31 characters, none of
    ``[]:*?/\\``, not starting or ending with an apostrophe, unique without letter case and
    never ``totals``."""
    taken = set(_RESERVED)
    names = {}
    for market in markets:
        base = _SHEET_BAD.sub("_", market).strip("'")[:31] or "market"
        name, count = base, 2
        while name.lower() in taken:
            suffix = f"~{count}"
            name, count = base[:31 - len(suffix)] + suffix, count + 1
        taken.add(name.lower())
        names[market] = name
    return names


def _write_excel(path: Path, sheets: list[tuple[str, pl.DataFrame]]) -> None:
    import xlsxwriter

    for name, frame in sheets:
        if frame.height >= EXCEL_ROWS:
            raise InputError(f"{path}: sheet '{name}' would hold {frame.height:,} rows, more "
                             f"than an Excel sheet's {EXCEL_ROWS - 1:,}; write .parquet or "
                             f".csv instead")
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True, "nan_inf_to_errors": True})
    date = book.add_format({"num_format": "yyyy-mm-dd"})
    header = book.add_format({"bold": True})
    try:
        for name, frame in sheets:
            sheet = book.add_worksheet(name)
            sheet.write_row(0, 0, frame.columns, header)
            formats = [date if t == pl.Date else None for t in frame.dtypes]
            for column, fmt in enumerate(formats):
                sheet.set_column(column, column, 12 if fmt is not None else 11)
            for index, row in enumerate(frame.iter_rows(), start=1):
                for column, value in enumerate(row):
                    if value is not None:
                        sheet.write(index, column, value, formats[column])
            sheet.freeze_panes(1, 0)
    finally:
        book.close()


def with_order_quantity(forecast: pl.DataFrame, level: float,
                        model: str) -> tuple[pl.DataFrame, str | None]:
    """``forecast`` with ``order_quantity``: its quantile at ``level`` (a column ``q<level>``),
    or the linear interpolation between the nearest quantiles below and above it (then with a
    note saying so). A model without either is an ``InputError`` listing its levels."""
    levels = [(quantile_level(c), c) for c in quantile_columns(forecast.columns)]
    for value, column in levels:
        if abs(value - level) < 1e-9:
            return forecast.with_columns(pl.col(column).alias("order_quantity")), None
    below = [lv for lv in levels if lv[0] < level]
    above = [lv for lv in levels if lv[0] > level]
    if not below or not above:
        given = ", ".join(f"{v:g}" for v, _ in levels) or "none (a point forecast only)"
        raise InputError(f"--service-level {level:g}: model '{model}' gives no quantile at "
                         f"{level:g} nor quantiles on both sides of it to interpolate; its "
                         f"quantile levels: {given}")
    (low, low_col), (high, high_col) = below[-1], above[0]
    weight = (level - low) / (high - low)
    quantity = pl.col(low_col) + weight * (pl.col(high_col) - pl.col(low_col))
    note = (f"order_quantity: the {level:g} quantile interpolated linearly between the "
            f"model's {low:g} and {high:g} quantiles")
    return forecast.with_columns(quantity.alias("order_quantity")), note


def parse_service_level(text: str | None) -> float | None:
    """``--service-level``'s value: a number strictly between 0 and 1."""
    if text is None:
        return None
    try:
        level = float(text)
    except ValueError:
        level = float("nan")
    if not 0 < level < 1:
        raise InputError(f"--service-level {text}: give a probability strictly between 0 and "
                         f"1, e.g. 0.9 for an order quantity covering demand 90 % of the time")
    return level


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
            record: Any, metric: str) -> None:
    """The planner's report of the forecasts just written (a forecast already written stays:
    the report is a view of it, and is staged so that a failure leaves no partial page)."""
    if path is None:
        return
    from salesfusion.evaluation.forecast_report import write_forecast_report

    with console.status("Writing the report"), staged_file(path) as staged:
        write_forecast_report(forecast, panel, staged, title=f"Forecasts of {model.name}",
                              model_name=name, backtest=record, metric=metric)
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
