"""Malformed data inputs: each is exit code 2 with one `error:` line naming the cause, no
traceback and nothing written; the same inputs raise ``InputError`` through the API; valid
controls next to them build. ``BAD`` is a table (case id, how the bad input is made, message
fragments) meant to grow into the issue's corpus: add a row, not a test."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.data.panel import build_panel
from salesfusion.data.spec import load_spec
from salesfusion.data.validate import load_tables
from salesfusion.errors import InputError
from tests.conftest import edit_spec, make_shop

runner = CliRunner()


def _shop(folder: Path) -> Path:
    return make_shop(folder, n_items=4, weeks=10, covariates=False)



def _sales(spec: Path) -> pl.DataFrame:
    return pl.read_csv(spec.parent / "sales.csv", infer_schema=False)


def _set_cell(spec: Path, row: int, column: str, value: str) -> None:
    """Data row ``row`` (1-based) of sales.csv gets ``value`` as text."""
    frame = _sales(spec).with_columns(
        pl.when(pl.int_range(pl.len()) == row - 1).then(pl.lit(value))
        .otherwise(pl.col(column)).alias(column))
    frame.write_csv(spec.parent / "sales.csv")


def _to_parquet(spec: Path, change: Callable[[pl.DataFrame], pl.DataFrame] | None = None) -> None:
    """sales.csv becomes a typed sales.parquet (``change`` applied), and the spec points at it."""
    frame = _sales(spec).with_columns(pl.col("qty").cast(pl.Float64),
                                      pl.col("unit_price").cast(pl.Float64),
                                      pl.col("when").str.to_datetime())
    (change(frame) if change else frame).write_parquet(spec.parent / "sales.parquet")
    (spec.parent / "sales.csv").unlink()
    edit_spec(spec, **{"sales.path": "sales.parquet"})


def _parquet_value(column: str, row: int, value: float) -> Callable[[Path], None]:
    def make(spec: Path) -> None:
        _to_parquet(spec, lambda f: f.with_columns(
            pl.when(pl.int_range(pl.len()) == row - 1).then(pl.lit(value))
            .otherwise(pl.col(column)).alias(column)))
    return make


def _csv_value(column: str, row: int, value: str) -> Callable[[Path], None]:
    return lambda spec: _set_cell(spec, row, column, value)


def _rewrite_dates(fmt: str, max_day: int = 31) -> Callable[[Path], None]:
    """The sales timestamps written with strftime ``fmt`` (rows after day ``max_day`` dropped)."""
    def make(spec: Path) -> None:
        when = pl.col("when").str.to_datetime()
        frame = _sales(spec).filter(when.dt.day() <= max_day)
        frame.with_columns(when.dt.strftime(fmt)).write_csv(spec.parent / "sales.csv")
    return make


def _edit_lines(change: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def make(spec: Path) -> None:
        path = spec.parent / "sales.csv"
        path.write_text("\n".join(change(path.read_text().splitlines())) + "\n")
    return make


def _replace_sales(kind: str) -> Callable[[Path], None]:
    def make(spec: Path) -> None:
        path = spec.parent / "sales.csv"
        path.unlink()
        if kind == "folder":
            path.mkdir()
            (path / "part-0.csv").write_text("sku,country,when,qty\n")
        else:
            os.mkfifo(path)
    return make


def _latin1_spec(spec: Path) -> None:
    spec.write_bytes(spec.read_bytes().replace(b"name: tiny_shop", b"name: caf\xe9"))


# (case id, how the input is broken, fragments the single error line must contain)
BAD: list[tuple[str, Callable[[Path], None], tuple[str, ...]]] = [
    # item 4: non-finite or overflowing numbers
    ("csv_quantity_inf", _csv_value("qty", 5, "inf"),
     ("sales.csv", "'qty' (role quantity)", "finite", "data row 5 ('inf')")),
    ("csv_quantity_minus_inf", _csv_value("qty", 2, "-inf"),
     ("sales.csv", "'qty'", "finite", "data row 2 ('-inf')")),
    ("csv_quantity_nan", _csv_value("qty", 3, "NaN"),
     ("sales.csv", "'qty'", "finite", "data row 3 ('NaN')")),
    ("csv_quantity_1e308", _csv_value("qty", 4, "1e308"),
     ("sales.csv", "'qty'", "finite", "data row 4 ('1e308')")),
    ("csv_quantity_1e400", _csv_value("qty", 4, "1e400"),
     ("sales.csv", "'qty'", "data row 4 ('1e400')")),
    ("csv_price_inf", _csv_value("unit_price", 6, "inf"),
     ("sales.csv", "'unit_price' (role price)", "finite", "data row 6 ('inf')")),
    ("csv_price_nan", _csv_value("unit_price", 1, "nan"),
     ("sales.csv", "'unit_price'", "data row 1 ('nan')")),
    ("csv_price_1e308", _csv_value("unit_price", 7, "1e308"),
     ("sales.csv", "'unit_price'", "data row 7 ('1e308')")),
    ("parquet_quantity_inf", _parquet_value("qty", 3, float("inf")),
     ("sales.parquet", "'qty' (role quantity)", "finite", "data row 3 (inf)")),
    ("parquet_quantity_nan", _parquet_value("qty", 8, float("nan")),
     ("sales.parquet", "'qty'", "data row 8 (nan)")),
    ("parquet_price_minus_inf", _parquet_value("unit_price", 2, float("-inf")),
     ("sales.parquet", "'unit_price' (role price)", "data row 2 (-inf)")),
    ("parquet_price_1e308", _parquet_value("unit_price", 9, 1e308),
     ("sales.parquet", "'unit_price'", "data row 9 (1e+308)")),
    # item 6: types and files the readers cannot use
    ("parquet_quantity_lists",
     lambda s: _to_parquet(s, lambda f: f.with_columns(pl.concat_list("qty", "qty"))),
     ("sales.parquet", "'qty' (role quantity)", "holds lists", "not numbers")),
    ("parquet_item_id_structs",
     lambda s: _to_parquet(s, lambda f: f.with_columns(pl.struct("sku", "country").alias("sku"))),
     ("sales.parquet", "'sku' (role item_id)", "holds structs", "not text")),
    ("parquet_timestamp_epoch_int",
     lambda s: _to_parquet(s, lambda f: f.with_columns(pl.col("when").dt.epoch("s"))),
     ("sales.parquet", "'when' (role timestamp)", "holds numbers", "not dates")),
    ("parquet_timestamp_struct",
     lambda s: _to_parquet(s, lambda f: f.with_columns(pl.struct("when", "qty").alias("when"))),
     ("sales.parquet", "'when' (role timestamp)", "Struct", "not dates")),
    ("item_id_pattern_unclosed_group",
     lambda s: edit_spec(s, **{"cleaning.item_id_pattern": "P(\\d+"}),
     ("spec.yaml", "cleaning.item_id_pattern", "invalid regular expression", "unclosed group")),
    ("item_id_pattern_lookaround",
     lambda s: edit_spec(s, **{"cleaning.item_id_pattern": "(?!X)P\\d+"}),
     ("spec.yaml", "cleaning.item_id_pattern", "look-around")),
    ("spec_not_utf8", _latin1_spec, ("spec.yaml", "not UTF-8", "0xe9", "line 1")),
    ("sales_path_folder", _replace_sales("folder"), ("sales.csv", "is a folder")),
    ("sales_path_fifo", _replace_sales("fifo"), ("sales.csv", "not a regular file")),
    ("csv_extra_field", _edit_lines(lambda lines: [*lines[:4], lines[4] + ",9", *lines[5:]]),
     ("sales.csv", "CSV line 5", "7 field(s), the header has 6")),
    ("csv_missing_field", _edit_lines(lambda lines: [*lines[:6], "P001,GB", *lines[7:]]),
     ("sales.csv", "CSV line 7", "2 field(s), the header has 6", "'P001,GB'")),
    ("csv_unclosed_quote",
     _edit_lines(lambda lines: [*lines[:3], '"' + lines[3], *lines[4:]]),
     ("sales.csv", "CSV line 4", "never closed")),
    ("csv_duplicate_header", _edit_lines(lambda lines: [lines[0].replace("invoice", "qty"),
                                                       *lines[1:]]),
     ("sales.csv", "header names column(s) ['qty'] more than once")),
    ("csv_zero_bytes", lambda s: (s.parent / "sales.csv").write_bytes(b""),
     ("sales.csv", "CSV file is empty")),
    ("csv_not_utf8", lambda s: (s.parent / "sales.csv").write_bytes(
        (s.parent / "sales.csv").read_bytes().replace(b"GB", b"G\xe9", 1)),
     ("sales.csv", "not UTF-8", "line 2")),
    ("bad_timestamp_format", lambda s: edit_spec(s, **{"sales.timestamp_format": "%d/%m/%Y"}),
     ("sales.csv", "'when'", "unparsable dates for format '%d/%m/%Y'", "data row 1")),
    # item 7: non-ISO dates without timestamp_format are never guessed
    ("us_style_dates", _rewrite_dates("%-m/%-d/%Y %-H:%M"),
     ("sales.csv", "'when' (role timestamp)", "not ISO 8601", "set 'sales.timestamp_format'",
      "'%d/%m/%Y %H:%M' (reads", "'%m/%d/%Y %H:%M' (reads", "never guessed")),
    ("days_all_at_most_12", _rewrite_dates("%d/%m/%Y %H:%M", max_day=12),
     ("'when'", "'%d/%m/%Y %H:%M' (reads data row 1 '04/01/2021 10:00' as 2021-01-04 10:00",
      "'%m/%d/%Y %H:%M' (reads data row 1 '04/01/2021 10:00' as 2021-04-01 10:00",
      "fits every row) or '%m/%d/%Y %H:%M'", "2021-04-02 10:00; fits every row)")),
    ("day_first_with_day_over_12", _rewrite_dates("%d/%m/%Y %H:%M"),
     ("'when'", "never guessed", "fits every row)", "fails from data row")),
    ("dotted_dates", _rewrite_dates("%d.%m.%Y"),
     ("'when'", "'%d.%m.%Y' (reads", "'%m.%d.%Y' (reads")),
    ("year_first_slashes", _rewrite_dates("%Y/%m/%d"),
     ("'when'", "not ISO 8601: set 'sales.timestamp_format'", "'%Y/%m/%d' (reads")),
    ("fx_day_first_dates", lambda s: (s.parent / "fx.csv").write_text(
        pl.read_csv(s.parent / "fx.csv").with_columns(
            pl.col("Date").str.to_date().dt.strftime("%d/%m/%Y")).write_csv()),
     ("fx.csv", "column 'Date' holds", "set 'fx.date_format'")),
]


def _valid_iso(spec: Path) -> None:
    """Unchanged: ISO 8601 timestamps parse without a format."""


def _valid_declared_format(spec: Path) -> None:
    _rewrite_dates("%-m/%-d/%Y %-H:%M")(spec)
    edit_spec(spec, **{"sales.timestamp_format": "%m/%d/%Y %H:%M"})


def _valid_typed_parquet(spec: Path) -> None:
    _to_parquet(spec)


def _valid_fx_date_format(spec: Path) -> None:
    fx = spec.parent / "fx.csv"
    fx.write_text(pl.read_csv(fx).with_columns(
        pl.col("Date").str.to_date().dt.strftime("%d/%m/%Y")).write_csv())
    edit_spec(spec, **{"fx.date_format": "%d/%m/%Y"})


GOOD = [_valid_iso, _valid_declared_format, _valid_typed_parquet, _valid_fx_date_format]


def _unblock_fifo_after(path: Path, seconds: float, done: threading.Event) -> None:
    """Should a reader block on the FIFO, open its write end so the test fails, not hangs."""
    if not done.wait(seconds):
        with contextlib.suppress(OSError):  # no reader is waiting: nothing to unblock
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def _guard_fifo(path: Path) -> threading.Event:
    done = threading.Event()
    if path.is_fifo():
        threading.Thread(target=_unblock_fifo_after, args=(path, 20, done), daemon=True).start()
    return done


@pytest.mark.parametrize(("case", "breaker", "fragments"), BAD, ids=[c[0] for c in BAD])
def test_bad_input_cli(tmp_path: Path, case: str, breaker: Callable[[Path], None],
                       fragments: tuple[str, ...]) -> None:
    spec = _shop(tmp_path)
    breaker(spec)
    out = tmp_path / "out" / "panel.parquet"
    done = _guard_fifo(spec.parent / "sales.csv")
    try:
        result = runner.invoke(app, ["data", "build", str(spec), "--out", str(out)])
    finally:
        done.set()
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert "Traceback" not in result.output
    assert not out.exists() and not out.parent.exists()


@pytest.mark.parametrize(("case", "breaker", "fragments"), BAD, ids=[c[0] for c in BAD])
def test_bad_input_api(tmp_path: Path, case: str, breaker: Callable[[Path], None],
                       fragments: tuple[str, ...]) -> None:
    spec = _shop(tmp_path)
    breaker(spec)
    done = _guard_fifo(spec.parent / "sales.csv")
    try:
        with pytest.raises(InputError) as raised:
            load_tables(load_spec(spec))
    finally:
        done.set()
    message = str(raised.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("make", GOOD, ids=[g.__name__.strip("_") for g in GOOD])
def test_valid_controls_build(tmp_path: Path, make: Callable[[Path], None]) -> None:
    spec = _shop(tmp_path)
    make(spec)
    out = tmp_path / "out" / "panel.parquet"
    result = runner.invoke(app, ["data", "build", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    panel = pl.read_parquet(out)
    assert panel.height > 0 and panel["y"].is_finite().all()


def test_declared_format_reads_month_first(tmp_path: Path) -> None:
    """`12/1/2010`-style dates with a declared month-first format are the same panel as ISO."""
    (tmp_path / "iso").mkdir()
    (tmp_path / "us").mkdir()
    iso = build_panel(load_tables(load_spec(_shop(tmp_path / "iso"))))
    spec = _shop(tmp_path / "us")
    _valid_declared_format(spec)
    us = build_panel(load_tables(load_spec(spec)))
    assert us.data.equals(iso.data)
