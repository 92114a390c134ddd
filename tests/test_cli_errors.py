"""Every bad input ends with exit code 2, one line naming the file/column/value, no output."""

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from salesfusion.cli import app
from tests.conftest import edit_spec, make_shop

runner = CliRunner()



def _break_csv(path: Path, row: int, column: str, value: str) -> None:
    frame = pl.read_csv(path, infer_schema=False)
    frame = frame.with_columns(pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value))
                               .otherwise(pl.col(column)).alias(column))
    frame.write_csv(path)


def _missing_file(spec: Path) -> tuple[str, ...]:
    (spec.parent / "sales.csv").unlink()
    return ("sales.csv", "not found")


def _missing_column(spec: Path) -> tuple[str, ...]:
    edit_spec(spec, **{"sales.columns.quantity": "units_sold"})
    return ("sales.csv", "'units_sold'", "role quantity", "not found")


def _non_numeric_quantity(spec: Path) -> tuple[str, ...]:
    _break_csv(spec.parent / "sales.csv", 6, "qty", "seven")
    return ("sales.csv", "'qty'", "not numeric", "row 7", "'seven'")


def _unparsable_date(spec: Path) -> tuple[str, ...]:
    _break_csv(spec.parent / "sales.csv", 3, "when", "31/02/2021")
    return ("sales.csv", "'when'", "unparsable dates", "row 4", "'31/02/2021'")


def _unknown_frequency(spec: Path) -> tuple[str, ...]:
    edit_spec(spec, freq="Q")
    return ("spec.yaml", "unknown frequency", "'Q'")


def _empty_table(spec: Path) -> tuple[str, ...]:
    path = spec.parent / "sales.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    return ("sales.csv", "empty")


def _duplicated_keys(spec: Path) -> tuple[str, ...]:
    items = pl.read_csv(spec.parent / "items.csv")
    pl.concat([items, items.head(1)]).write_csv(spec.parent / "items.csv")
    return ("items.csv", "duplicated key", "'sku'", "P000")


def _invalid_yaml_field(spec: Path) -> tuple[str, ...]:
    edit_spec(spec, **{"cleaning.returns": "sometimes"})
    return ("spec.yaml", "cleaning.returns")


CASES = [_missing_file, _missing_column, _non_numeric_quantity, _unparsable_date,
         _unknown_frequency, _empty_table, _duplicated_keys, _invalid_yaml_field]


@pytest.mark.parametrize("breaker", CASES, ids=[c.__name__.strip("_") for c in CASES])
@pytest.mark.parametrize("command", ["backtest", "build", "validate"])
def test_bad_input_is_one_clear_line_and_writes_nothing(tmp_path, breaker, command):
    spec = make_shop(tmp_path)
    expected = breaker(spec)
    out = tmp_path / "out"
    args = {
        "backtest": ["backtest", "--spec", str(spec), "--models", "naive", "--out", str(out)],
        "build": ["data", "build", str(spec), "--out", str(out / "panel.parquet")],
        "validate": ["data", "validate", str(spec)],
    }[command]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    for fragment in expected:
        assert fragment in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def _one_error_line(result) -> str:
    """Exit code 2 and one error line, the last thing printed (progress may precede it)."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == lines[-1:], result.stderr
    assert "Traceback" not in result.output
    return errors[0]


def test_unknown_model_and_frequency_options(tmp_path):
    spec = make_shop(tmp_path)
    out = tmp_path / "out"
    result = runner.invoke(app, ["backtest", "--spec", str(spec), "--models", "naive,prophet",
                                 "--out", str(out)])
    assert "unknown model 'prophet'" in _one_error_line(result)
    result = runner.invoke(app, ["data", "build", str(spec), "--freq", "fortnight",
                                 "--out", str(out / "p.parquet")])
    assert "unknown frequency 'fortnight'" in _one_error_line(result)
    assert not out.exists()


def test_panel_too_short_for_protocol_writes_nothing(tmp_path):
    spec = make_shop(tmp_path, weeks=6)
    out = tmp_path / "out"
    result = runner.invoke(app, ["backtest", "--spec", str(spec), "--models", "naive",
                                 "--horizon", "4", "--windows", "3", "--out", str(out)])
    assert "too few" in _one_error_line(result)
    assert not out.exists()


def test_output_never_deletes_a_users_folder(shop_spec, tmp_path):
    """`data build --out d/panel.parquet` where d/panel.parquet/ is a user's partitioned
    dataset: refused with one line, the user's files untouched, no staging left behind."""
    users = tmp_path / "d" / "panel.parquet"
    users.mkdir(parents=True)
    (users / "part-0.parquet").write_bytes(b"user data")
    result = runner.invoke(app, ["data", "build", str(shop_spec), "--out", str(users)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "is left alone" in lines[-1]
    assert (users / "part-0.parquet").read_bytes() == b"user data"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["panel.parquet"]
