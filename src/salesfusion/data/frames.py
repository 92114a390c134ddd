"""pandas at the edge of the Python API: every public entry point that takes a table (``Panel``,
``Forecaster.fit`` / ``predict``, ``Panel.with_plan``) accepts a polars or a pandas DataFrame;
a pandas one is converted here, once, and everything inside works on polars.

``Forecaster.predict`` returns pandas when its ``series`` was pandas or when asked with
``as_pandas=True`` (``as_pandas=False`` keeps polars); see ``wants_pandas``.
pandas is never imported unless a pandas frame is given or asked for.
"""

from __future__ import annotations

import sys
from typing import Any

import polars as pl

from salesfusion.data.panel_grid import SERIES_KEY
from salesfusion.errors import InputError


def is_pandas(frame: object) -> bool:
    """Whether ``frame`` is a pandas DataFrame (checked without importing pandas)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(frame, pandas.DataFrame)


def to_polars(frame: Any, what: str) -> pl.DataFrame:
    """``frame`` as a polars DataFrame: a polars one as it is, a pandas one converted (its
    index kept as columns only when it is named, timestamps as microsecond datetimes, the
    panel's unit). Anything else is an ``InputError`` naming ``what``."""
    if isinstance(frame, pl.DataFrame):
        return frame
    if not is_pandas(frame):
        raise InputError(f"{what}: expected a polars or pandas DataFrame, got "
                         f"{type(frame).__name__}")
    named_index = any(name is not None for name in frame.index.names)
    try:
        converted = pl.from_pandas(frame.reset_index() if named_index else frame)
    except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"{what}: this pandas DataFrame cannot be read as a table "
                         f"({' '.join(str(exc).split())})") from None
    bad = [str(c) for c in converted.columns if not isinstance(c, str)]
    if bad:
        raise InputError(f"{what}: column names must be text, got {bad[:3]}")
    zoned = [c for c, t in converted.schema.items()
             if isinstance(t, pl.Datetime) and t.time_zone is not None]
    if zoned:
        raise InputError(f"{what}: column(s) {zoned} hold time-zone-aware timestamps; give "
                         f"naive ones (e.g. df[col].dt.tz_localize(None))")
    return converted.with_columns(
        [pl.col(c).cast(pl.Datetime("us")) for c, t in converted.schema.items()
         if isinstance(t, pl.Datetime) and t.time_unit != "us"])


def panel_data(frame: Any, freq: str) -> pl.DataFrame:
    """A panel's ``data`` given as pandas: converted, checked for the columns every model
    reads (``item_id, market, timestamp, y``), ids as text, dates as datetimes, units as
    floats, sorted by series and time as the ``Panel`` contract says, and checked to be the
    regular grid a panel is: timestamps are period starts at ``freq``, one row per series and
    period from its first period to its last (a period without sales is a 0 row)."""
    from salesfusion.data.frequency import FREQUENCIES, period_range, truncate_to_period

    if str(freq).upper() not in FREQUENCIES:
        raise InputError(f"Panel: unknown frequency '{freq}'; use one of "
                         f"{', '.join(FREQUENCIES)}")
    data = to_polars(frame, "Panel data")
    missing = [c for c in (*SERIES_KEY, "timestamp", "y") if c not in data.columns]
    if missing:
        raise InputError(f"Panel data: column(s) {missing} missing; a panel has item_id, "
                         f"market, timestamp and y (units) per period; it has {data.columns}")
    if not (data.schema["timestamp"].is_temporal() and data.schema["timestamp"] != pl.Time):
        raise InputError(f"Panel data: column 'timestamp' must hold dates, got "
                         f"{data.schema['timestamp']} (pandas.to_datetime converts text)")
    if not data.schema["y"].is_numeric():
        raise InputError(f"Panel data: column 'y' must hold numbers, got {data.schema['y']}")
    data = data.with_columns(pl.col(*SERIES_KEY).cast(pl.Utf8),
                             pl.col("timestamp").cast(pl.Datetime("us")),
                             pl.col("y").cast(pl.Float64)).sort(*SERIES_KEY, "timestamp")
    for column in (*SERIES_KEY, "timestamp", "y"):
        if data[column].null_count() or (column == "y" and not data["y"].is_finite().all()):
            raise InputError(f"Panel data: column '{column}' has empty or non-finite values")
    freq = str(freq).upper()
    off = data.filter(pl.col("timestamp") != truncate_to_period(pl.col("timestamp"), freq))
    if off.height:
        raise InputError(f"Panel data: timestamps must be period starts at frequency {freq} "
                         f"(weeks start Monday, months on the 1st); first: "
                         f"{off['timestamp'][0]:%Y-%m-%d} (item {off['item_id'][0]!r})")
    repeated = data.select(*SERIES_KEY, "timestamp").is_duplicated()
    if repeated.any():
        first = data.filter(repeated).row(0, named=True)
        raise InputError(f"Panel data: ({first['item_id']!r}, {first['market']!r}, "
                         f"{first['timestamp']:%Y-%m-%d}) appears twice; one row per series "
                         f"and period")
    index = period_range(data["timestamp"].min(), data["timestamp"].max(), freq)
    steps = pl.DataFrame({"timestamp": index.cast(pl.Datetime("us")),
                          "_step": pl.int_range(index.len(), eager=True)})
    gaps = (data.join(steps, on="timestamp", how="left").group_by(SERIES_KEY)
            .agg((pl.col("_step").max() - pl.col("_step").min() + 1 - pl.len()).alias("gap"))
            .filter(pl.col("gap") > 0))
    if gaps.height:
        raise InputError(f"Panel data: {gaps.height} series skip periods (e.g. item "
                         f"{gaps['item_id'][0]!r} in {gaps['market'][0]!r}); give a row with "
                         f"y = 0 for every period between a series' first and last")
    return data


def to_polars_or_none(frame: Any, what: str) -> pl.DataFrame | None:
    return None if frame is None else to_polars(frame, what)


def wants_pandas(as_pandas: bool | None, given: Any) -> bool:
    """``as_pandas`` when given, else whether the table an entry point was ``given`` is
    pandas. (A panel built from pandas is converted once; the models inside pass it on, so
    its origin cannot choose what ``predict`` returns.)"""
    return bool(as_pandas) if as_pandas is not None else is_pandas(given)


def as_panel(panel: Any, what: str) -> Any:
    """``panel`` when it is a ``Panel``; a bare table or anything else is an ``InputError``
    saying how to make one."""
    from salesfusion.data.panel import Panel

    if isinstance(panel, Panel):
        return panel
    if isinstance(panel, pl.DataFrame) or is_pandas(panel):
        raise InputError(f"{what} takes a Panel, not a bare table: Panel(data=frame, "
                         f"freq='W') with columns item_id, market, timestamp, y (polars or "
                         f"pandas), or build_panel(load_tables(load_spec(path))) from a spec")
    raise InputError(f"{what} takes a Panel, got {type(panel).__name__}")


def to_pandas(frame: pl.DataFrame) -> Any:
    """``frame`` as a pandas DataFrame (timestamps as ``datetime64``, text as ``object``)."""
    return frame.to_pandas()


def returned(frame: pl.DataFrame, pandas: bool) -> Any:
    """What an entry point returns: ``frame``, as pandas when ``pandas``."""
    return to_pandas(frame) if pandas else frame
