"""Casting one loaded column to the type its role needs, refusing what does not fit.

Numbers: every numeric role (quantity, price, revenue, rating, audience, duration) must hold
finite numbers no larger in magnitude than ``MAX_MAGNITUDE``. ``inf``, ``-inf`` and ``NaN``
(as text in a CSV or as floats in Parquet/DuckDB) and values such as ``1e308`` are input errors
naming the file, the column and the first offending data rows; an empty cell is a missing
value, which only required roles refuse. Prices are refused like quantities, not dropped: a
non-finite price is a broken export, and dropping it would hide that. The magnitude limit is
there because bigger values overflow to ``inf`` once summed or multiplied (price x quantity) and
lose integer precision beyond 2**53 anyway; no real count or price comes near it. Covariate
columns (static_numeric, past_only, future_known) follow the same rule, except that ``NaN`` in
them means "missing" (as pandas writes it) and becomes null.

Rows are numbered as data rows from 1 (the header is not counted; in a CSV without quoted
newlines data row N is on line N + 1).
"""

from __future__ import annotations

import polars as pl

from salesfusion.errors import InputError

SHOWN_ROWS = 5
MAX_MAGNITUDE = 1e15


def first_rows(mask: pl.Series, values: pl.Series) -> str:
    """The count of ``mask``'s rows and the first few of them with their values."""
    idx = mask.arg_true().head(SHOWN_ROWS).to_list()
    shown = ", ".join(f"data row {i + 1} ({values[i]!r})" for i in idx)
    return f"{int(mask.sum())} bad value(s), first: {shown}"


def _kind(dtype: pl.DataType) -> str:
    if isinstance(dtype, (pl.List, pl.Array)):
        return f"lists ({dtype})"
    if isinstance(dtype, pl.Struct):
        return f"structs ({dtype})"
    return f"values of type {dtype}"


def is_text_like(dtype: pl.DataType) -> bool:
    return dtype in (pl.Utf8, pl.Categorical, pl.Null) or isinstance(dtype, pl.Enum)


def cast_numeric(frame: pl.DataFrame, role: str, column: str, where: str,
                 nan_is_missing: bool = False) -> pl.DataFrame:
    """``frame[role]`` as Float64; ``column`` and ``where`` name it in messages."""
    series = frame[role]
    label = f"column '{column}'" + (f" (role {role})" if role != column else "")
    if series.dtype.is_numeric():
        cast = series.cast(pl.Float64)
    elif is_text_like(series.dtype):
        text = series.cast(pl.Utf8).str.strip_chars()
        cast = text.cast(pl.Float64, strict=False)
        bad = cast.is_null() & text.is_not_null() & (text != "")
        if bad.any():
            raise InputError(f"{where}: {label} is not numeric: {first_rows(bad, series)}")
    else:
        raise InputError(f"{where}: {label} holds {_kind(series.dtype)}, not numbers")
    if nan_is_missing:
        cast = cast.fill_nan(None)
    bad = (cast.is_nan() | (cast.abs() > MAX_MAGNITUDE)).fill_null(False)
    if bad.any():
        raise InputError(f"{where}: {label} must hold finite numbers within "
                         f"+-{MAX_MAGNITUDE:.0e} (no inf, NaN or overflowing values): "
                         f"{first_rows(bad, series)}")
    return frame.with_columns(cast.alias(role))


def cast_text(frame: pl.DataFrame, role: str, column: str, where: str) -> pl.DataFrame:
    """``frame[role]`` as text; nested values (lists, structs) and binary are refused."""
    dtype = frame[role].dtype
    if dtype.is_nested() or dtype == pl.Binary or dtype == pl.Object:
        label = f"column '{column}'" + (f" (role {role})" if role != column else "")
        raise InputError(f"{where}: {label} holds {_kind(dtype)}, not text")
    return frame.with_columns(pl.col(role).cast(pl.Utf8))


def shown(value: object) -> str:
    """``value`` as text for a message, with every non-printable character (control
    characters, line breaks, non-breaking or zero-width spaces, terminal escapes) written as
    Python escapes it (``\\x1b``, ``\\n``, ``\\u200b``): an id is shown as it is, never as
    something that looks like another id, breaks the message's one line or drives the terminal."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
