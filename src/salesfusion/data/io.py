"""Readers for the table formats a dataset spec may name: CSV, Parquet and DuckDB files."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from salesfusion.errors import InputError


def read_raw(path: Path, fmt: str, table: str | None = None) -> pl.DataFrame:
    """Read a whole table as it is stored, before any role mapping or type checks."""
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        if fmt == "csv":
            separator = "\t" if path.suffix.lower() == ".tsv" else ","
            # Everything as text first: the validator casts each role column and reports the
            # exact rows that do not parse, which type inference would hide or fail on.
            return pl.read_csv(path, separator=separator, infer_schema=False)
        if fmt == "parquet":
            return pl.read_parquet(path)
        if fmt == "duckdb":
            if not table:
                raise InputError(f"{path}: a DuckDB source needs 'table' (the table to read)")
            with duckdb.connect(str(path), read_only=True) as con:
                names = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
                if table not in names:
                    raise InputError(f"{path}: DuckDB table '{table}' not found; "
                                     f"tables are {sorted(names)}")
                return pl.from_arrow(con.sql(f'SELECT * FROM "{table}"').to_arrow_table())
    except InputError:
        raise
    except (pl.exceptions.PolarsError, duckdb.Error, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot read as {fmt}: {message}") from exc
    raise InputError(f"{path}: unsupported format '{fmt}'")


def write_table(frame: pl.DataFrame, path: Path) -> None:
    """Write a frame by the output path's extension (parquet, csv or a DuckDB file)."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame.write_parquet(path)
    elif suffix == ".csv":
        frame.write_csv(path)
    elif suffix in (".duckdb", ".db"):
        with duckdb.connect(str(path)) as con:
            con.register("frame_view", frame.to_arrow())
            con.execute("CREATE OR REPLACE TABLE panel AS SELECT * FROM frame_view")
    else:
        raise InputError(f"{path}: unknown output format '{suffix}'; use .parquet, .csv or .duckdb")
