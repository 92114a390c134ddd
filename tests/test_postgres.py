"""PostgreSQL in and out against a real server (``tests/postgres_server.py``): a spec's tables
read from the database give the same panel as the files, and ``predict``/``backtest --to``
upsert forecasts idempotently, atomically, and never print the password."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pytest
import yaml
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.data.panel import build_panel
from salesfusion.data.spec import load_spec
from salesfusion.data.sql_write import write_forecasts
from salesfusion.data.validate import load_tables
from salesfusion.datasets.synthetic import synthetic
from salesfusion.errors import InputError
from tests.postgres_server import PASSWORD, postgres_url  # noqa: F401 (fixture)

pytestmark = pytest.mark.xdist_group("postgres")
ENV = "SALESFUSION_TEST_PG_URL"
# Numbers as numeric (read as Decimal: must become floats), launch dates as date, the events
# through a query and the items from a schema, so every read path is used.
PG_TYPES = {pl.Utf8: "text", pl.Float64: "numeric", pl.Int64: "bigint", pl.Boolean: "boolean",
            pl.Datetime("us"): "timestamp"}


def _load(conn: psycopg.Connection, table: str, frame: pl.DataFrame,
          types: dict[str, str] | None = None) -> None:
    kinds = {c: (types or {}).get(c, PG_TYPES[frame[c].dtype]) for c in frame.columns}
    conn.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {k}' for c, k in kinds.items())})")
    with conn.cursor().copy(f"COPY {table} FROM STDIN (FORMAT csv)") as copy:
        copy.write(frame.write_csv(include_header=False))


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory,
         postgres_url: str) -> Iterator[Path]:  # noqa: F811
    """The synthetic shop as files, and as PostgreSQL tables with a spec (``pg.yaml``) that
    reads them; the URL is in ``ENV`` for the module."""
    folder = tmp_path_factory.mktemp("pg") / "shop"
    synthetic(folder, n_items=16, n_weeks=30, image_size=8, events_per_market=4)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA catalog")
        _load(conn, "shop_sales", pl.read_parquet(folder / "sales.parquet"))
        _load(conn, "catalog.items", pl.read_parquet(folder / "items.parquet"),
              {"launch_date": "date"})
        _load(conn, "shop_markets", pl.read_csv(folder / "markets.csv"))
        _load(conn, "shop_events", pl.read_parquet(folder / "events.parquet"))
    spec = yaml.safe_load((folder / "spec.yaml").read_text())
    sources = {"sales": {"table": "shop_sales"}, "items": {"table": "catalog.items"},
               "markets": {"table": "shop_markets", "url_env": ENV},
               "events": {"query": "SELECT * FROM shop_events WHERE audience > 0 ;"}}
    for name, source in sources.items():
        del spec[name]["path"]
        spec[name] = {"format": "postgresql", "url_env": ENV, **source, **spec[name]}
    spec["image_root"] = str(folder)
    (folder / "pg.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    os.environ[ENV] = postgres_url
    yield folder
    os.environ.pop(ENV, None)


def _spec(shop: Path, name: str, **changes: Any) -> Path:
    """``pg.yaml`` with the sales table's entries changed (None removes one)."""
    spec = yaml.safe_load((shop / "pg.yaml").read_text())
    spec["sales"].update(changes)
    spec["sales"] = {k: v for k, v in spec["sales"].items() if v is not None}
    path = shop / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


def _rows(url: str, table: str, where: str = "TRUE") -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT * FROM {table} WHERE {where}").fetchall()


def _count(url: str, table: str) -> tuple[int, int]:
    """Rows, and distinct keys, of ``table``."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            f"SELECT count(*), count(DISTINCT (run_id, model, item_id, market, origin, "
            f"timestamp)) FROM {table}").fetchone()


def _one_line_error(result: Any) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ")
    assert PASSWORD not in result.output and "s3cret" not in result.output
    return lines[-1]


def test_panel_from_postgres_equals_the_files(shop: Path) -> None:
    from_files = build_panel(load_tables(load_spec(shop / "spec.yaml")))
    from_pg = build_panel(load_tables(load_spec(shop / "pg.yaml")))
    assert from_pg.data.height > 0
    assert_frame_equal(from_pg.data, from_files.data)
    assert_frame_equal(from_pg.items, from_files.items, check_column_order=False)
    order = list(from_files.events.columns)  # events of one period keep no particular order
    assert_frame_equal(from_pg.events.sort(order), from_files.events.sort(order))


def test_backtest_and_predict_upsert_forecasts_once(shop: Path, tmp_path: Path,
                                                    postgres_url: str) -> None:  # noqa: F811
    spec = str(shop / "pg.yaml")
    backtest = ["backtest", "--spec", spec, "--models", "seasonal_naive", "--horizon", "3",
                "--windows", "2", "--to", f"env:{ENV}", "--to-table", "forecasts"]
    for attempt in range(2):
        result = _cli(*backtest, "--out", str(tmp_path / "run"))
        assert result.exit_code == 0, result.output
        expected = pl.read_parquet(tmp_path / "run" / "forecasts.parquet").height
        assert _count(postgres_url, "forecasts") == (expected, expected), attempt
    origins = _rows(postgres_url, "forecasts", "TRUE ORDER BY origin")
    assert len({row[4] for row in origins}) == 2  # one origin per window
    assert all(row[4] < row[5] for row in origins)  # the origin precedes what it forecasts

    model = tmp_path / "model"
    assert _cli("train", "--preset", "seasonal_naive", "--spec", spec, "--out",
                str(model)).exit_code == 0
    predict = ["predict", "--model", str(model), "--spec", spec, "--horizon", "3", "--to",
               postgres_url, "--to-table", "forecasts"]
    for _attempt in range(2):
        result = _cli(*predict, "--out", str(tmp_path / "f.parquet"))
        assert result.exit_code == 0, result.output
        assert PASSWORD not in result.output and "s3cret" not in result.output
    predicted = pl.read_parquet(tmp_path / "f.parquet")
    total = expected + predicted.height
    assert _count(postgres_url, "forecasts") == (total, total)
    assert len({row[0] for row in _rows(postgres_url, "forecasts")}) == 2  # two run ids

    # The rows hold the file's forecasts, dated from the data's last period.
    with psycopg.connect(postgres_url) as conn:
        stored = pl.DataFrame(conn.execute(
            'SELECT item_id, market, "timestamp", y_pred, "q0.1", "q0.9", cold_start, origin '
            "FROM forecasts WHERE run_id LIKE 'seasonal_naive-%'").fetchall(), orient="row",
            schema=["item_id", "market", "timestamp", "y_pred", "q0.1", "q0.9", "cold_start",
                    "origin"])
    last = load_tables(load_spec(spec)).sales["timestamp"].max()
    assert stored["origin"].unique().to_list() == [last]
    columns = ["item_id", "market", "timestamp", "y_pred", "q0.1", "q0.9", "cold_start"]
    assert_frame_equal(stored.select(columns).sort("item_id", "market", "timestamp"),
                       predicted.select(columns).sort("item_id", "market", "timestamp"))

    # --to alone (no file), a schema-qualified table, an explicit run id.
    result = _cli(*predict[:-2], "--to-table", "catalog.forecasts", "--run-id", "mine")
    assert result.exit_code == 0, result.output
    assert {row[0] for row in _rows(postgres_url, "catalog.forecasts")} == {"mine"}

    # --service-level's order quantity is stored beside the quantile it is.
    result = _cli(*predict[:-2], "--to-table", "planned", "--service-level", "0.9")
    assert result.exit_code == 0, result.output
    with psycopg.connect(postgres_url) as conn:
        pairs = conn.execute('SELECT order_quantity, "q0.9" FROM planned').fetchall()
    assert pairs and all(quantity == quantile for quantity, quantile in pairs)


def _frame(n: int = 4, model: str = "m") -> pl.DataFrame:
    return pl.DataFrame({
        "item_id": [f"I{i}" for i in range(n)], "market": "UK",
        "origin": [datetime(2024, 1, 1)] * n,
        "timestamp": [datetime(2024, 1, 8 + i) for i in range(n)],
        "y_pred": [float(i) for i in range(n)], "q0.1": [0.0] * n, "cold_start": [False] * n,
        "model": model})


def test_a_failed_write_leaves_no_row(shop: Path, tmp_path: Path,
                                      postgres_url: str) -> None:  # noqa: F811
    assert write_forecasts(_frame(), postgres_url, "atomic", "r1") == 4
    with psycopg.connect(postgres_url) as conn:
        conn.execute("ALTER TABLE atomic ADD CONSTRAINT small CHECK (y_pred < 100)")
    bad = _frame().with_columns(pl.when(pl.col("item_id") == "I3").then(500.0)
                                .otherwise(pl.col("y_pred") + 1).alias("y_pred"))
    for run in ("r1", "r2"):  # a rerun's updates and a new run's inserts alike
        with pytest.raises(InputError, match=r"atomic: .*no row of run .*small"):
            write_forecasts(bad, postgres_url, "atomic", run)
    assert sorted(r[6] for r in _rows(postgres_url, "atomic")) == [0.0, 1.0, 2.0, 3.0]
    assert {r[0] for r in _rows(postgres_url, "atomic")} == {"r1"}

    # Through the CLI: exit 2, and neither the table nor --out is written.
    model = tmp_path / "model"
    spec = str(shop / "pg.yaml")
    assert _cli("train", "--preset", "naive", "--spec", spec, "--out", str(model)).exit_code == 0
    with psycopg.connect(postgres_url) as conn:
        conn.execute("ALTER TABLE atomic ADD CONSTRAINT only_r1 CHECK (run_id = 'r1')")
    out = tmp_path / "f.parquet"
    line = _one_line_error(_cli("predict", "--model", str(model), "--spec", spec, "--out",
                                str(out), "--to", f"env:{ENV}", "--to-table", "atomic"))
    assert "only_r1" in line and not out.exists()
    assert len(_rows(postgres_url, "atomic")) == 4


def test_a_new_quantile_adds_its_column(postgres_url: str) -> None:  # noqa: F811
    write_forecasts(_frame(), postgres_url, "grows", "r1")
    write_forecasts(_frame().with_columns(pl.lit(5.0).alias("q0.5")), postgres_url, "grows",
                    "r2", model="other")
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute('SELECT run_id, model, "q0.5" FROM grows').fetchall()
    assert sorted(set(rows)) == [("r1", "m", None), ("r2", "other", 5.0)]


@pytest.mark.parametrize(("name", "create", "named"), [
    ("wrong_type", "(run_id text, model text, item_id text, market text, origin timestamp, "
     "\"timestamp\" timestamp, y_pred text, written_at timestamptz, PRIMARY KEY (run_id, model, "
     "item_id, market, origin, \"timestamp\"))", "column 'y_pred' is text"),
    ("no_origin", "(run_id text, model text, item_id text, market text, \"timestamp\" "
     "timestamp, y_pred float8)", "no column 'origin'"),
    ("other_key", "(run_id text, model text, item_id text, market text, origin timestamp, "
     "\"timestamp\" timestamp, y_pred float8, written_at timestamptz, PRIMARY KEY (run_id))",
     "primary key is (run_id)"),
])
def test_an_incompatible_table_is_refused(shop: Path, tmp_path: Path, postgres_url: str,  # noqa: F811
                                          name: str, create: str, named: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute(f"CREATE TABLE {name} {create}")
    with pytest.raises(InputError, match=f"table {name}: .*{re.escape(named)}"):
        write_forecasts(_frame(), postgres_url, name, "r1")
    # The CLI refuses it before backtesting, and writes no --out.
    line = _one_line_error(_cli("backtest", "--spec", str(shop / "pg.yaml"), "--models",
                                "naive", "--to", f"env:{ENV}", "--to-table", name, "--out",
                                str(tmp_path / "run")))
    assert f"table {name}" in line and named in line
    assert not (tmp_path / "run").exists() and not _rows(postgres_url, name)


def test_read_errors_name_the_table_not_the_password(shop: Path, tmp_path: Path,
                                                     postgres_url: str) -> None:  # noqa: F811
    closed = postgres_url.replace(postgres_url.split(":")[-1].split("/")[0], "1")
    cases = [
        (_spec(shop, "bad_table", table="no_such_sales"), {}, ["sales", "'no_such_sales'",
                                                              "not found", f"${ENV}"]),
        (_spec(shop, "bad_query", table=None, query="SELECT nope FROM shop_sales"), {},
         ["sales", "'SELECT nope FROM shop_sales'", "undefined_column (SQLSTATE 42703)",
          "near 'nope FROM shop_sales'"]),
        (_spec(shop, "no_env", url_env="SALESFUSION_TEST_UNSET"), {},
         ["sales", "SALESFUSION_TEST_UNSET is not set"]),
        (shop / "pg.yaml", {ENV: closed}, ["sales", "cannot connect", "127.0.0.1:1/shop"]),
        (shop / "pg.yaml", {ENV: postgres_url.replace("s3cret", "wrong")},
         ["sales", "password authentication failed"]),
        (shop / "pg.yaml", {ENV: f"{postgres_url}?bogus=1"},
         ["sales", "not a valid PostgreSQL connection URL"]),
        (_spec(shop, "no_column", columns={"item_id": "item_id", "market": "market",
                                           "timestamp": "week", "quantity": "qty"}), {},
         ["PostgreSQL table shop_sales: column 'qty' (role quantity) not found"]),
    ]
    for spec, env, named in cases:
        line = _one_line_error(_cli("backtest", "--spec", str(spec), "--models", "naive",
                                    "--out", str(tmp_path / "run"), env=env))
        assert all(part in line for part in named), (named, line)
    assert not (tmp_path / "run").exists()
    for to, named in [(closed, "cannot connect"), ("mysql://u:s3cret@h/db", "'mysql' URL"),
                      ("env:SALESFUSION_TEST_UNSET", "SALESFUSION_TEST_UNSET is not set")]:
        line = _one_line_error(_cli("backtest", "--spec", str(shop / "pg.yaml"), "--models",
                                    "naive", "--to", to))
        assert named in line, line


def test_bad_values_from_postgres_name_column_and_row(shop: Path) -> None:
    query = ("SELECT item_id, market, week, CASE WHEN rn = 3 THEN 'lots' ELSE units::text END "
             "AS units FROM (SELECT *, row_number() OVER (ORDER BY item_id, market, week) AS rn "
             "FROM shop_sales) AS s ORDER BY rn")
    spec = _spec(shop, "bad_value", table=None, query=query, columns={
        "item_id": "item_id", "market": "market", "timestamp": "week", "quantity": "units"})
    with pytest.raises(InputError, match=r"PostgreSQL query of table 'sales': column 'units' "
                                         r"\(role quantity\).*row 3"):
        load_tables(load_spec(spec))


@pytest.mark.parametrize(("source", "message"), [
    ({"table": "t", "query": "SELECT 1"}, "exactly one of 'table'"),
    ({}, "exactly one of 'table'"),
    ({"table": "t", "path": "sales.parquet"}, "'path' names a file"),
    ({"table": "a.b.c"}, "is not [schema.]name"),
    ({"query": "DELETE FROM t"}, "one SELECT"),
    ({"table": "t", "url_env": "1BAD"}, "'1BAD' is not an environment variable name"),
])
def test_spec_validates_postgres_sources(tmp_path: Path, source: dict[str, str],
                                         message: str) -> None:
    spec = {"name": "s", "sales": {"format": "postgresql", **source, "columns": {
        "item_id": "i", "timestamp": "t", "quantity": "q"}}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(InputError, match=r"invalid spec at 'sales.*'") as error:
        load_spec(path)
    assert message in str(error.value)
