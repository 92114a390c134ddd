"""Launch-anchored forecasts, the launch (cold-start) backtest and the launch-curve references."""

from datetime import date, datetime, timedelta
from statistics import median
from typing import ClassVar

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.data.launch_splits import LaunchProtocol
from salesfusion.data.panel import Panel
from salesfusion.datasets.synthetic import synthetic
from salesfusion.errors import InputError
from salesfusion.evaluation.launch import run_launch_backtest
from salesfusion.evaluation.runner import backtest_models
from salesfusion.models.base import Forecaster
from salesfusion.models.baselines.launch_curves import MedianLaunchCurve
from salesfusion.models.registry import create_model
from tests.conftest import make_shop

LAUNCH_MODELS = ["median_launch_curve", "category_launch_curve", "knn_analogue",
                 "lightgbm_launch"]
START = datetime(2024, 1, 1)  # a Monday


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return synthetic(tmp_path_factory.mktemp("launch"), n_items=40, n_weeks=30, seed=7)


def _panel(series: dict[tuple[str, str], tuple[int, list[float]]],
           categories: dict[str, str | None] | None = None) -> Panel:
    """A weekly panel from ``{(item, market): (launch week, demand from launch)}``."""
    rows = [{"item_id": item, "market": market, "timestamp": START + timedelta(weeks=week + i),
             "y": float(y)}
            for (item, market), (week, values) in series.items() for i, y in enumerate(values)]
    items = None
    if categories is not None:
        items = pl.DataFrame({"item_id": list(categories), "category": list(categories.values()),
                              "title": [f"ITEM {i}" for i in categories]})
    return Panel(data=pl.DataFrame(rows).sort("item_id", "market", "timestamp"), freq="W",
                 items=items, static_categorical=["category"] if items is not None else [],
                 static_text=["title"] if items is not None else [])


@pytest.mark.parametrize("name", LAUNCH_MODELS)
def test_a_future_launch_is_forecast_on_that_seasons_periods(name, shop):
    panel = shop.panel()
    model = create_model(name).fit(panel)
    new = shop.tables.items["item_id"][-1]  # launches in the panel's last weeks
    launch = panel.data["timestamp"].max() + timedelta(weeks=40, days=2)  # a Wednesday
    forecast = model.predict_launch(
        pl.DataFrame({"item_id": [new, new], "market": ["UK", "BR"], "launch": [launch] * 2}),
        horizon=6, history=panel.select_series(panel.data.filter(pl.col("item_id") != new)))
    assert forecast.columns == ["item_id", "market", "timestamp", "period_since_launch",
                                "y_pred"]
    for _market, rows in forecast.group_by("market"):
        monday = launch - timedelta(days=2)
        assert rows["timestamp"].to_list() == [monday + timedelta(weeks=w) for w in range(6)]
        assert rows["period_since_launch"].to_list() == list(range(1, 7))
    assert forecast["y_pred"].is_finite().all() and (forecast["y_pred"] >= 0).all()


def test_a_launch_the_history_holds_is_refused_and_other_models_say_they_cannot(shop):
    panel = shop.panel()
    sold = panel.data.row(0, named=True)
    launch = pl.DataFrame({"item_id": [sold["item_id"]], "market": [sold["market"]],
                           "launch": [date(2030, 1, 1)]})
    with pytest.raises(InputError, match=f"item '{sold['item_id']}' already sells in"):
        create_model("median_launch_curve").fit(panel).predict_launch(launch, 4)
    with pytest.raises(InputError, match="'naive' cannot forecast from a launch date"):
        create_model("naive").fit(panel).predict_launch(launch, 4)


def test_median_curve_equals_an_independent_median():
    launched = {("A", "GB"): (2, [1, 4, 9, 2]), ("B", "GB"): (3, [3, 8, 1, 5, 7]),
                ("C", "GB"): (4, [6, 2, 4]), ("D", "GB"): (1, [10, 0, 3, 3, 8]),
                ("E", "DE"): (2, [50, 60, 70, 80])}
    # OLD sells from the first period: it may predate the data, so it is not a launch.
    panel = _panel({("OLD", "GB"): (0, [100] * 9), **launched})
    model = MedianLaunchCurve(min_series=4).fit(panel)
    wanted = pl.DataFrame({"item_id": ["N", "N"], "market": ["GB", "DE"],
                           "launch": [date(2025, 3, 5)] * 2})
    forecast = model.predict_launch(wanted, horizon=6)

    def expected(markets: set[str], age: int) -> float:
        at = [v[age - 1] for (_, m), (_, v) in launched.items() if m in markets and len(v) >= age]
        return median(at) if at else expected(markets, age - 1)  # past the end: last value

    for market, own in (("GB", {"GB"}), ("DE", {"GB", "DE"})):  # DE has 1 launch: global curve
        got = forecast.filter(pl.col("market") == market)["y_pred"].to_list()
        assert got == pytest.approx([expected(own, age) for age in range(1, 7)])


def test_category_curve_follows_the_planted_category_and_falls_back_when_unknown():
    rng = np.random.default_rng(0)
    level = {"hi": 20.0, "lo": 4.0}
    series, categories = {}, {}
    for i in range(12):
        category = "hi" if i % 2 else "lo"
        series[(f"I{i}", "GB")] = (1 + i % 4, rng.poisson(level[category], 6).tolist())
        categories[f"I{i}"] = category
    categories.update({"NEW_HI": "hi", "NEW_LO": "lo", "NEW_ODD": "zz", "NEW_NONE": None})
    panel = _panel({("OLD", "GB"): (0, [500] * 9), **series}, categories)  # OLD: not a launch
    model = create_model("category_launch_curve").fit(panel)
    new = list(categories)[-4:]
    forecast = model.predict_launch(pl.DataFrame(
        {"item_id": new, "market": "GB", "launch": date(2025, 1, 1)}), horizon=4)
    by_item = {i: forecast.filter(pl.col("item_id") == i)["y_pred"].to_numpy() for i in new}
    assert (by_item["NEW_HI"] > 2 * by_item["NEW_LO"]).all()
    hi_first = [v[1][0] for k, v in series.items() if categories[k[0]] == "hi"]
    assert by_item["NEW_HI"][0] == pytest.approx(np.mean(hi_first))
    every_first = np.mean([v[1][0] for v in series.values()])
    assert by_item["NEW_ODD"][0] == pytest.approx(every_first)  # unseen value: global curve
    assert by_item["NEW_NONE"] == pytest.approx(by_item["NEW_ODD"])  # missing: global curve


class _Recording(MedianLaunchCurve):
    """The median curve, noting what each fit was given."""

    name = "recording"
    fits: ClassVar[list[Panel]] = []

    def _fit(self, panel: Panel) -> None:
        type(self).fits.append(panel)
        super()._fit(panel)


def test_launch_split_keeps_parts_apart_and_no_later_data_reaches_fit(shop):
    panel = shop.panel()
    protocol = LaunchProtocol(horizon=4, cutoffs=(date(2022, 2, 21), date(2022, 3, 14)),
                              validation_periods=2)
    _Recording.fits.clear()
    forecasts = run_launch_backtest(_Recording(), panel, protocol)
    assert len(_Recording.fits) == 2
    launches = panel.data.group_by("item_id").agg(pl.col("timestamp").min())
    for window, cutoff in enumerate(protocol.cutoff_periods(panel)):
        split = protocol.split(panel, cutoff)
        parts = [set(split.train_items), set(split.validation_items), set(split.test_items)]
        assert all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2]
                                   or parts[1] & parts[2])
        fit = _Recording.fits[window].data
        assert fit["timestamp"].max() < cutoff
        assert not set(fit["item_id"]) & parts[2]
        rows = forecasts.filter(pl.col("window") == window)
        assert set(rows["item_id"]) == parts[2]
        first = launches.filter(pl.col("item_id").is_in(list(parts[2])))["timestamp"]
        assert first.min() >= cutoff
        assert rows["period_since_launch"].max() == 4
    assert forecasts.columns[:8] == ["item_id", "market", "timestamp", "model", "window",
                                     "y_true", "y_pred", "period_since_launch"]


def test_backtest_models_scores_launches_and_refuses_models_without_a_launch_path(shop):
    panel = shop.panel()
    run = backtest_models(panel, ["median_launch_curve", "knn_analogue"],
                          LaunchProtocol(horizon=4))
    wape = run.metrics.filter((pl.col("metric") == "WAPE") & (pl.col("window") == "all"))
    assert set(wape["segment"]) == {"all", *panel.data["market"].unique()}
    assert wape["value"].is_finite().all()
    with pytest.raises(InputError, match="'lightgbm' cannot forecast from a launch date"):
        backtest_models(panel, ["median_launch_curve", "lightgbm"], LaunchProtocol(horizon=4))


def test_cli_launch_protocol_writes_metrics_and_refuses_a_bad_cutoff(shop, tmp_path):
    runner = CliRunner()
    spec = str(shop.folder / "spec.yaml")
    out = tmp_path / "launch"
    result = runner.invoke(app, ["backtest", "--spec", spec, "--protocol", "launch",
                                 "--models", ",".join(LAUNCH_MODELS), "--horizon", "4",
                                 "--validation-periods", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = pl.read_csv(out / "metrics.csv", schema_overrides={"window": pl.Utf8})
    assert set(metrics["model"]) == set(LAUNCH_MODELS)
    assert {"WAPE", "sMAPE", "RMSE"} <= set(metrics["metric"])
    by_age = pl.read_csv(out / "metrics_since_launch.csv")
    assert sorted(by_age["period_since_launch"].unique()) == [1, 2, 3, 4]
    for cutoff, why in (("2030-01-05", "no item launched on or after it"),
                        ("2021-06-07", "no item launched before")):
        bad = tmp_path / f"bad{cutoff}"
        result = runner.invoke(app, ["backtest", "--spec", spec, "--protocol", "launch",
                                     "--models", "median_launch_curve", "--cutoff", cutoff,
                                     "--out", str(bad)])
        assert result.exit_code == 2
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and why in errors[0]
        assert not bad.exists()


def _planted_panel(n_items: int = 80, seed: int = 0) -> Panel:
    """Launches over 40 weeks whose volume follows the items' ``size`` (and nothing else), in
    two markets, beside one series running from the first week (not a launch)."""
    rng = np.random.default_rng(seed)
    sizes = [*rng.uniform(0, 1, n_items), 0.9, 0.1]  # the last two items never sell
    series = {("OLD", "GB"): (0, [10] * 50)}
    for i in range(n_items):
        for market, scale in (("GB", 1.0), ("DE", 0.5)):
            series[(f"I{i:02d}", market)] = (
                1 + i % 40, rng.poisson(scale * (1 + 40 * sizes[i]), 10).tolist())
    ids = [f"I{i:02d}" for i in range(n_items + 2)]
    rows = [{"item_id": item, "market": market, "timestamp": START + timedelta(weeks=week + i),
             "y": float(y)}
            for (item, market), (week, values) in series.items() for i, y in enumerate(values)]
    items = pl.DataFrame({"item_id": ["OLD", *ids], "size": [0.5, *sizes],
                          "title": ["OLD ITEM", *[f"ITEM {i}" for i in ids]]})
    return Panel(data=pl.DataFrame(rows).sort("item_id", "market", "timestamp"), freq="W",
                 items=items, static_numeric=["size"], static_text=["title"])


def test_lightgbm_launch_learns_a_planted_attribute_and_beats_the_median_curve():
    panel = _planted_panel()
    run = backtest_models(panel, ["median_launch_curve", "lightgbm_launch"],
                          LaunchProtocol(horizon=4, cutoffs=(date(2024, 7, 29),)))
    wape = {r["model"]: r["value"] for r in run.metrics.filter(
        (pl.col("metric") == "WAPE") & (pl.col("window") == "all")
        & (pl.col("segment") == "all")).iter_rows(named=True)}
    assert wape["lightgbm_launch"] < 0.7 * wape["median_launch_curve"], wape


def test_lightgbm_launch_save_load_gives_identical_launch_forecasts(tmp_path):
    panel = _planted_panel()
    model = create_model("lightgbm_launch", max_rounds=60).fit(panel)
    launches = pl.DataFrame({"item_id": ["I80", "I81"], "market": ["GB", "GB"],
                             "launch": [date(2025, 6, 4)] * 2})
    before = model.predict_launch(launches, horizon=5)
    model.save(tmp_path / "m")
    after = Forecaster.load(tmp_path / "m").predict_launch(launches, horizon=5)
    assert before.equals(after)
    big, small = (before.filter(pl.col("item_id") == i)["y_pred"].mean() for i in ("I80", "I81"))
    assert big > 2 * small  # size 0.9 against 0.1: about 37 units a week against 5


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny shop (item P012 is in the items table and never sold) and a lightgbm_launch and
    a naive model trained on it through the CLI."""
    folder = tmp_path_factory.mktemp("predict_launch")
    spec = make_shop(folder, covariates=False)
    models = {}
    for name in ("lightgbm_launch", "naive"):
        models[name] = folder / name
        result = CliRunner().invoke(app, ["train", "--spec", str(spec), "--preset", name,
                                          "--out", str(models[name])])
        assert result.exit_code == 0, result.output
    return spec, models


def test_cli_predict_launch_forecasts_a_future_launch_dates_periods(trained, tmp_path):
    spec, models = trained
    out = tmp_path / "launch.parquet"
    result = CliRunner().invoke(app, ["predict", "--model", str(models["lightgbm_launch"]),
                                      "--spec", str(spec), "--launch", "--launch-date",
                                      "2031-03-05", "--markets", "GB", "--horizon", "3",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    forecast = pl.read_parquet(out)
    assert forecast.select("item_id", "market").unique().rows() == [("P012", "GB")]
    monday = datetime(2031, 3, 3)  # the week holding Wednesday 5 March 2031
    assert forecast["timestamp"].to_list() == [monday + timedelta(weeks=w) for w in range(3)]
    assert forecast["period_since_launch"].to_list() == [1, 2, 3]
    assert forecast["y_pred"].is_finite().all()
    assert set(forecast["model"]) == {"lightgbm_launch"}


@pytest.mark.parametrize(("model", "extra", "why"), [
    ("naive", ["--launch-date", "2031-03-05"], "'naive' cannot forecast from a launch date"),
    ("lightgbm_launch", ["--items", "P999", "--launch-date", "2031-03-05"],
     "item 'P999' is not in the items table"),
    ("lightgbm_launch", [], "no launch date"),
    ("lightgbm_launch", ["--items", "P001", "--launch-date", "2031-03-05"],
     "item 'P001' already sells in"),
])
def test_cli_predict_launch_errors_are_one_line_and_write_nothing(trained, tmp_path, model,
                                                                   extra, why):
    spec, models = trained
    out = tmp_path / "out" / "launch.parquet"
    result = CliRunner().invoke(app, ["predict", "--model", str(models[model]), "--spec",
                                      str(spec), "--launch", *extra, "--out", str(out)])
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and why in errors[0], result.stderr
    assert not out.parent.exists()
