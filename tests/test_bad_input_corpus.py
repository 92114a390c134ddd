"""The bad-input corpus, part 3: command-line options (through the installed entry point),
DuckDB tables and spec files. Parts 1-2 are tests/test_bad_data_inputs.py (CSV, Parquet, dates,
files), tests/test_cli_errors.py, tests/test_artefact_integrity.py (model folders) and
tests/test_image_limits.py (images). Every case: exit 2, one ``error:`` line naming the cause,
no traceback, nothing written; the valid controls succeed."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from salesfusion.cli import app
from tests.conftest import make_shop


def _main(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "salesfusion.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _only_error(stderr: str, output: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in output and "╭" not in output, output
    return errors[0]


# (case, arguments with {spec} and {out}, fragments of the message)
OPTIONS = [
    ("horizon_zero", ["backtest", "--spec", "{spec}", "--models", "naive", "--horizon", "0",
                      "--out", "{out}"], ["'--horizon'", "greater than or equal to 1"]),
    ("horizon_not_a_number", ["backtest", "--spec", "{spec}", "--models", "naive", "--horizon",
                              "four", "--out", "{out}"], ["'--horizon'", "valid integer"]),
    ("missing_out", ["backtest", "--spec", "{spec}", "--models", "naive"],
     ["Missing option '--out'"]),
    ("unknown_command", ["forecast", "--spec", "{spec}"], ["No such command 'forecast'"]),
    ("unknown_option", ["backtest", "--spec", "{spec}", "--models", "naive", "--windwos", "2",
                        "--out", "{out}"], ["No such option", "--windwos"]),
    ("bad_cutoff_date", ["backtest", "--spec", "{spec}", "--protocol", "launch", "--models",
                         "median_launch_curve", "--cutoff", "2021-13-01", "--out", "{out}"],
     ["'--cutoff'", "2021-13-01"]),
    ("unknown_protocol", ["backtest", "--spec", "{spec}", "--protocol", "weekly", "--models",
                          "naive", "--out", "{out}"], ["unknown protocol 'weekly'"]),
    ("empty_models", ["backtest", "--spec", "{spec}", "--models", " , ", "--out", "{out}"],
     ["--models names no model"]),
    ("launch_scope_unknown", ["backtest", "--spec", "{spec}", "--protocol", "launch",
                              "--launch-scope", "shelf", "--models", "median_launch_curve",
                              "--out", "{out}"], ["scope"]),
    ("model_folder_missing", ["predict", "--model", "{out}/nothing", "--spec", "{spec}",
                              "--out", "{out}/f.parquet"], ["nothing", "manifest"]),
    ("unknown_preset", ["train", "--spec", "{spec}", "--preset", "gpt5", "--out", "{out}"],
     ["unknown model 'gpt5'"]),
    ("config_not_yaml", ["train", "--spec", "{spec}", "--config", "{spec_dir}/sales.csv",
                         "--out", "{out}"], ["sales.csv"]),
]


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    return make_shop(tmp_path_factory.mktemp("corpus"), covariates=False)


@pytest.mark.parametrize(("case", "args", "fragments"), OPTIONS, ids=[c[0] for c in OPTIONS])
def test_bad_options_are_one_error_line(shop, tmp_path, case, args, fragments):
    out = tmp_path / "out"
    filled = [a.format(spec=shop, out=out, spec_dir=shop.parent) for a in args]
    done = _main(*filled, cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    message = _only_error(done.stderr, done.stdout + done.stderr)
    for fragment in fragments:
        assert fragment in message, message
    assert not out.exists()


def test_valid_control_through_the_entry_point(shop, tmp_path):
    done = _main("data", "build", str(shop), "--out", str(tmp_path / "p.parquet"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert pl.read_parquet(tmp_path / "p.parquet").height > 0


def _duckdb_spec(spec: Path, *, make_table: bool = True, file_bytes: bytes | None = None,
                 drop_column: str | None = None) -> None:
    database = spec.parent / "shop.duckdb"
    if file_bytes is not None:
        database.write_bytes(file_bytes)
    else:
        sales = pl.read_csv(spec.parent / "sales.csv")
        if drop_column:
            sales = sales.drop(drop_column)
        with duckdb.connect(str(database)) as con:
            if make_table:
                con.register("frame", sales.to_arrow())
                con.execute("CREATE TABLE sales AS SELECT * FROM frame")
    data = yaml.safe_load(spec.read_text())
    data["sales"]["path"], data["sales"]["table"] = "shop.duckdb", "sales"
    spec.write_text(yaml.safe_dump(data))


DUCKDB: list[tuple[str, Callable[[Path], None], list[str]]] = [
    ("duckdb_missing_table", lambda s: _duckdb_spec(s, make_table=False),
     ["shop.duckdb", "sales"]),
    ("duckdb_not_a_database", lambda s: _duckdb_spec(s, file_bytes=b"not a database at all"),
     ["shop.duckdb", "cannot read as duckdb"]),
    ("duckdb_missing_column", lambda s: _duckdb_spec(s, drop_column="qty"),
     ["shop.duckdb", "'qty'", "role quantity"]),
]


@pytest.mark.parametrize(("case", "breaker", "fragments"), DUCKDB, ids=[c[0] for c in DUCKDB])
def test_bad_duckdb_tables(tmp_path, case, breaker, fragments):
    spec = make_shop(tmp_path, covariates=False)
    breaker(spec)
    out = tmp_path / "out" / "panel.parquet"
    result = CliRunner().invoke(app, ["data", "build", str(spec), "--out", str(out)])
    assert result.exit_code == 2, result.output
    message = _only_error(result.stderr, result.output)
    for fragment in fragments:
        assert fragment in message, message
    assert not out.parent.exists()


def test_duckdb_valid_control(tmp_path):
    spec = make_shop(tmp_path, covariates=False)
    _duckdb_spec(spec)
    out = tmp_path / "panel.parquet"
    result = CliRunner().invoke(app, ["data", "build", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(out).height > 0


SPECS: list[tuple[str, Callable[[Path], None], list[str]]] = [
    ("spec_not_a_mapping", lambda s: s.write_text("- just\n- a list\n"),
     ["spec.yaml", "mapping"]),
    ("spec_bad_yaml", lambda s: s.write_text("sales: {path: [unclosed\n"), ["spec.yaml"]),
    ("spec_unknown_key", lambda s: s.write_text(s.read_text() + "colour: blue\n"),
     ["spec.yaml", "colour"]),
    ("spec_missing_sales", lambda s: s.write_text(yaml.safe_dump(
        {k: v for k, v in yaml.safe_load(s.read_text()).items() if k != "sales"})),
     ["spec.yaml", "sales"]),
    ("spec_unknown_extension", lambda s: s.write_text(s.read_text().replace(
        "path: sales.csv", "path: sales.xlsx")), ["sales.xlsx", "format"]),
]


@pytest.mark.parametrize(("case", "breaker", "fragments"), SPECS, ids=[c[0] for c in SPECS])
def test_bad_spec_files(tmp_path, case, breaker, fragments):
    spec = make_shop(tmp_path, covariates=False)
    breaker(spec)
    result = CliRunner().invoke(app, ["data", "validate", str(spec)])
    assert result.exit_code == 2, result.output
    message = _only_error(result.stderr, result.output)
    for fragment in fragments:
        assert fragment in message, message
