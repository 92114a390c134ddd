"""The data contract: one id rule for every table, launch dates, and the model's frequency."""

import json
import math
from datetime import timedelta
from pathlib import Path

import polars as pl
import yaml
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.data.panel import build_panel
from salesfusion.data.spec import load_spec
from salesfusion.data.validate import load_tables
from salesfusion.models.registry import create_model
from tests.conftest import make_shop

runner = CliRunner()


def _lower_case_shop(folder: Path) -> Path:
    """The shop with lower-case (and padded) SKUs in its sales, items and events tables."""
    spec = make_shop(folder)
    for name in ("sales.csv", "items.csv", "events.csv"):
        frame = pl.read_csv(folder / name, infer_schema=False)
        frame.with_columns(pl.col("sku").str.to_lowercase() + " ").write_csv(folder / name)
    return spec


def test_lower_case_skus_keep_their_content(tmp_path):
    spec = _lower_case_shop(tmp_path)
    panel = build_panel(load_tables(load_spec(spec)))
    sold = panel.data.select("item_id").unique()
    titled = sold.join(panel.items.select("item_id", "title"), on="item_id", how="left")
    assert sold.height == 12 and titled["title"].null_count() == 0
    assert panel.events["item_id"].is_in(sold["item_id"].implode()).any()

    out = tmp_path / "bt"
    result = runner.invoke(app, ["backtest", "--spec", str(spec), "--models", "knn_analogue",
                                 "--horizon", "2", "--windows", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = pl.read_csv(out / "metrics.csv", schema_overrides={"window": pl.Utf8})
    wape = metrics.filter((pl.col("metric") == "WAPE") & (pl.col("window") == "all")
                          & (pl.col("segment") == "all"))["value"]
    assert wape.len() == 1 and math.isfinite(wape[0])
    # the summary compares normalised ids: only the never-sold item is reported
    assert "Cross-table check: 0 error(s), 1 warning(s)" in result.stderr
    assert "no sales (first: P012)" in result.stderr


def test_no_demand_before_launch_and_cold_start_flag(tmp_path):
    spec = make_shop(tmp_path)
    last = build_panel(load_tables(load_spec(spec))).periods.max()
    launch = last + timedelta(weeks=3, days=2)  # a Wednesday in the third forecast week
    items = pl.read_csv(tmp_path / "items.csv")
    launches = [None] * (items.height - 1) + [launch.strftime("%Y-%m-%d")]  # P012: never sold
    items.with_columns(pl.Series("launched", launches, dtype=pl.Utf8)).write_csv(
        tmp_path / "items.csv")
    raw = yaml.safe_load(spec.read_text())
    raw["items"]["columns"]["launch_date"] = "launched"
    spec.write_text(yaml.safe_dump(raw))

    panel = build_panel(load_tables(load_spec(spec)))
    model = create_model("knn_analogue", k=3).fit(panel)
    series = pl.concat([panel.data.select("item_id", "market").unique(),
                        pl.DataFrame({"item_id": ["P012"], "market": ["GB"]})])
    forecast = model.predict(4, history=panel, series=series)
    new = forecast.filter(pl.col("item_id") == "P012").sort("timestamp")
    assert new["before_launch"].to_list() == [True, True, False, False]
    assert new["y_pred"].to_list()[:2] == [0.0, 0.0] and (new["y_pred"][2:] > 0).all()
    assert new["cold_start"].all()
    sold = forecast.filter(pl.col("item_id") != "P012")
    assert not sold["cold_start"].any() and not sold["before_launch"].any()
    assert sold.height == 4 * panel.n_series


def test_predict_refuses_another_frequency(shop_spec, tmp_path):
    model = tmp_path / "model"
    trained = runner.invoke(app, ["train", "--preset", "naive", "--spec", str(shop_spec),
                                  "--out", str(model)])
    assert trained.exit_code == 0, trained.output
    out = tmp_path / "fc" / "daily.parquet"
    result = runner.invoke(app, ["predict", "--model", str(model), "--spec", str(shop_spec),
                                 "--freq", "D", "--out", str(out)])
    assert result.exit_code == 2
    assert "trained at frequency 'W'" in result.stderr and "--freq 'D'" in result.stderr
    assert not out.parent.exists()
    weekly = runner.invoke(app, ["predict", "--model", str(model), "--spec", str(shop_spec),
                                 "--out", str(out)])
    assert weekly.exit_code == 0, weekly.output
    written = pl.read_parquet(out)
    assert {"cold_start", "before_launch"} <= set(written.columns)
    assert (written["timestamp"].diff().drop_nulls().dt.total_days() % 7 == 0).all()


def test_train_takes_horizon(shop_spec, tmp_path):
    config = tmp_path / "lgb.yaml"
    config.write_text("model: lightgbm\nparams: {max_rounds: 20}\n")
    model = tmp_path / "model"
    trained = runner.invoke(app, ["train", "--config", str(config), "--spec", str(shop_spec),
                                  "--horizon", "2", "--out", str(model)])
    assert trained.exit_code == 0, trained.output
    assert json.loads((model / "manifest.json").read_text())["params"]["horizon"] == 2
    out = tmp_path / "fc" / "f.parquet"
    too_far = runner.invoke(app, ["predict", "--model", str(model), "--spec", str(shop_spec),
                                  "--horizon", "3", "--out", str(out)])
    assert too_far.exit_code == 2 and "horizons up to 2" in too_far.stderr
    assert not out.parent.exists()

    config.write_text("model: lightgbm\nparams: {max_rounds: 20, horizon: 3}\n")
    clash = runner.invoke(app, ["train", "--config", str(config), "--spec", str(shop_spec),
                                "--horizon", "2", "--out", str(tmp_path / "other")])
    assert clash.exit_code == 2 and "--horizon 2 contradicts 'horizon: 3'" in clash.stderr
    assert not (tmp_path / "other").exists()
