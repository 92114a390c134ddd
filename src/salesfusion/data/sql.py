"""PostgreSQL in and out: spec tables read from a database, forecasts upserted into one.

The connection URL comes from an environment variable (a spec's ``url_env``) or the command
line, never from a YAML file, and no message prints it: messages name the variable and show the
server as ``postgresql://user@host:port/db``; any server message is scrubbed of the password too.
Identifiers are always composed with ``psycopg.sql`` (quoted), never formatted into SQL text.

Reading runs in a read-only transaction with the session's time zone set to UTC: ``numeric``
columns become floats, dates and timestamps stay temporal (a ``timestamptz`` as its UTC time),
integers and booleans keep their type and anything else becomes text, so the role mapping and
checks of ``data.validate`` see what they would see from a Parquet file.

Forecasts are written in one transaction: COPY into a temporary table, then INSERT ... ON
CONFLICT DO UPDATE on the key (run_id, model, item_id, market, origin, timestamp), so a rerun
replaces its rows and a failure leaves none of them. Each quantile is its own ``double
precision`` column ("q0.1"): plain SQL (``WHERE "q0.9" > stock``) and any BI tool read it, and
its type is checked; a model with other quantiles adds its columns (nullable, so the table's
other rows stay valid). Flags (``cold_start``, ...) are ``boolean`` columns the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import polars as pl

from salesfusion.data.spec import DEFAULT_URL_ENV, table_parts
from salesfusion.errors import InputError

if TYPE_CHECKING:
    import psycopg

    from salesfusion.data.spec import TableSpec

CONNECT_TIMEOUT_S = 10
KEY = ("run_id", "model", "item_id", "market", "origin", "timestamp")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
QUANTILE = re.compile(r"q\d*\.?\d+")
# Column -> (the SQL type it is created with, the format_type() names an existing table's
# column may have instead).
TEXT = ("text", r"text|character varying(\(\d+\))?")
FLOAT = ("double precision", r"double precision|real|numeric(\(\d+(,\d+)?\))?")
BOOLEAN = ("boolean", "boolean")
CORE = {"run_id": TEXT, "model": TEXT, "item_id": TEXT, "market": TEXT,
        "origin": ("timestamp", r"timestamp(\(\d\))? without time zone"),
        "timestamp": ("timestamp", r"timestamp(\(\d\))? without time zone"),
        "y_pred": FLOAT, "written_at": ("timestamptz", r"timestamp(\(\d\))? with time zone")}
_TYPES = {"int2": pl.Int64, "int4": pl.Int64, "int8": pl.Int64, "oid": pl.Int64,
          "float4": pl.Float64, "float8": pl.Float64, "numeric": pl.Float64, "bool": pl.Boolean,
          "date": pl.Date, "timestamp": pl.Datetime("us"), "timestamptz": pl.Datetime("us", "UTC"),
          "text": pl.Utf8, "varchar": pl.Utf8, "bpchar": pl.Utf8, "name": pl.Utf8}


def url_from_env(name: str, where: str) -> str:
    """The connection URL in environment variable ``name`` (``where`` leads the message)."""
    if not _ENV_NAME.fullmatch(name):
        raise InputError(f"{where}: {name!r} is not an environment variable name")
    url = os.environ.get(name, "").strip()
    if not url:
        raise InputError(f"{where}: environment variable {name} is not set; it must hold the "
                         f"PostgreSQL connection URL (postgresql://user:password@host:port/db)")
    return url


def target_url(value: str, option: str = "--to") -> str:
    """The URL of a ``--to`` option: ``postgresql://...`` itself, or ``env:NAME``."""
    if value.startswith("env:"):
        return url_from_env(value.removeprefix("env:"), option)
    if not value.startswith(("postgresql://", "postgres://")):
        # Only a scheme is shown: the value may be a password pasted in the wrong place.
        shown = f"a {value.split('://')[0]!r} URL" if "://" in value else "something else"
        raise InputError(f"{option}: expected a postgresql://... URL or env:NAME (a variable "
                         f"holding one), got {shown}")
    _parsed(value, option)
    return value


@dataclass(frozen=True)
class ForecastTarget:
    """Where ``--to`` writes forecasts: a connection URL and a ``[schema.]table``."""

    url: str
    table: str

    def describe(self) -> str:
        return f"{self.table} at {describe_url(self.url)}"


def forecast_target(to: str, table: str) -> ForecastTarget:
    """The ``--to``/``--to-table`` target, checked before a command does its (long) work: the
    URL (``postgresql://...`` or ``env:NAME``), the table name, the connection and, when the
    table exists, its columns. Writes nothing."""
    identifier(table, "--to-table")
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


def describe_url(url: str) -> str:
    """``postgresql://user@host:port/db``: where a URL leads, without its password."""
    try:
        info = _parsed(url, "")
    except InputError:
        return "(an unparsable URL)"
    host = info.get("host") or info.get("hostaddr") or "localhost"
    user = f"{info['user']}@" if info.get("user") else ""
    return f"postgresql://{user}{host}:{info.get('port') or 5432}/{info.get('dbname') or ''}"


def _parsed(url: str, where: str) -> dict[str, Any]:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        return conninfo_to_dict(url)
    except psycopg.Error:  # its message quotes the URL, password included
        raise InputError(f"{where}: not a valid PostgreSQL connection URL") from None


def _scrubbed(text: str, url: str) -> str:
    """One line of ``text`` with the URL's password (plain or percent-encoded) masked."""
    try:
        secret = str(_parsed(url, "").get("password") or "")
    except InputError:
        secret = ""
    line = " ".join(text.split())
    for form in {secret, quote(secret, safe=""), quote(secret)} - {""}:
        line = line.replace(form, "***")
    return line


def _server_message(exc: Exception, url: str) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    return _scrubbed(primary or str(exc) or type(exc).__name__, url)


def identifier(name: str, where: str) -> Any:
    """``[schema.]name`` as a quoted ``psycopg.sql.Identifier``."""
    from psycopg import sql

    try:
        return sql.Identifier(*table_parts(name))
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from None


@contextmanager
def connect(url: str, where: str, *, read_only: bool = False) -> Iterator[psycopg.Connection]:
    """A connection in one transaction (committed when the block succeeds, else rolled back);
    a connection failure is an InputError naming ``where`` and the server, not the password."""
    import psycopg

    _parsed(url, where)  # libpq's own parse error quotes the whole URL, password included
    try:
        conn = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        raise InputError(f"{where}: cannot connect to PostgreSQL at {describe_url(url)}: "
                         f"{_scrubbed(str(exc), url)}") from None
    with conn:
        conn.read_only = read_only
        conn.execute("SET TIME ZONE 'UTC'")
        yield conn


def read_spec_table(source: TableSpec, name: str) -> pl.DataFrame:
    """Spec table ``name`` (``format: postgresql``) as stored, before role mapping."""
    import psycopg
    from psycopg import sql

    env = source.url_env or DEFAULT_URL_ENV
    url = url_from_env(env, name)
    where = f"{name} (${env})"
    if source.table is not None:
        statement: Any = sql.SQL("SELECT * FROM {}").format(identifier(source.table, name))
    else:
        statement = sql.SQL(str(source.query).strip().rstrip(";"))
    with connect(url, where, read_only=True) as conn:
        try:
            return _fetch(conn, statement, name)
        except psycopg.errors.UndefinedTable as exc:
            what = f"table {source.table!r}" if source.table else "a table the query names"
            raise InputError(f"{name}: PostgreSQL {what} not found at {describe_url(url)} "
                             f"(${env}): {_server_message(exc, url)}") from None
        except psycopg.Error as exc:
            what = f"reading table {source.table!r}" if source.table else "the query"
            raise InputError(f"{name}: {what} failed at {describe_url(url)} (${env}): "
                             f"{_server_message(exc, url)}") from None


def _fetch(conn: psycopg.Connection, statement: Any, name: str) -> pl.DataFrame:
    from psycopg.postgres import types
    from psycopg.types.numeric import FloatLoader

    conn.adapters.register_loader("numeric", FloatLoader)  # Decimal -> float, NaN kept
    with conn.cursor() as cursor:
        cursor.execute(statement)
        if cursor.description is None:
            raise InputError(f"{name}: the query returns no rows (not a SELECT)")
        names = [column.name for column in cursor.description]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise InputError(f"{name}: the query returns column(s) {repeated} more than once")
        kinds = [_kind(types.get(c.type_code), c.type_code) for c in cursor.description]
        rows = cursor.fetchall()
    values = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return pl.DataFrame([_series(n, list(v), kind) for n, v, kind in
                         zip(names, values, kinds, strict=True)])


def _kind(info: Any, oid: int) -> str:
    # The registry also finds a type by its array's oid: an int4[] column is not an int4.
    return info.name if info is not None and info.oid == oid else ""


def _series(name: str, values: list[Any], kind: str) -> pl.Series:
    dtype = _TYPES.get(kind)
    if dtype is None:  # json, uuid, arrays...: text, which the role casts check like a CSV's
        return pl.Series(name, [None if v is None else json.dumps(v, default=str)
                                if isinstance(v, dict | list) else str(v) for v in values],
                         pl.Utf8)
    return pl.Series(name, values, dtype=dtype)


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
                             f"written: {_server_message(exc, url)}") from None
    return rows.height


def _forecast_rows(frame: pl.DataFrame, run_id: str, model: str | None,
                   table: str) -> pl.DataFrame:
    if not run_id.strip():
        raise InputError(f"{table}: the run id is empty")
    if model is not None:
        frame = frame.with_columns(pl.lit(model).alias("model"))
    needed = ["model", "item_id", "market", "origin", "timestamp", "y_pred"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InputError(f"{table}: the forecasts have no column {missing[0]!r}")
    for column in needed[:-1]:
        if frame[column].null_count():
            raise InputError(f"{table}: the forecasts' column {column!r} has empty values")
    quantiles = [c for c in frame.columns if QUANTILE.fullmatch(c) and frame[c].dtype.is_numeric()]
    flags = [c for c in frame.columns if frame[c].dtype == pl.Boolean and c not in CORE]
    rows = frame.select(
        pl.lit(run_id).alias("run_id"), pl.col("model", "item_id", "market").cast(pl.Utf8),
        pl.col("origin", "timestamp").cast(pl.Datetime("us")),
        pl.col("y_pred", *quantiles).cast(pl.Float64), *flags)
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

    target = identifier(table, "--to-table")
    optional = {c: FLOAT if QUANTILE.fullmatch(c) else BOOLEAN
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
