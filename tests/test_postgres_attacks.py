"""Hostile spec queries, table names and run ids against a real PostgreSQL server, connected
as a superuser (the worst case: every privilege a query could abuse). Each attack exits 2 with
one ``error:`` line, and leaves the database (its tables and a canary table's rows), the file
system and the output folder as they were; the valid controls read and write as before."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pytest
import yaml
from typer.testing import CliRunner

from salesfusion.cli import app
from tests.conftest import make_shop
from tests.postgres_server import PASSWORD, postgres_url  # noqa: F401 (fixture)

pytestmark = pytest.mark.xdist_group("postgres")
ENV = "SALESFUSION_TEST_PG_ATTACK_URL"
SALES = "SELECT sku, country, sold_at, qty FROM shop_sales"


@pytest.fixture(scope="module")
def drop_folder() -> Iterator[Path]:
    """A folder the database server's own user may write to (the server runs as ``postgres``
    under root), where a COPY ... TO PROGRAM would leave its file."""
    folder = Path(tempfile.mkdtemp(prefix="salesfusion-pg-attack-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory,
         postgres_url: str) -> Iterator[Path]:  # noqa: F811
    """A small shop's transactions in table ``shop_sales`` beside a ``canary`` table; the URL
    (a superuser's) is in ``ENV`` for the module."""
    folder = tmp_path_factory.mktemp("attack")
    make_shop(folder, covariates=False)
    sales = pl.read_csv(folder / "sales.csv").rename({"when": "sold_at"})
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                            ).fetchone() == (True,)
        conn.execute("CREATE TABLE shop_sales (sku text, country text, sold_at text, qty int, "
                     "unit_price numeric, invoice text)")
        with conn.cursor().copy("COPY shop_sales FROM STDIN (FORMAT csv)") as copy:
            copy.write(sales.write_csv(include_header=False))
        conn.execute("CREATE TABLE canary (note text)")
        conn.execute("INSERT INTO canary VALUES ('untouched')")
    os.environ[ENV] = postgres_url
    yield folder
    os.environ.pop(ENV, None)


def _state(url: str) -> tuple[list[Any], list[Any]]:
    """The database's tables (every schema but the system ones) and the canary's rows."""
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN "
            "('pg_catalog', 'information_schema') ORDER BY 1, 2").fetchall()
        rows = conn.execute("SELECT note FROM canary ORDER BY note").fetchall()
    return tables, rows


def _query_spec(shop: Path, query: str) -> Path:
    spec = {"name": "attacked", "freq": "W", "sales": {
        "format": "postgresql", "url_env": ENV, "query": query,
        "columns": {"item_id": "sku", "market": "country", "timestamp": "sold_at",
                    "quantity": "qty"}}}
    path = shop / "query.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _refused(result: Any) -> str:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output and PASSWORD not in result.output
    return errors[0]


ATTACKS = [
    ("commit_then_drop", f"{SALES}; COMMIT; DROP TABLE canary; {SALES}",
     ["more than one SQL statement"]),
    ("commit_then_insert", f"{SALES}; COMMIT; INSERT INTO canary VALUES ('written')",
     ["more than one SQL statement"]),
    ("copy_to_program", f"{SALES}; COPY (SELECT 1) TO PROGRAM 'touch {{drop}}/pwned'",
     ["more than one SQL statement"]),
    ("writing_cte", f"WITH gone AS (DELETE FROM canary RETURNING note) {SALES}",
     ["read_only_sql_transaction", "read-only"]),
    ("read_only_switched_off", "SELECT s.*, set_config('transaction_read_only', 'off', true) "
     "FROM shop_sales s; INSERT INTO canary VALUES ('written')", ["more than one SQL"]),
]


@pytest.mark.parametrize(("case", "query", "fragments"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_a_query_cannot_write(shop: Path, tmp_path: Path, drop_folder: Path,
                              postgres_url: str, case: str, query: str,  # noqa: F811
                              fragments: list[str]) -> None:
    before = _state(postgres_url)
    spec = _query_spec(shop, query.replace("{drop}", str(drop_folder)))
    out = tmp_path / "out" / "panel.parquet"
    line = _refused(CliRunner().invoke(app, ["data", "build", str(spec), "--out", str(out)]))
    assert "sales" in line and all(fragment in line for fragment in fragments), line
    assert _state(postgres_url) == before
    assert list(drop_folder.iterdir()) == []
    assert not out.parent.exists()


def test_server_files_never_reach_the_message(shop: Path, tmp_path: Path) -> None:
    # The server's own postgresql.auto.conf opens with this sentence; a cast of the file to
    # an integer fails with the file's text in the server's message.
    spec = _query_spec(shop, "SELECT sku, country, sold_at,\n"
                             "  pg_read_file('postgresql.auto.conf')::int AS qty FROM shop_sales")
    result = CliRunner().invoke(app, ["data", "build", str(spec), "--out",
                                      str(tmp_path / "p.parquet")])
    line = _refused(result)
    assert "Do not edit" not in result.output and "ALTER SYSTEM" not in result.output
    assert "invalid_text_representation (SQLSTATE 22P02)" in line, line
    assert "SELECT sku, country, sold_at," in line, line  # the query's first line


def test_a_runaway_query_is_cancelled(shop: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESFUSION_PG_STATEMENT_TIMEOUT_S", "0.3")
    spec = _query_spec(shop, f"{SALES} CROSS JOIN pg_sleep(30)")
    line = _refused(CliRunner().invoke(app, ["data", "build", str(spec), "--out",
                                             str(tmp_path / "p.parquet")]))
    assert "query_canceled" in line and "0.3 s" in line, line


def test_a_valid_query_still_reads(shop: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.parquet"
    spec = _query_spec(shop, f"{SALES} WHERE qty > 0;")
    result = CliRunner().invoke(app, ["data", "build", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(out)["y"].sum() == pl.read_csv(shop / "sales.csv")["qty"].sum()


TARGETS = [
    ("table_with_statement", ["--to-table", 'forecasts"; DROP TABLE canary; --'],
     ["--to-table", "not a table name"]),
    ("table_three_parts", ["--to-table", "a.b.canary"], ["not a table name"]),
    ("table_control_character", ["--to-table", "fore\ncasts"], ["not a table name"]),
    ("run_id_with_statement", ["--run-id", "x'); DROP TABLE canary; --"],
     ["--run-id", "not a run id"]),
    ("run_id_with_newline", ["--run-id", "run\n1"], ["not a run id"]),
]


@pytest.mark.parametrize(("case", "options", "fragments"), TARGETS, ids=[t[0] for t in TARGETS])
def test_hostile_targets_write_nothing(shop: Path, tmp_path: Path, postgres_url: str,  # noqa: F811
                                       case: str, options: list[str],
                                       fragments: list[str]) -> None:
    before = _state(postgres_url)
    out = tmp_path / "run"
    line = _refused(CliRunner().invoke(app, [
        "backtest", "--spec", str(shop / "spec.yaml"), "--models", "naive", "--windows", "1",
        "--out", str(out), "--to", f"env:{ENV}", *options]))
    assert all(fragment in line for fragment in fragments), line
    assert _state(postgres_url) == before
    assert not out.exists()


def test_plain_targets_write(shop: Path, tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    result = CliRunner().invoke(app, [
        "backtest", "--spec", str(shop / "spec.yaml"), "--models", "naive", "--windows", "1",
        "--to", f"env:{ENV}", "--to-table", "public.plan_forecasts", "--run-id", "weekly:2021.1"])
    assert result.exit_code == 0, result.output
    with psycopg.connect(postgres_url) as conn:
        runs = conn.execute("SELECT DISTINCT run_id FROM public.plan_forecasts").fetchall()
    assert runs == [("weekly:2021.1",)]


def test_the_readme_reader_role_reads_and_nothing_more(shop: Path, tmp_path: Path,
                                                       postgres_url: str,  # noqa: F811
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The SELECT-only role of docs/dataset-spec.md: enough to read a spec query, and
    pg_read_file is denied."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS salesfusion_reader")
        conn.execute("CREATE ROLE salesfusion_reader LOGIN PASSWORD 'reader-pw'")
        conn.execute("GRANT CONNECT ON DATABASE shop TO salesfusion_reader")
        conn.execute("GRANT USAGE ON SCHEMA public TO salesfusion_reader")
        conn.execute("GRANT SELECT ON public.shop_sales TO salesfusion_reader")
    server = postgres_url.split("@", 1)[1]
    monkeypatch.setenv(ENV, f"postgresql://salesfusion_reader:reader-pw@{server}")
    out = tmp_path / "p.parquet"
    result = CliRunner().invoke(app, ["data", "build", str(_query_spec(shop, SALES)),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists()
    spec = _query_spec(shop, "SELECT sku, country, sold_at, length(pg_read_file("
                             "'postgresql.auto.conf')) AS qty FROM shop_sales")
    line = _refused(CliRunner().invoke(app, ["data", "build", str(spec), "--out",
                                             str(tmp_path / "q.parquet")]))
    assert "insufficient_privilege (SQLSTATE 42501)" in line, line
