"""Forecasts upserted into PostgreSQL (``predict``/``backtest --to``).

Forecasts are written in one transaction: COPY into a temporary table, then INSERT ... ON
CONFLICT DO UPDATE on the key (run_id, model, item_id, market, origin, timestamp), so a rerun
replaces its rows and a failure leaves none of them. Each quantile is its own ``double
precision`` column ("q0.1"): plain SQL (``WHERE "q0.9" > stock``) and any BI tool read it, and
its type is checked; a model with other quantiles adds its columns (nullable, so the table's
other rows stay valid); ``order_quantity`` (``predict --service-level``) is stored the same
way. Flags (``cold_start``, ...) are ``boolean`` columns the same way.

The target table and the run id come from the command line: the table must be a plain
``[schema.]name`` of SQL identifier characters and the run id a short token, so neither can
carry SQL, quotes or control characters into the database (both are also passed only as a
quoted identifier and as COPY data).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from salesfusion.data.sql import (
    connect,
    describe_url,
    identifier,
    server_message,
    target_url,
)
from salesfusion.errors import InputError

if TYPE_CHECKING:
    import psycopg

KEY = ("run_id", "model", "item_id", "market", "origin", "timestamp")
QUANTILE = re.compile(r"q\d*\.?\d+")
# Other amounts a forecast may carry, stored like quantiles (nullable ``double precision``):
# predict --service-level's order quantity.
AMOUNTS = ("order_quantity",)
# Column -> (the SQL type it is created with, the format_type() names an existing table's
# column may have instead).
TEXT = ("text", r"text|character varying(\(\d+\))?")
FLOAT = ("double precision", r"double precision|real|numeric(\(\d+(,\d+)?\))?")
BOOLEAN = ("boolean", "boolean")
CORE = {"run_id": TEXT, "model": TEXT, "item_id": TEXT, "market": TEXT,
        "origin": ("timestamp", r"timestamp(\(\d\))? without time zone"),
        "timestamp": ("timestamp", r"timestamp(\(\d\))? without time zone"),
        "y_pred": FLOAT, "written_at": ("timestamptz", r"timestamp(\(\d\))? with time zone")}
# PostgreSQL's unquoted identifiers (at most 63 bytes), and the run ids a person types or
# run_id_for makes.
_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}")


def forecast_table(table: str, option: str = "--to-table") -> Any:
    """``[schema.]name`` of the forecasts table as a quoted identifier; anything but plain SQL
    identifiers is refused, since the table is created and altered under that name."""
    parts = table.split(".")
    if len(parts) > 2 or not all(_PLAIN_IDENTIFIER.fullmatch(part) for part in parts):
        raise InputError(f"{option}: {table[:80]!r} is not a table name: use [schema.]name of "
                         f"letters, digits and _ (at most 63 each, not starting with a digit)")
    return identifier(table, option)


def check_run_id(run_id: str, option: str = "--run-id") -> str:
    """``run_id`` when it is a plain token (letters, digits and ._:+-, at most 128)."""
    if not _RUN_ID.fullmatch(run_id):
        raise InputError(f"{option}: {run_id[:80]!r} is not a run id: use letters, digits and "
                         f". _ : + - (at most 128, starting with a letter or digit)")
    return run_id


@dataclass(frozen=True)
class ForecastTarget:
    """Where ``--to`` writes forecasts: a connection URL and a ``[schema.]table``."""

    url: str
    table: str

    def describe(self) -> str:
        return f"{self.table} at {describe_url(self.url)}"


def forecast_target(to: str, table: str, run_id: str | None = None) -> ForecastTarget:
    """The ``--to``/``--to-table`` target, checked before a command does its (long) work: the
    URL (``postgresql://...`` or ``env:NAME``), the table name, a given run id, the connection
    and, when the table exists, its columns. Writes nothing."""
    forecast_table(table)
    if run_id is not None:
        check_run_id(run_id)
    target = ForecastTarget(url=target_url(to), table=table)
    with connect(target.url, table, read_only=True) as conn:
        _prepared(conn, table, None, write=False)
    return target


def run_id_for(prefix: str, horizon: int, last: Any, facts: dict[str, Any]) -> str:
    """A deterministic run id, ``PREFIX-YYYY-MM-DD-hH-DIGEST``: the same command on the same
    inputs gets the same id (so a rerun replaces its rows) and ``facts`` (whatever else decides
    the forecasts' values) go into the digest."""
    body = json.dumps({"horizon": horizon, "last": str(last), **facts}, sort_keys=True,
                      default=str)
    return f"{prefix}-{last:%Y-%m-%d}-h{horizon}-{hashlib.sha256(body.encode()).hexdigest()[:12]}"



def write_forecasts(frame: pl.DataFrame, url: str, table: str, run_id: str,
                    model: str | None = None) -> int:
    """Upsert forecasts (``item_id, market, origin, timestamp, y_pred``, quantile columns
    ``q0.1``..., boolean flags; ``model`` as a column when not given) as run ``run_id`` into
    ``table``, created when missing; returns the number of rows written. One transaction: a
    rerun replaces the run's rows, a failure writes none."""
    import psycopg

    rows = _forecast_rows(frame, run_id, model, table)
    with connect(url, table) as conn:
        try:
            target = _prepared(conn, table, rows, write=True)
            _upsert(conn, target, rows)
        except psycopg.Error as exc:
            raise InputError(f"{table}: writing forecasts failed, no row of run {run_id!r} "
                             f"written: {server_message(exc, url)}") from None
    return rows.height


def _is_amount(column: str) -> bool:
    """A quantile (``q0.9``) or another amount column, stored as ``double precision``."""
    return bool(QUANTILE.fullmatch(column)) or column in AMOUNTS


def _forecast_rows(frame: pl.DataFrame, run_id: str, model: str | None,
                   table: str) -> pl.DataFrame:
    check_run_id(run_id)
    if model is not None:
        frame = frame.with_columns(pl.lit(model).alias("model"))
    needed = ["model", "item_id", "market", "origin", "timestamp", "y_pred"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InputError(f"{table}: the forecasts have no column {missing[0]!r}")
    for column in needed[:-1]:
        if frame[column].null_count():
            raise InputError(f"{table}: the forecasts' column {column!r} has empty values")
    amounts = [c for c in frame.columns if _is_amount(c) and frame[c].dtype.is_numeric()]
    flags = [c for c in frame.columns if frame[c].dtype == pl.Boolean and c not in CORE]
    rows = frame.select(
        pl.lit(run_id).alias("run_id"), pl.col("model", "item_id", "market").cast(pl.Utf8),
        pl.col("origin", "timestamp").cast(pl.Datetime("us")),
        pl.col("y_pred", *amounts).cast(pl.Float64), *flags)
    duplicated = rows.select(KEY).is_duplicated()
    if duplicated.any():
        first = rows.filter(duplicated).row(0, named=True)
        raise InputError(f"{table}: the forecasts repeat the key "
                         f"{tuple(str(first[k]) for k in KEY)}")
    return rows


def _columns(conn: psycopg.Connection, target: Any) -> dict[str, tuple[str, bool]] | None:
    """An existing table's columns (SQL type, NOT NULL without a default), None when it does
    not exist."""
    name = target.as_string(conn)
    oid = conn.execute("SELECT to_regclass(%s)::oid", [name]).fetchone()
    if oid is None or oid[0] is None:
        return None
    found = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull AND NOT "
        "a.atthasdef FROM pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY a.attnum", [oid[0]]).fetchall()
    return {row[0]: (row[1], row[2]) for row in found}


def _prepared(conn: psycopg.Connection, table: str, rows: pl.DataFrame | None,
              write: bool) -> Any:
    """``table`` as an identifier, checked: an existing table forecasts do not fit is refused
    (one line naming it and the column). Writing, a missing table is created and the quantile
    and flag columns of ``rows`` that an existing one lacks are added."""
    from psycopg import sql

    target = forecast_table(table)
    optional = {c: FLOAT if _is_amount(c) else BOOLEAN
                for c in (rows.columns if rows is not None else []) if c not in CORE}
    existing = _columns(conn, target)
    if existing is None:
        if write:
            columns = [(c, CORE[c][0] + " NOT NULL") for c in KEY] + [("y_pred", FLOAT[0])]
            columns += [(c, kind) for c, (kind, _) in optional.items()]
            conn.execute(sql.SQL("CREATE TABLE {} ({}, written_at timestamptz NOT NULL DEFAULT "
                                 "now(), PRIMARY KEY ({}))").format(
                target, sql.SQL(", ").join(sql.SQL("{} {}").format(
                    sql.Identifier(c), sql.SQL(kind)) for c, kind in columns),
                sql.SQL(", ").join(map(sql.Identifier, KEY))))
        return target
    for column, (created, accepted) in {**CORE, **optional}.items():
        if column in existing and not re.fullmatch(accepted, existing[column][0]):
            raise InputError(f"table {table}: column {column!r} is {existing[column][0]}, "
                             f"forecasts need {created}")
        if column not in existing and column in CORE:
            raise InputError(f"table {table}: has no column {column!r}; it is not a "
                             f"salesfusion forecasts table (choose another --to-table)")
    unfilled = [c for c, (_, strict) in existing.items()
                if strict and c not in CORE and c not in optional]
    if unfilled:
        raise InputError(f"table {table}: column {unfilled[0]!r} is NOT NULL without a "
                         f"default, and forecasts do not fill it")
    key = [row[0] for row in conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(%s) AND i.indisprimary",
        [target.as_string(conn)]).fetchall()]
    if set(key) != set(KEY):
        raise InputError(f"table {table}: its primary key is ({', '.join(key)}), not "
                         f"({', '.join(KEY)}), so a rerun could not replace its rows")
    for column, (created, _) in optional.items():
        if write and column not in existing:
            conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                target, sql.Identifier(column), sql.SQL(created)))
    return target


def _upsert(conn: psycopg.Connection, target: Any, rows: pl.DataFrame) -> None:
    from psycopg import sql

    stage = sql.Identifier("salesfusion_forecast_stage")
    listed = sql.SQL(", ").join(map(sql.Identifier, rows.columns))
    # The target's column types, none of its constraints: those apply at the INSERT.
    conn.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO "
                         "DATA").format(stage, listed, target))
    with conn.cursor() as cursor:
        with cursor.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
                stage, listed)) as copy:
            copy.write(rows.write_csv(include_header=False,
                                      datetime_format="%Y-%m-%dT%H:%M:%S%.6f"))
        cursor.execute(sql.SQL(
            "INSERT INTO {target} ({listed}, written_at) SELECT {listed}, now() FROM {stage} "
            "ON CONFLICT ({key}) DO UPDATE SET {updates}, written_at = EXCLUDED.written_at"
        ).format(target=target, listed=listed, stage=stage,
                 key=sql.SQL(", ").join(map(sql.Identifier, KEY)),
                 updates=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(
                     sql.Identifier(c)) for c in rows.columns if c not in KEY)))
