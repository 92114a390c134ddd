"""Covariates a planner has: per-item planned prices and promotions read by LightGBM and the
neural models, attribute-keyed exogenous series, series ends, single-market shops, and
``predict --plan``."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.data.panel import build_panel
from salesfusion.data.plans import load_plan
from salesfusion.data.spec import load_spec
from salesfusion.data.validate import load_tables
from salesfusion.datasets.synthetic import synthetic
from salesfusion.errors import InputError
from salesfusion.features.covariates import covariate_cube, fit_exogenous_scale
from salesfusion.features.lags import to_wide
from salesfusion.models.base import Forecaster
from salesfusion.models.registry import create_model
from tests.conftest import make_shop

KEY = ["item_id", "market", "timestamp"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("covariate_shop")
    dataset = synthetic(folder, covariates=True, n_items=40, n_weeks=60, image_size=16)
    panel = build_panel(dataset.tables)
    return panel.until(panel.periods[-5])


def _changed(before: pl.DataFrame, after: pl.DataFrame) -> pl.DataFrame:
    return (before.join(after, on=KEY, suffix="_after")
            .filter((pl.col("y_pred_after") - pl.col("y_pred")).abs() > 1e-9))


def _plan_for_one_period(model: Forecaster, history, price_factor: float,
                         promo: float) -> tuple[pl.DataFrame, pl.DataFrame, tuple]:
    """The forecast, and the forecast under a plan that changes one series' price and promo
    in its third forecast period only."""
    base = model.predict(4, history)
    sold = history.data.group_by("item_id", "market").agg(pl.col("y").sum()).sort(
        "y", descending=True).row(0)
    item, market = sold[0], sold[1]
    periods = base.filter((pl.col("item_id") == item) & (pl.col("market") == market))
    when = periods["timestamp"][2]
    price = history.data.filter((pl.col("item_id") == item) & (pl.col("market") == market))[
        "price"].drop_nulls()[-1]
    plan = pl.DataFrame({"item_id": [item], "market": [market], "timestamp": [when],
                         "price": [price * price_factor], "promo": [promo]})
    return base, model.predict(4, history.with_plan(plan)), (item, market, when)


def test_sales_price_and_promo_of_a_period_grain_table_are_future_known(shop):
    assert {"price", "price_local", "promo"} <= set(shop.future_known)
    assert shop.past_only == ["trend_by_category"]
    # Kept whole: the planned prices of the periods after the origin are still there.
    sales = next(t for t in shop.covariate_tables if t.source == "sales")
    assert sales.frame["timestamp"].max() > shop.data["timestamp"].max()


def test_a_planned_price_moves_lightgbm_for_that_item_and_period_only(shop):
    model = create_model("lightgbm", horizon=4, max_rounds=120).fit(shop)
    base, planned, (item, market, when) = _plan_for_one_period(model, shop, 0.5, 1.0)
    changed = _changed(base, planned)
    assert changed.select(KEY).rows() == [(item, market, when)]
    assert changed["y_pred_after"][0] > changed["y_pred"][0]  # half price and a promotion
    ablated = create_model("lightgbm", horizon=4, max_rounds=120, covariates=False).fit(shop)
    base, planned, _ = _plan_for_one_period(ablated, shop, 0.5, 1.0)
    assert _changed(base, planned).height == 0


def test_a_planned_price_moves_a_neural_forecast_for_that_item_and_period_only(shop):
    model = create_model("lstm", horizon=4, epochs=2, lookback=8, hidden=16,
                         batch_size=64).fit(shop)
    base, planned, target = _plan_for_one_period(model, shop, 0.5, 1.0)
    assert _changed(base, planned).select(KEY).rows() == [target]


def test_a_saved_model_forecasts_the_same_under_the_same_plan(shop, tmp_path):
    model = create_model("lightgbm", horizon=4, max_rounds=60).fit(shop)
    loaded = Forecaster.load(model.save(tmp_path / "model"))
    item, market, when = shop.data["item_id"][0], shop.data["market"][0], shop.periods[-1]
    plan = pl.DataFrame({"item_id": [item], "market": [market],
                         "timestamp": [when + np.timedelta64(7, "D")], "price": [99.0]})
    assert loaded.predict(4).equals(model.predict(4))  # history and covariates travel along
    assert loaded.predict(4, shop.with_plan(plan)).equals(model.predict(4, shop.with_plan(plan)))


def test_an_attribute_keyed_series_reaches_only_items_with_that_attribute(shop):
    wide = to_wide(shop)
    periods = np.asarray(wide.periods)
    scale = fit_exogenous_scale(shop)
    cube = covariate_cube(shop, wide.keys, periods, scale)
    channel = cube.names.index("trend_by_category")
    index, table = next((i, t) for i, t in enumerate(shop.covariate_tables)
                        if t.attribute == "category")
    shop.covariate_tables[index] = table.with_frame(table.frame.with_columns(
        pl.when(pl.col("category") == "mug").then(pl.col("trend_by_category") + 30)
        .otherwise(pl.col("trend_by_category")).alias("trend_by_category")))
    try:
        moved = covariate_cube(shop, wide.keys, periods, scale)
    finally:
        shop.covariate_tables[index] = table
    categories = wide.keys.join(shop.items.select("item_id", "category"), on="item_id",
                                how="left")["category"].to_numpy()
    difference = moved.values[..., channel] - cube.values[..., channel]
    mugs = categories == "mug"
    assert mugs.any() and (~mugs).any()
    np.testing.assert_allclose(difference[mugs], 30 / scale["trend_by_category"][1], rtol=1e-4)
    assert not difference[~mugs].any()
    others = np.delete(moved.values - cube.values, channel, axis=-1)
    assert not others.any()


def _edit_spec(path, edit) -> None:
    spec = yaml.safe_load(path.read_text())
    edit(spec)
    path.write_text(yaml.safe_dump(spec))


def test_a_delisted_item_is_not_zero_filled_and_forecast_as_zero_after_its_end(tmp_path):
    spec_path = make_shop(tmp_path, covariates=False)
    sales = pl.read_csv(tmp_path / "sales.csv")
    start = np.datetime64("2021-01-04")
    # P001 stops selling after week 9 and is delisted in week 11; P002 ends 2 weeks after the
    # data, so a 4-week forecast has 2 periods after its end.
    sales.filter(~((pl.col("sku") == "P001") & (pl.col("when") >= str(
        start + np.timedelta64(70, "D"))))).write_csv(tmp_path / "sales.csv")
    items = pl.read_csv(tmp_path / "items.csv").with_columns(
        pl.when(pl.col("sku") == "P001").then(pl.lit(str(start + np.timedelta64(77, "D"))))
        .when(pl.col("sku") == "P002").then(pl.lit(str(start + np.timedelta64(31 * 7, "D"))))
        .otherwise(None).alias("delisted"))
    items.write_csv(tmp_path / "items.csv")
    _edit_spec(spec_path, lambda s: s["items"]["columns"].update(end_date="delisted"))
    panel = build_panel(load_tables(load_spec(spec_path)))
    p001 = panel.data.filter(pl.col("item_id") == "P001")
    assert p001["timestamp"].max() == np.datetime64("2021-03-22", "us").item()  # week 11
    assert panel.data.filter(pl.col("item_id") == "P003")["timestamp"].max() \
        == panel.data["timestamp"].max()  # no end: runs to the panel's end
    forecast = create_model("naive").fit(panel).predict(4)
    p002 = forecast.filter(pl.col("item_id") == "P002")
    assert p002["after_end"].to_list() == [False, False, True, True] * 2
    assert (p002.filter(pl.col("after_end"))["y_pred"] == 0).all()
    assert p002.filter(~pl.col("after_end"))["y_pred"].sum() > 0


def test_a_single_market_shop_needs_no_market_column(tmp_path):
    spec_path = make_shop(tmp_path, covariates=False)
    pl.read_csv(tmp_path / "sales.csv").filter(pl.col("country") == "GB").drop(
        "country").write_csv(tmp_path / "sales.csv")

    def edit(spec: dict) -> None:
        del spec["sales"]["columns"]["market"], spec["markets"], spec["fx"]
        spec["single_market"] = "UK"
    _edit_spec(spec_path, edit)
    panel = build_panel(load_tables(load_spec(spec_path)))
    assert panel.data["market"].unique().to_list() == ["UK"]
    assert create_model("naive").fit(panel).predict(2).height == 2 * panel.n_series


def test_plan_files_are_checked(shop, tmp_path):
    future = shop.covariate_tables[0].frame["timestamp"].max()
    item = shop.data["item_id"][0]
    good = pl.DataFrame({"item_id": [item.lower()], "market": [shop.data["market"][0]],
                         "timestamp": [f"{future:%Y-%m-%d}"], "price": [1.0]})
    good.write_csv(tmp_path / "plan.csv")
    plan = load_plan(tmp_path / "plan.csv", shop)
    assert plan["item_id"].to_list() == [item]  # normalised like the spec's ids
    shop.with_plan(plan)
    cases = {
        "unknown.csv": (good.with_columns(pl.lit("NOPE").alias("item_id")),
                        "names 1 row(s) of (item_id, market) the data has no series for"),
        "trend.csv": (good.with_columns(pl.lit(1.0).alias("trend_by_category")),
                      "['trend_by_category'] are not future-known covariates"),
        "text.csv": (good.with_columns(pl.lit("cheap").alias("price")),
                     "column 'price' is not numeric"),
        "twice.csv": (pl.concat([good, good]), "sets the same (item_id, market, timestamp)"),
    }
    for name, (frame, message) in cases.items():
        frame.write_csv(tmp_path / name)
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")
                           .replace("[", r"\[").replace("]", r"\]")):
            shop.with_plan(load_plan(tmp_path / name, shop))
    with pytest.raises(InputError, match="keyed by"):
        shop.with_plan(pl.DataFrame({"timestamp": [future], "price": [1.0]}))


def test_predict_with_a_plan_from_the_command_line(tmp_path):
    dataset = synthetic(tmp_path / "shop", covariates=True, n_items=30, n_weeks=50,
                        image_size=16)
    spec_path = tmp_path / "shop" / "spec.yaml"
    panel = build_panel(dataset.tables)
    create_model("lightgbm", horizon=3, max_rounds=80).fit(panel).save(tmp_path / "model")
    item, market = panel.data.group_by("item_id", "market").agg(pl.col("y").sum()).sort(
        "y", descending=True).row(0)[:2]
    when = panel.data["timestamp"].max() + np.timedelta64(14, "D")
    pl.DataFrame({"item_id": [item], "market": [market], "timestamp": [f"{when:%Y-%m-%d}"],
                  "promo": [1.0]}).write_csv(tmp_path / "plan.csv")
    runner = CliRunner()
    common = ["predict", "--model", str(tmp_path / "model"), "--spec", str(spec_path),
              "--horizon", "3"]
    plain = runner.invoke(app, [*common, "--out", str(tmp_path / "plain.parquet")])
    planned = runner.invoke(app, [*common, "--out", str(tmp_path / "planned.parquet"),
                                  "--plan", str(tmp_path / "plan.csv")])
    assert plain.exit_code == 0 and planned.exit_code == 0, planned.output
    changed = _changed(pl.read_parquet(tmp_path / "plain.parquet"),
                       pl.read_parquet(tmp_path / "planned.parquet"))
    assert changed.select(KEY).rows() == [(item, market, when)]
    assert changed["y_pred_after"][0] > changed["y_pred"][0]  # a promotion sells more
    bad = runner.invoke(app, [*common, "--out", str(tmp_path / "bad.parquet"), "--plan",
                              str(tmp_path / "missing.csv")])
    assert bad.exit_code == 2 and "missing.csv: file not found" in bad.output
    assert not (tmp_path / "bad.parquet").exists()


def test_an_item_keyed_exogenous_plan_reaches_that_series_only(tmp_path):
    spec_path = make_shop(tmp_path, covariates=False)
    weeks = np.datetime64("2021-01-04") + np.arange(34) * np.timedelta64(7, "D")
    pl.DataFrame({"sku": "p004", "country": "GB", "week": weeks.astype(str),
                  "discount": np.where(np.arange(34) % 5 == 0, 0.2, 0.0)}).write_csv(
        tmp_path / "discounts.csv")
    _edit_spec(spec_path, lambda s: s.update(exogenous=[{
        "path": "discounts.csv", "future_known": ["discount"],
        "columns": {"timestamp": "week", "item_id": "sku", "market": "country"}}]))
    panel = build_panel(load_tables(load_spec(spec_path)))
    assert "discount" in panel.future_known
    wide = to_wide(panel)
    periods = np.concatenate([np.asarray(wide.periods), weeks[-4:].astype("datetime64[us]")])
    cube = covariate_cube(panel, wide.keys, periods, fit_exogenous_scale(panel))
    discount = cube.values[..., cube.names.index("discount")]
    row = wide.keys.with_row_index().filter((pl.col("item_id") == "P004")
                                            & (pl.col("market") == "GB"))["index"].item()
    assert np.ptp(discount[row]) > 0  # ids normalised: the lower-case sku joins
    assert not np.delete(discount, row, axis=0).any()  # no other series has a value
