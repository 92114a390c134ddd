"""Reading date and time columns, never guessing an order the data cannot decide.

- A Date or Datetime column (Parquet, DuckDB) is used as it is (a time zone is dropped, keeping
  the wall-clock time).
- A text column with the table's ``timestamp_format`` (``date_format`` for the FX table) is
  parsed with that strptime format; a value that does not fit it is an error naming its rows.
- A text column without a format must be ISO 8601: ``YYYY-MM-DD``, optionally followed by
  ``T`` or a space, ``HH:MM``, ``:SS``, a fraction and ``Z`` or a ``+HH:MM`` offset (offsets are
  converted to UTC). A column in which no value is ISO 8601 is refused: when it holds numeric
  dates such as ``12/1/2010 8:26`` or ``04.01.2021`` the message names the candidate formats
  (``%d/%m/%Y %H:%M`` and ``%m/%d/%Y %H:%M``) with both readings of the first rows and says
  which of them fits every row, but it never picks one, even when only one fits: a file whose
  days are all <= 12 reads validly both ways, and a rule that guessed from the data would read
  a file differently once a later export happens to hold a day > 12. A column with some ISO
  values and some others is ISO 8601 with bad rows, reported as unparsable.
- Numbers (epoch seconds? milliseconds?), lists, structs and other types are refused.
- Every date must fall in the supported range, 1900-01-01 to 2200-12-31: Python's ``datetime``
  ends at year 9999, so a stray 9999-12-31 overflows as soon as a period is added to it, and
  a stray 0001-01-01 turns a weekly panel into 100,000 empty periods; no sales history or
  forecast needs dates outside those two centuries.
"""

from __future__ import annotations

import re
from datetime import datetime

import polars as pl

from salesfusion.data.columns import first_rows, is_text_like
from salesfusion.errors import InputError

ISO_DATE = (r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?"
            r"(?:Z|[+-]\d{2}:?\d{2})?$")
NUMERIC_DATE = re.compile(r"^(\d{1,4})([/.-])(\d{1,2})\2(\d{1,4})"
                          r"(?:([ T])\d{1,2}:\d{2}(:\d{2})?)?$")
SHOWN_READINGS = 3
_NAIVE_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d")
_OFFSET_FORMATS = ("%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M%#z")
EARLIEST = datetime(1900, 1, 1)
AFTER_LATEST = datetime(2201, 1, 1)
SUPPORTED_RANGE = "1900-01-01 to 2200-12-31"


def _naive(parsed: pl.Series) -> pl.Series:
    if isinstance(parsed.dtype, pl.Datetime) and parsed.dtype.time_zone is not None:
        return parsed.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return parsed


def _parse_iso(text: pl.Series) -> pl.Series:
    spaced = text.str.replace(r"^(\d{4}-\d{2}-\d{2})T", "$1 ")
    with_offset = spaced.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$")
    naive = pl.select(pl.coalesce([spaced.str.to_datetime(f, strict=False, time_unit="us")
                                   for f in _NAIVE_FORMATS])).to_series()
    offset = pl.select(pl.coalesce([
        _naive(spaced.str.to_datetime(f, strict=False, time_unit="us"))
        for f in _OFFSET_FORMATS])).to_series()
    return pl.select(pl.when(with_offset).then(offset).otherwise(naive)).to_series()


def _parse_with(text: pl.Series, fmt: str, where: str, label: str) -> pl.Series:
    try:
        return _naive(text.str.to_datetime(format=fmt, strict=False, time_unit="us"))
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"{where}: {label}: cannot use format '{fmt}': "
                         f"{str(exc).splitlines()[0]}") from None


def _candidate_formats(sample: str) -> list[str]:
    match = NUMERIC_DATE.match(sample)
    if match is None:
        return []
    first, sep, _, last, time_sep, seconds = match.groups()
    time = f"{time_sep}%H:%M{':%S' if seconds else ''}" if time_sep else ""
    if len(first) == 4:
        return [f"%Y{sep}%m{sep}%d{time}"]
    year = "%Y" if len(last) == 4 else "%y"
    return [f"%d{sep}%m{sep}%Y{time}".replace("%Y", year),
            f"%m{sep}%d{sep}%Y{time}".replace("%Y", year)]


def _not_iso_message(text: pl.Series, where: str, label: str, key: str) -> str | None:
    """The "set the format" message for numeric non-ISO dates (None for other text)."""
    present = text.is_not_null() & (text != "")
    first = text.filter(present)[0]
    candidates = _candidate_formats(first)
    if not candidates:
        return None
    # The first rows with distinct values: repeated dates would show nothing new.
    rows = (text.is_first_distinct() & present).arg_true().head(SHOWN_READINGS).to_list()
    readings = []
    for fmt in candidates:
        parsed = text.str.to_datetime(format=fmt, strict=False, time_unit="us")
        spec = "%Y-%m-%d %H:%M" if "%H" in fmt else "%Y-%m-%d"
        shown = ", ".join(f"data row {i + 1} '{text[i]}' as "
                          f"{parsed[i].strftime(spec) if parsed[i] else 'invalid'}"
                          for i in rows)
        failing = (parsed.is_null() & present).arg_true()
        fit = ("fits every row" if failing.len() == 0
               else f"fails from data row {failing[0] + 1}")
        readings.append(f"'{fmt}' (reads {shown}; {fit})")
    order = ", and the day/month order is never guessed" if len(candidates) > 1 else ""
    return (f"{where}: {label} holds dates like '{first}' that are not ISO 8601{order}: "
            f"set '{key}' in the spec to " + " or ".join(readings))


def cast_time(frame: pl.DataFrame, role: str, column: str, where: str, fmt: str | None,
              key: str = "timestamp_format") -> pl.DataFrame:
    """``frame[role]`` as a naive ``Datetime('us')`` (see the module docstring for the rules);
    ``key`` names the spec field that holds ``fmt``."""
    series = frame[role]
    label = f"column '{column}'" + (f" (role {role})" if role != column else "")
    if series.dtype == pl.Date:
        return _in_range(frame.with_columns(pl.col(role).cast(pl.Datetime("us"))), role,
                         series, where, label)
    if isinstance(series.dtype, pl.Datetime):
        return _in_range(frame.with_columns(
            pl.col(role).dt.replace_time_zone(None).cast(pl.Datetime("us"))), role, series,
            where, label)
    if not is_text_like(series.dtype):
        what = ("numbers (an epoch count? its unit cannot be known)" if series.dtype.is_numeric()
                else f"values of type {series.dtype}")
        raise InputError(f"{where}: {label} holds {what}, not dates; store ISO 8601 text "
                         f"(2021-01-04 10:00) or a date/datetime column")
    text = series.cast(pl.Utf8).str.strip_chars()
    present = text.is_not_null() & (text != "")
    if fmt:
        parsed = _parse_with(text, fmt, where, label)
        hint = f"format '{fmt}'"
    else:
        iso = text.str.contains(ISO_DATE).fill_null(False)
        if present.any() and not iso.any():
            message = _not_iso_message(text, where, label, key)
            if message:
                raise InputError(message)
        parsed = _parse_iso(text)
        hint = f"ISO 8601 (or set '{key}' in the spec)"
    bad = parsed.is_null() & present
    if bad.any():
        raise InputError(f"{where}: {label} has unparsable dates for {hint}: "
                         f"{first_rows(bad, series)}")
    return _in_range(frame.with_columns(parsed.alias(role)), role, series, where, label)


def _in_range(frame: pl.DataFrame, role: str, raw: pl.Series, where: str,
              label: str) -> pl.DataFrame:
    """``frame`` unchanged when every date in ``frame[role]`` is in the supported range; the
    message quotes ``raw``, the values as stored."""
    parsed = frame[role]
    if raw.dtype.is_temporal():  # shown as ISO text, not as datetime.date(9999, 12, 31)
        raw = raw.cast(pl.Utf8)
    outside = ((parsed < EARLIEST) | (parsed >= AFTER_LATEST)).fill_null(False)
    if outside.any():
        raise InputError(f"{where}: {label} has dates outside the supported range "
                         f"{SUPPORTED_RANGE}: {first_rows(outside, raw)}")
    return frame
