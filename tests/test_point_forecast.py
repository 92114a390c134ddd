"""What the point forecast is: the mean by default, so forecasts add up to the demand; the
median (still available) lies below it on intermittent demand."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from salesfusion.data.panel import Panel
from salesfusion.data.splits import BacktestProtocol
from salesfusion.models.backtest import run_backtest
from salesfusion.models.registry import create_model
from salesfusion.scoring.metrics import evaluate

pytestmark = pytest.mark.xdist_group("point_forecast")


@pytest.fixture(scope="module")
def poisson_panel() -> Panel:
    """600 intermittent series, 40 weeks: each series' weekly units are Poisson with a rate
    drawn from a gamma of mean 0.8 (most weeks sell nothing, so the median is far below the
    mean). The test windows hold about 5,800 units: the actual total's own Poisson noise is
    about 1.3 %."""
    rng = np.random.default_rng(7)
    n_series, weeks = 600, 40
    rates = rng.gamma(0.8, 1.0, n_series)
    weeks_index = pl.date_range(pl.date(2024, 1, 1), pl.date(2024, 1, 1) + pl.duration(
        weeks=weeks - 1), "1w", eager=True)
    frame = pl.DataFrame({
        "item_id": np.repeat([f"i{s:03d}" for s in range(n_series)], weeks),
        "market": "DE",
        "timestamp": np.tile(weeks_index.to_numpy(), n_series),
        "y": rng.poisson(np.repeat(rates, weeks)).astype(float),
    }).with_columns(pl.col("timestamp").cast(pl.Datetime("us")))
    return Panel(data=frame.sort("item_id", "market", "timestamp"), freq="W")


def _bias(model_name: str, panel: Panel, **params) -> float:
    protocol = BacktestProtocol(horizon=4, windows=3, step=4, refit=True)
    forecasts = run_backtest(create_model(model_name, horizon=4, **params), panel, protocol)
    scores = evaluate(forecasts)
    return scores.filter(pl.col("metric") == "bias_pct")["value"].item()


def test_the_mean_forecast_adds_up_to_the_demand_and_the_median_falls_short(poisson_panel):
    mean = _bias("lightgbm", poisson_panel, max_rounds=100)
    median = _bias("lightgbm", poisson_panel, max_rounds=100, point="median")
    assert abs(mean) < 3, mean
    assert median < -20, median


def test_lightgbm_quantiles_come_from_its_out_of_sample_errors(poisson_panel):
    protocol = BacktestProtocol(horizon=4, windows=2, step=4, refit=True)
    forecasts = run_backtest(create_model("lightgbm", horizon=4, max_rounds=100),
                             poisson_panel, protocol)
    assert (forecasts["q0.1"] <= forecasts["q0.5"]).all()
    assert (forecasts["q0.5"] <= forecasts["q0.9"]).all()
    inside = ((forecasts["y_true"] >= forecasts["q0.1"])
              & (forecasts["y_true"] <= forecasts["q0.9"])).mean()
    assert 0.7 <= inside <= 0.95, inside  # nominal 0.8 (ties at 0 count as inside)
    median = create_model("lightgbm", horizon=4, max_rounds=20, point="median")
    assert "q0.5" not in median.fit(poisson_panel).predict(4).columns  # y_pred is the median


def test_a_neural_mean_head_is_unbiased_where_its_median_is_not(poisson_panel):
    fast = {"modalities": [], "epochs": 10, "hidden": 8, "lookback": 8, "max_train_windows": 5000,
            "covariates": False, "seed": 0}
    mean = _bias("multimodal", poisson_panel, **fast)
    median = _bias("multimodal", poisson_panel, **fast, point="median")
    assert abs(mean) < 5, mean
    assert median < mean - 10, (mean, median)


def test_backtest_summaries_say_what_each_forecast_is(poisson_panel, tmp_path):
    from salesfusion.evaluation.report import write_report
    from salesfusion.evaluation.runner import backtest_models

    protocol = BacktestProtocol(horizon=2, windows=1, step=2, refit=True)
    run = backtest_models(poisson_panel, [create_model("naive", horizon=2), create_model(
        "lightgbm", horizon=2, max_rounds=10, point="median")], protocol)
    summary = run.summary()
    assert dict(zip(summary["model"], summary["point"], strict=True)) == {
        "naive": "mean", "lightgbm": "median"}
    write_report(run, tmp_path / "report.html", "points")
    assert "<th>point</th>" in (tmp_path / "report.html").read_text()


def test_an_ensemble_is_a_mean_only_when_every_member_is():
    assert create_model("ensemble", members=["naive", "lightgbm"]).point == "mean"
    assert create_model("launch_ensemble", members=[
        "mean_launch_curve", "lightgbm_launch"]).point == "mean"
    assert create_model("launch_ensemble", members=[
        "median_launch_curve", "lightgbm_launch"]).point == "median"
