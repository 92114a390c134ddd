"""PostgreSQL connections, and spec tables read from a database (writing forecasts is
``data.sql_write``).

The connection URL comes from an environment variable (a spec's ``url_env``) or the command
line, never from a YAML file, and no message prints it: messages name the variable and show the
server as ``postgresql://user@host:port/db``; any server message is scrubbed of the password too.
Identifiers are always composed with ``psycopg.sql`` (quoted), never formatted into SQL text.

A spec's ``query`` is untrusted text that could try to write: it is sent as one prepared
statement (the extended protocol's Parse refuses a second statement, so no ``; COMMIT; DROP``
can follow it) inside a transaction begun READ ONLY on a session whose default is read-only,
with a ``statement_timeout``. A failure is reported by the server's error class, the position in
the query and the query's first line, never by the server's message text, which can quote row
values (``pg_read_file(...)::int`` would print a server file into it).

Reading runs with the session's time zone set to UTC: ``numeric`` columns become floats, dates
and timestamps stay temporal (a ``timestamptz`` as its UTC time), integers and booleans keep
their type and anything else becomes text, so the role mapping and checks of ``data.validate``
see what they would see from a Parquet file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import polars as pl

from salesfusion.data.spec import DEFAULT_URL_ENV, table_parts
from salesfusion.errors import InputError

if TYPE_CHECKING:
    import psycopg

    from salesfusion.data.spec import TableSpec

CONNECT_TIMEOUT_S = 10
# How long one read may run on the server before it is cancelled (seconds; the variable
# overrides it): a runaway spec query must not hold the database.
STATEMENT_TIMEOUT_ENV = "SALESFUSION_PG_STATEMENT_TIMEOUT_S"
DEFAULT_STATEMENT_TIMEOUT_S = 600.0
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
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


def server_message(exc: Exception, url: str) -> str:
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


def statement_timeout_s() -> float:
    """The server-side time limit of one read, from ``STATEMENT_TIMEOUT_ENV`` or the default."""
    raw = os.environ.get(STATEMENT_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_STATEMENT_TIMEOUT_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds <= 86_400:
        raise InputError(f"{STATEMENT_TIMEOUT_ENV}: {raw[:40]!r} is not a number of seconds "
                         f"between 0 and 86400")
    return seconds


def _read_only_options(url: str) -> str:
    """libpq ``options`` making every transaction of the session read-only with a statement
    timeout, kept beside any options the URL already sets (a search_path, say)."""
    own = str(_parsed(url, "").get("options") or "")
    timeout_ms = max(1, round(statement_timeout_s() * 1000))
    return (f"{own} -c default_transaction_read_only=on "
            f"-c statement_timeout={timeout_ms}").strip()


@contextmanager
def connect(url: str, where: str, *, read_only: bool = False) -> Iterator[psycopg.Connection]:
    """A connection in one transaction (committed when the block succeeds, else rolled back);
    a connection failure is an InputError naming ``where`` and the server, not the password.
    ``read_only``: the transaction begins READ ONLY, and so would any later one of the session,
    and each statement is cancelled after ``statement_timeout_s()``."""
    import psycopg

    _parsed(url, where)  # libpq's own parse error quotes the whole URL, password included
    settings = {"options": _read_only_options(url)} if read_only else {}
    try:
        conn = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, **settings)
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
        what = f"reading table {source.table!r}"
    else:
        # Sent as typed: the server sees exactly this text, and error positions index into it.
        statement = str(source.query).strip().rstrip(";").rstrip()
        what = f"the query {_first_line(statement)!r}"
    with connect(url, where, read_only=True) as conn:
        try:
            return _fetch(conn, statement, name)
        except psycopg.errors.UndefinedTable as exc:
            if source.table is None:
                raise InputError(f"{name}: {what} failed at {describe_url(url)} (${env}): "
                                 f"{_failure(exc, statement)}") from None
            raise InputError(f"{name}: PostgreSQL table {source.table!r} not found at "
                             f"{describe_url(url)} (${env})") from None
        except psycopg.Error as exc:
            raise InputError(f"{name}: {what} failed at {describe_url(url)} (${env}): "
                             f"{_failure(exc, statement if source.table is None else None)}"
                             ) from None


def _first_line(query: str, width: int = 60) -> str:
    line = query.strip().splitlines()[0] if query.strip() else ""
    return line if len(line) <= width else line[:width - 3] + "..."


def _failure(exc: Exception, query: str | None) -> str:
    """What failed, without the server's message text: it can quote row values and files the
    query read (``pg_read_file(...)::int``). The error class and SQLSTATE, the place in the
    query (text the user wrote) and, for the few errors whose cause is the query's shape, what
    to change."""
    sqlstate = getattr(exc, "sqlstate", None)
    if not sqlstate:  # not from the server: the connection broke, say
        return f"{re.sub(r'(?<!^)(?=[A-Z])', ' ', type(exc).__name__).lower()}"
    condition = re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
    text = f"{condition} (SQLSTATE {sqlstate})"
    diag = getattr(exc, "diag", None)
    primary = str(getattr(diag, "message_primary", "") or "")
    position = getattr(diag, "statement_position", None)
    if query is not None and position and str(position).isdigit():
        near = query[int(position) - 1:].splitlines()[0][:30] if query[int(position) - 1:] \
            else ""
        text += f" at character {position} of the query, near {near!r}"
    if sqlstate == "42601" and "multiple commands" in primary:
        text = "it holds more than one SQL statement; a spec query is exactly one SELECT"
    elif sqlstate == "25006":  # read_only_sql_transaction
        text += ": the query tries to write, and spec queries are read-only"
    elif sqlstate == "57014":  # query_canceled: the statement timeout
        text += (f": cancelled after {statement_timeout_s():g} s (raise "
                 f"{STATEMENT_TIMEOUT_ENV} for a longer read)")
    return text


def _fetch(conn: psycopg.Connection, statement: Any, name: str) -> pl.DataFrame:
    from psycopg.postgres import types
    from psycopg.types.numeric import FloatLoader

    conn.adapters.register_loader("numeric", FloatLoader)  # Decimal -> float, NaN kept
    with conn.cursor() as cursor:
        # prepare=True sends Parse/Bind/Execute (the extended protocol), whose Parse accepts
        # one statement only; a plain execute without parameters would send the simple
        # protocol, which runs every statement of "SELECT 1; COMMIT; DROP TABLE t".
        cursor.execute(statement, prepare=True)
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


