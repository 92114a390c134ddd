"""``salesfusion data validate`` and ``salesfusion data build``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from salesfusion.cli.common import check_freq, console, data_app, guarded
from salesfusion.cli.output import staged_file
from salesfusion.data.crosscheck import crosscheck
from salesfusion.data.image_check import ReadImage
from salesfusion.data.io import write_table
from salesfusion.data.panel import Panel, build_panel
from salesfusion.data.spec import load_spec
from salesfusion.data.validate import Tables, load_tables
from salesfusion.encoders.image.loading import read_rgb
from salesfusion.errors import InputError


def _show_crosscheck(tables: Tables, panel: Panel, horizon: int = 4,
                     forecasting: bool = False, read_image: ReadImage | None = None) -> None:
    checked = crosscheck(tables, panel, horizon=horizon, forecasting=forecasting,
                         read_image=read_image)
    for line in checked.summary():
        console.print(line, markup=False, highlight=False)
    checked.raise_for_errors()


@data_app.command("validate")
@guarded
def data_validate(
    spec: Annotated[Path, typer.Argument(help="A YAML dataset spec.")],
    horizon: Annotated[int, typer.Option(
        min=1, help="Periods after the data a forecast will need: future-known exogenous "
                    "columns must have values for them.")] = 4,
) -> None:
    """Check a spec, its tables and how they agree; print what each table holds."""
    tables = load_tables(load_spec(spec))
    for name, table, frame in tables.named_frames():
        console.print(f"{name}: {frame.height:,} rows from {tables.spec.resolve(table.path)} "
                      f"(roles: {', '.join(table.columns)})")
    panel = build_panel(tables)
    # validate answers "can I forecast from this?", so gaps in what a forecast needs are errors.
    # validate decodes every image, with the encoders' decoder, to count what they would mask.
    _show_crosscheck(tables, panel, horizon=horizon, forecasting=True, read_image=read_rgb)
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
    tables = load_tables(load_spec(spec))
    panel = build_panel(tables, check_freq(freq) if freq else None)
    _show_crosscheck(tables, panel)
    with staged_file(out) as target:
        write_table(panel.data, target)
    console.print(f"Wrote {out}: {panel.n_series:,} series, {panel.data.height:,} rows")
