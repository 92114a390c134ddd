"""Readers for the table formats a dataset spec may name: CSV, Parquet and DuckDB files, and
folders of Parquet files (``data.partitioned``: plain or hive-partitioned, read lazily).

A table path must be a regular file or, for Parquet, a folder: any other folder, and a
FIFO/device, is refused before anything opens it, since opening a FIFO blocks until a writer
appears. Parquet is read with column projection when the caller names the columns it needs, so
a table's unused columns cost no memory.

CSV is read by pyarrow with every column as text, because its parser refuses a record whose
field count differs from the header's (polars fills a short record with nulls silently). Errors
give the CSV line: line 1 is the header, and a quoted field that spans lines counts as one line,
so the number is the record's line in the file unless an earlier quoted field holds a newline.
CSV files must be UTF-8 (a byte-order mark is allowed). A name ending ``.csv.gz`` or ``.tsv.gz``
is gzip-compressed CSV, decompressed whole before parsing so that a truncated file is refused
rather than read up to where it was cut; compressed bytes under any other name are refused with
the word "compressed" (pyarrow would parse them as text and report a nonsense field count).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import stat
import zlib
from collections.abc import Sequence
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from salesfusion.data.partitioned import scan_parquet_folder
from salesfusion.errors import InputError

SHOWN_TEXT = 60  # characters of a bad CSV record quoted in a message
GZIP_SUFFIXES = (".csv.gz", ".tsv.gz")
# Leading bytes of the compressed formats an export tool may produce.
_MAGIC = {b"\x1f\x8b": "gzip", b"PK\x03\x04": "zip", b"BZh": "bzip2",
          b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


def _check_path(path: Path, fmt: str) -> bool:
    """Whether ``path`` is a folder to read as Parquet parts; InputError if it is neither that
    nor a regular file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        if fmt == "parquet":
            return True
        raise InputError(f"{path}: is a folder, not a {fmt} file; name one file, or a folder "
                         f"of Parquet files with 'format: parquet'")
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: is not a regular file (a FIFO, socket or device); name a "
                         f"table file")
    return False


def _binary(path: Path, data: bytes | None) -> io.BufferedIOBase:
    return io.BytesIO(data) if data is not None else path.open("rb")


def _csv_header(path: Path, data: bytes | None, separator: str) -> list[str]:
    with io.TextIOWrapper(_binary(path, data), encoding="utf-8-sig", errors="replace",
                          newline="") as text:
        header = next(csv.reader(text, delimiter=separator), None)
    if not header:
        raise InputError(f"{path}: CSV file is empty (no header line)")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise InputError(f"{path}: CSV header names column(s) {repeated} more than once")
    return header


def _first_non_utf8_line(path: Path, data: bytes | None) -> str:
    with _binary(path, data) as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"line {number} (byte 0x{line[exc.start]:02x})"
    return "somewhere"


def _decompressed(path: Path) -> bytes | None:
    """The CSV text of a ``.csv.gz``/``.tsv.gz`` file, decompressed; None for a plain name
    (read from the file as it is), after refusing compressed bytes under it."""
    try:
        if not path.name.lower().endswith(GZIP_SUFFIXES):
            with path.open("rb") as handle:
                start = handle.read(8)
            kind = next((name for magic, name in _MAGIC.items() if start.startswith(magic)),
                        None)
            if kind is not None:
                hint = (f"rename it to {path.name}.gz" if kind == "gzip"
                        else "decompress it (gzip-compressed CSV may be named .csv.gz)")
                raise InputError(f"{path}: holds {kind}-compressed bytes, not CSV text; {hint}")
            return None
        # Whole, through Python's gzip: pyarrow's reader stops silently at a truncation.
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: named as gzip-compressed CSV but cannot be decompressed "
                         f"({exc}); the file is truncated or not gzip") from None


def _read_csv(path: Path) -> pl.DataFrame:
    name = path.name.lower().removesuffix(".gz")
    separator = "\t" if name.endswith(".tsv") else ","
    data = _decompressed(path)
    header = _csv_header(path, data, separator)
    # Everything as text: the validator casts each role column and reports the exact rows that
    # do not parse, which type inference would hide (and leading zeros of ids would be lost).
    convert = pacsv.ConvertOptions(column_types={name: pa.string() for name in header},
                                   null_values=[""], strings_can_be_null=True,
                                   quoted_strings_can_be_null=False)
    parse = pacsv.ParseOptions(delimiter=separator)
    try:
        table = pacsv.read_csv(_source(path, data), parse_options=parse,
                               convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise InputError(_csv_problem(path, data, parse, convert, exc)) from None
    return pl.from_arrow(table)


def _source(path: Path, data: bytes | None) -> Path | pa.BufferReader:
    # A plain file is read by pyarrow itself, in blocks, not first copied whole into memory.
    return pa.BufferReader(data) if data is not None else path


def _csv_problem(path: Path, data: bytes | None, parse: pacsv.ParseOptions,
                 convert: pacsv.ConvertOptions, exc: pa.ArrowInvalid) -> str:
    """One line on why ``path`` (its CSV text is ``data``) is not valid CSV, with the line it
    fails at."""
    if "invalid UTF8" in str(exc):
        return f"{path}: CSV file is not UTF-8 text at {_first_non_utf8_line(path, data)}"
    bad: list[pacsv.InvalidRow] = []

    def record(row: pacsv.InvalidRow) -> str:
        bad.append(row)
        return "error"

    # Only a single-threaded read knows record numbers, so it is done on the error path only.
    parse.invalid_row_handler = record
    with contextlib.suppress(pa.ArrowInvalid):
        pacsv.read_csv(_source(path, data), parse_options=parse, convert_options=convert,
                       read_options=pacsv.ReadOptions(use_threads=False))
    if not bad:
        return f"{path}: cannot read as CSV: {str(exc).splitlines()[0]}"
    row = bad[0]
    text = row.text if len(row.text) <= SHOWN_TEXT else row.text[:SHOWN_TEXT] + "..."
    where = f"line {row.number}" if row.number and row.number > 0 else "a line"
    hint = " (a quote opened there is never closed)" if "\n" in row.text else ""
    return (f"{path}: CSV {where} has {row.actual_columns} field(s), the header has "
            f"{row.expected_columns}{hint}: {text!r}")


def _projected(frame: pl.LazyFrame, columns: Sequence[str]) -> pl.DataFrame:
    available = frame.collect_schema().names()
    if all(column in available for column in columns):
        return frame.select(list(dict.fromkeys(columns))).collect()
    # A missing column: one row of every column, so the caller names it with its role and lists
    # the columns the table has.
    return frame.head(1).collect()


def read_raw(path: Path, fmt: str, table: str | None = None,
             columns: Sequence[str] | None = None) -> pl.DataFrame:
    """Read a table as it is stored, before any role mapping or type checks. ``columns``: the
    columns the caller needs; a Parquet file or folder reads only those (when one is missing,
    one row of every column), the other formats read every column."""
    folder = _check_path(path, fmt)
    try:
        if folder or (fmt == "parquet" and columns is not None):
            frame = scan_parquet_folder(path, columns) if folder \
                else pl.scan_parquet(path, glob=False)
            return frame.collect() if columns is None else _projected(frame, columns)
        if fmt == "csv":
            return _read_csv(path)
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
    except (pl.exceptions.PolarsError, pa.ArrowException, duckdb.Error, OSError) as exc:
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
