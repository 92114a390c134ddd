"""What planners take from ``salesfusion predict`` (issue 27, section 4): CSV and Excel files
holding the Parquet's numbers, an order quantity at a service level, the plan-versus-base
table of a what-if plan, and a Python API that takes and returns pandas."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.cli.forecast_output import sheet_names, write_table
from salesfusion.cli.output import RECORD
from salesfusion.data.panel import Panel
from salesfusion.errors import InputError
from salesfusion.models.registry import create_model
from tests.conftest import make_shop

runner = CliRunner()
KEYS = ["item_id", "market", "timestamp"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    """The shop's folder with two saved models: ``naive`` (quantiles 0.1 and 0.9) and a small
    ``lightgbm`` (no quantiles; reads the future-known search trend a plan can set)."""
    folder = tmp_path_factory.mktemp("planner")
    spec = make_shop(folder)
    (folder / "lgb.yaml").write_text("model: lightgbm\nparams: {max_rounds: 20, quantiles: []}\n")
    for args in (["--preset", "naive"], ["--config", str(folder / "lgb.yaml")]):
        name = "naive" if "naive" in args else "lightgbm"
        trained = runner.invoke(app, ["train", *args, "--spec", str(spec), "--out",
                                      str(folder / name)])
        assert trained.exit_code == 0, trained.output
    return folder


def _predict(shop: Path, model: str, out: Path, *extra: str):
    return runner.invoke(app, ["predict", "--model", str(shop / model), "--spec",
                               str(shop / "spec.yaml"), "--horizon", "3", "--out", str(out),
                               *extra])


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(KEYS).reset_index(drop=True)


def test_csv_and_excel_hold_the_parquets_numbers(shop, tmp_path):
    for name in ("f.parquet", "f.csv", "f.xlsx"):
        result = _predict(shop, "naive", tmp_path / name, "--service-level", "0.9")
        assert result.exit_code == 0, result.output
    parquet = _sorted(pd.read_parquet(tmp_path / "f.parquet"))
    numbers = ["y_pred", "q0.1", "q0.9", "order_quantity"]
    csv = _sorted(pd.read_csv(tmp_path / "f.csv", parse_dates=["timestamp"],
                              float_precision="round_trip"))
    assert list(csv.columns) == list(parquet.columns)
    assert np.array_equal(csv[numbers].to_numpy(), parquet[numbers].to_numpy())  # exactly
    assert (csv["timestamp"] == parquet["timestamp"]).all()
    assert (csv[["item_id", "market", "model"]] == parquet[["item_id", "market", "model"]]).all(
        axis=None)

    sheets = pd.read_excel(tmp_path / "f.xlsx", sheet_name=None)
    assert list(sheets) == ["DE", "GB", "totals"]  # one sheet per market, then the totals
    for market in ("DE", "GB"):
        sheet = _sorted(sheets[market])
        expected = parquet[parquet["market"] == market].reset_index(drop=True)
        assert list(sheet.columns) == list(parquet.columns)
        assert sheet["timestamp"].dtype.kind == "M"  # Excel dates, read back as dates
        assert (sheet["timestamp"] == expected["timestamp"]).all()
        assert (sheet["item_id"] == expected["item_id"]).all()
        np.testing.assert_allclose(sheet[numbers].to_numpy(float),
                                   expected[numbers].to_numpy(float), rtol=1e-14)
        assert (sheet["cold_start"] == expected["cold_start"]).all()
    totals = sheets["totals"].set_index("timestamp")
    by_time = parquet.groupby("timestamp")[["y_pred", "order_quantity"]].sum()
    np.testing.assert_allclose(totals[["y_pred", "order_quantity"]].to_numpy(float),
                               by_time.to_numpy(float), rtol=1e-12)
    assert totals["series"].tolist() == parquet.groupby("timestamp").size().tolist()
    record = json.loads((tmp_path / RECORD).read_text())["files"]
    assert set(record) == {"f.parquet", "f.csv", "f.xlsx"}


def test_excel_sheet_names_are_made_safe(tmp_path):
    markets = ["A/B:C", "x" * 40, "Totals", "A?B*C", "[EU]", "'Q'"]
    names = sheet_names(markets)
    assert all(len(n) <= 31 and not set(n) & set("[]:*?/\\") for n in names.values())
    assert len({n.lower() for n in names.values()} | {"totals"}) == len(markets) + 1
    assert names["A/B:C"] == "A_B_C" and names["A?B*C"] == "A_B_C~2"
    assert names["Totals"] == "Totals~2" and names["'Q'"] == "Q"
    frame = pl.DataFrame({"item_id": ["P1"] * len(markets), "market": markets,
                          "timestamp": [pd.Timestamp("2024-01-01")] * len(markets),
                          "y_pred": [float(i) for i in range(len(markets))]})
    write_table(frame, tmp_path / "m.xlsx", "xlsx", by_market=True)
    sheets = pd.read_excel(tmp_path / "m.xlsx", sheet_name=None)
    assert sorted(sheets) == sorted([*names.values(), "totals"])
    assert sheets[names["x" * 40]]["market"].item() == "x" * 40
    assert sheets["totals"]["y_pred"].item() == sum(range(len(markets)))


def test_order_quantity_is_the_quantile_at_the_service_level(shop, tmp_path):
    result = _predict(shop, "naive", tmp_path / "exact.parquet", "--service-level", "0.9")
    assert result.exit_code == 0, result.output
    assert "interpolated" not in result.output  # the model gives this level: no note
    exact = pl.read_parquet(tmp_path / "exact.parquet")
    assert exact["order_quantity"].equals(exact["q0.9"].alias("order_quantity"))
    assert {"y_pred", "q0.1", "q0.9"} <= set(exact.columns)  # beside the point forecast

    result = _predict(shop, "naive", tmp_path / "mid.parquet", "--service-level", "0.3")
    assert result.exit_code == 0, result.output
    assert "interpolated linearly between the model's 0.1 and 0.9 quantiles" in result.output
    mid = pl.read_parquet(tmp_path / "mid.parquet")
    expected = mid["q0.1"] + 0.25 * (mid["q0.9"] - mid["q0.1"])
    np.testing.assert_allclose(mid["order_quantity"].to_numpy(), expected.to_numpy(),
                               rtol=1e-12)


def _one_error_line(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.mark.parametrize(("model", "level", "fragments"), [
    ("naive", "0.95", ["model 'naive'", "0.95", "levels: 0.1, 0.9"]),
    ("naive", "0.05", ["0.05", "levels: 0.1, 0.9"]),
    ("lightgbm", "0.9", ["model 'lightgbm'", "none (a point forecast only)"]),
    ("naive", "0", ["--service-level 0", "strictly between 0 and 1"]),
    ("naive", "1", ["--service-level 1"]),
    ("naive", "-0.5", ["--service-level -0.5"]),
    ("naive", "1.5", ["--service-level 1.5"]),
    ("naive", "nan", ["--service-level nan"]),
    ("naive", "ninety", ["--service-level ninety"]),
])
def test_an_unservable_or_bad_service_level_is_one_error_line(shop, tmp_path, model, level,
                                                              fragments):
    out = tmp_path / "out"
    result = _predict(shop, model, out / "f.xlsx", "--service-level", level)
    _one_error_line(result, *fragments)
    assert not out.exists()  # nothing written, not even the folder


@pytest.mark.parametrize("name", ["f.txt", "f.xls", "forecasts", "f.csv.gz"])
def test_a_bad_suffix_is_one_error_line(shop, tmp_path, name):
    out = tmp_path / "out"
    result = _predict(shop, "naive", out / name)
    _one_error_line(result, ".parquet, .csv or .xlsx")
    assert not out.exists()


def test_plan_writes_the_base_versus_plan_table(shop, tmp_path):
    plan = tmp_path / "plan.csv"
    plan.write_text("timestamp,market,search_trend\n2021-08-02,GB,500\n2021-08-09,GB,500\n")
    assert _predict(shop, "lightgbm", tmp_path / "base.parquet").exit_code == 0
    result = _predict(shop, "lightgbm", tmp_path / "p.parquet", "--plan", str(plan))
    assert result.exit_code == 0, result.output
    assert "Plan vs base: 12 planned series" in result.output
    table = pl.read_parquet(tmp_path / "p_plan_vs_base.parquet")
    assert table.columns == ["item_id", "market", "base_units", "plan_units", "diff_units",
                             "diff_pct"]
    assert table["market"].unique().to_list() == ["GB"]  # a GB plan: GB's series only
    base = pl.read_parquet(tmp_path / "base.parquet")
    planned = pl.read_parquet(tmp_path / "p.parquet")

    def units(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(pl.col("market") == "GB").group_by("item_id", "market").agg(
            pl.col("y_pred").sum()).sort("item_id")

    np.testing.assert_allclose(table["base_units"], units(base)["y_pred"], rtol=1e-12)
    np.testing.assert_allclose(table["plan_units"], units(planned)["y_pred"], rtol=1e-12)
    np.testing.assert_allclose(table["diff_units"], table["plan_units"] - table["base_units"],
                               atol=1e-12)
    np.testing.assert_allclose(table["diff_pct"],
                               100 * (table["plan_units"] / table["base_units"] - 1), rtol=1e-9)
    assert table["diff_units"].abs().sum() > 0  # the plan moved the forecasts
    record = json.loads((tmp_path / RECORD).read_text())["files"]
    assert "p_plan_vs_base.parquet" in record  # listed like the forecasts

    result = _predict(shop, "lightgbm", tmp_path / "p.xlsx", "--plan", str(plan))
    assert result.exit_code == 0, result.output
    sheet = pd.read_excel(tmp_path / "p_plan_vs_base.xlsx", sheet_name=None)
    assert list(sheet) == ["plan_vs_base"]
    np.testing.assert_allclose(sheet["plan_vs_base"]["diff_units"], table["diff_units"],
                               rtol=1e-14)


def test_a_partitioned_output_holds_the_plan_table_in_its_folder(shop, tmp_path):
    plan = tmp_path / "plan.csv"
    plan.write_text("timestamp,market,search_trend\n2021-08-02,DE,10\n")
    out = tmp_path / "parts"
    result = _predict(shop, "lightgbm", out, "--plan", str(plan), "--out-format",
                      "partitioned")
    assert result.exit_code == 0, result.output
    table = pl.read_parquet(out / "plan_vs_base.parquet")
    assert table["market"].unique().to_list() == ["DE"] and table.height == 12
    assert "plan_vs_base.parquet" in json.loads((out / RECORD).read_text())["files"]
    forecasts = pl.read_parquet(out / "forecasts" / "**" / "*.parquet")
    np.testing.assert_allclose(table["plan_units"].sum(), forecasts.filter(
        pl.col("market") == "DE")["y_pred"].sum(), rtol=1e-12)


def test_a_side_table_in_the_way_keeps_the_forecasts_unwritten(shop, tmp_path):
    plan = tmp_path / "plan.csv"
    plan.write_text("timestamp,market,search_trend\n2021-08-02,GB,500\n")
    (tmp_path / "p_plan_vs_base.csv").write_text("the planner's own file")
    result = _predict(shop, "lightgbm", tmp_path / "p.csv", "--plan", str(plan))
    _one_error_line(result, "p_plan_vs_base.csv", "salesfusion did not write")
    assert not (tmp_path / "p.csv").exists()
    assert (tmp_path / "p_plan_vs_base.csv").read_text() == "the planner's own file"


@pytest.fixture(scope="module")
def panels(tmp_path_factory) -> tuple[Panel, Panel]:
    """The same panel built from polars and from pandas frames."""
    from tests.conftest import _build

    built = _build(make_shop(tmp_path_factory.mktemp("pandas"), covariates=False))
    data = built.data.select("item_id", "market", "timestamp", "y")
    items = built.items
    shuffled = data.to_pandas().sample(frac=1.0, random_state=0)  # sorted by Panel
    return (Panel(data=data, freq="W", items=items),
            Panel(data=shuffled, freq="W", items=items.to_pandas()))


def test_pandas_in_gives_the_same_forecasts_as_polars_in(panels):
    polars_panel, pandas_panel = panels
    assert isinstance(pandas_panel.data, pl.DataFrame) and isinstance(pandas_panel.items,
                                                                      pl.DataFrame)
    assert_frame_equal(pandas_panel.data, polars_panel.data)
    for name, params in (("naive", {}), ("lightgbm", {"max_rounds": 10})):
        expected = create_model(name, **params).fit(polars_panel).predict(3)
        model = create_model(name, **params).fit(pandas_panel)
        assert isinstance(model.predict(3), pl.DataFrame)  # no pandas given, none asked for
        series = polars_panel.data.select("item_id", "market").unique().to_pandas()
        forecast = model.predict(3, series=series)
        assert isinstance(forecast, pd.DataFrame)
        assert_frame_equal(pl.from_pandas(forecast).with_columns(
            pl.col("timestamp").cast(pl.Datetime("us"))), expected)
        asked = model.predict(3, as_pandas=True)
        assert isinstance(asked, pd.DataFrame)
        pd.testing.assert_frame_equal(asked, expected.to_pandas())


def test_with_plan_takes_a_pandas_plan(module_shop_panel):
    plan = pl.DataFrame({"timestamp": [module_shop_panel.periods.max()], "market": ["GB"],
                         "search_trend": [500.0]})
    future = pl.col("timestamp") > module_shop_panel.periods.max()
    from_polars = module_shop_panel.with_plan(plan)
    from_pandas = module_shop_panel.with_plan(plan.to_pandas())
    for a, b in zip(from_polars.covariate_tables, from_pandas.covariate_tables, strict=True):
        assert_frame_equal(a.frame.filter(~future), b.frame.filter(~future))


def test_a_bare_or_broken_pandas_table_is_one_clear_error(panels):
    polars_panel, _ = panels
    with pytest.raises(InputError, match=r"takes a Panel, not a bare table: Panel\(data="):
        create_model("naive").fit(polars_panel.data.to_pandas())
    with pytest.raises(InputError, match=r"column\(s\) \['y'\] missing"):
        Panel(data=polars_panel.data.drop("y").to_pandas(), freq="W")
    bad = polars_panel.data.to_pandas().assign(timestamp="2021-01-04")
    with pytest.raises(InputError, match="'timestamp' must hold dates"):
        Panel(data=bad, freq="W")
    sunday = polars_panel.data.to_pandas().assign(
        timestamp=lambda f: f["timestamp"] - pd.Timedelta(days=1))
    with pytest.raises(InputError, match="period starts at frequency W"):
        Panel(data=sunday, freq="W")
    gap = polars_panel.data.to_pandas().drop(index=5)  # a week in the middle of P000's
    with pytest.raises(InputError, match="1 series skip periods"):
        Panel(data=gap, freq="W")
    twice = pd.concat([polars_panel.data.to_pandas()] * 2)
    with pytest.raises(InputError, match="appears twice"):
        Panel(data=twice, freq="W")
    with pytest.raises(InputError, match="series: expected a polars or pandas DataFrame"):
        create_model("naive").fit(polars_panel).predict(2, series=[("P000", "GB")])
