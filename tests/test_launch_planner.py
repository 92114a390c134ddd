"""Issue 27, launch side: the launch backtest's report with bias and RMSSE, RMSSE's launch
scale, mean launch curves beside median ones, and the launch forecast report's market chart
that keeps launches apart from history."""

from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.data.launch_splits import LaunchProtocol
from salesfusion.data.panel import Panel
from salesfusion.datasets.synthetic import synthetic
from salesfusion.evaluation.forecast_report import market_figures, write_forecast_report
from salesfusion.evaluation.launch import run_launch_backtest
from salesfusion.models.registry import create_model
from salesfusion.scoring.scales import launch_scale

START = datetime(2024, 1, 1)  # a Monday


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    return synthetic(tmp_path_factory.mktemp("launch_planner"), n_items=40, n_weeks=30, seed=7)


def _panel(series: dict[tuple[str, str], tuple[int, list[float]]]) -> Panel:
    """A weekly panel from ``{(item, market): (launch week, demand from launch)}``."""
    rows = [{"item_id": item, "market": market, "timestamp": START + timedelta(weeks=week + i),
             "y": float(y)}
            for (item, market), (week, values) in series.items() for i, y in enumerate(values)]
    return Panel(data=pl.DataFrame(rows).sort("item_id", "market", "timestamp"), freq="W")


def test_launch_backtest_writes_a_report_with_bias_and_rmsse(shop, tmp_path: Path) -> None:
    out = tmp_path / "launch"
    result = CliRunner().invoke(app, [
        "backtest", "--spec", str(shop.folder / "spec.yaml"), "--protocol", "launch",
        "--models", "mean_launch_curve,median_launch_curve", "--horizon", "4",
        "--validation-periods", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    for anchor in ("protocol", "bias", "accuracy", "rmsse", "markets", "since-launch"):
        assert f'<section id="{anchor}">' in page, anchor
    assert "Bias (%) per market" in page and "RMSSE per market" in page
    assert "launch scale" in page  # what RMSSE is scaled by, said in the report
    assert "<th>point</th>" in page and "Models ranked by RMSSE" in page
    by_age = pl.read_csv(out / "metrics_since_launch.csv")
    for metric in ("WAPE", "bias_pct", "RMSSE"):
        values = by_age.filter(pl.col("metric") == metric)["value"]
        assert values.len() == 2 * 4 and values.is_not_null().all(), metric
    metrics = pl.read_csv(out / "metrics.csv", schema_overrides={"window": pl.Utf8})
    overall = {(r["model"], r["metric"]): r["value"] for r in metrics.filter(
        (pl.col("window") == "all") & (pl.col("segment") == "all")).iter_rows(named=True)}
    assert overall[("mean_launch_curve", "RMSSE")] > 0
    # The median curve is the lower one on skewed launches: its bias is the more negative.
    assert overall[("median_launch_curve", "bias_pct")] < overall[("mean_launch_curve",
                                                                    "bias_pct")]


def test_bias_flags_of_a_planted_under_forecast_reach_the_launch_report(tmp_path: Path) -> None:
    """Training launches sell 10 a week, test launches 30: every curve is 67 % below."""
    series = {(f"T{i}", "SE"): (1 + i, [10.0, 10.0, 10.0, 10.0, 10.0]) for i in range(6)}
    series |= {(f"N{i}", "SE"): (12 + i, [30.0, 30.0, 30.0, 30.0]) for i in range(3)}
    series[("OLD", "SE")] = (0, [10.0] * 20)
    from salesfusion.evaluation.report_launch import write_launch_report
    from salesfusion.evaluation.runner import backtest_models

    run = backtest_models(_panel(series), ["mean_launch_curve"],
                          LaunchProtocol(horizon=4, cutoffs=(date(2024, 3, 25),)))
    write_launch_report(run, tmp_path / "report.html", "planted")
    page = (tmp_path / "report.html").read_text()
    assert "mean_launch_curve forecasts 67 % below actual demand in SE" in page
    # No prices: no WRMSSE column; RMSSE stays, empty where the launches had no scale.
    assert "RMSSE" in run.summary().columns and "WRMSSE" not in run.summary().columns


def test_launch_rmsse_is_scaled_by_the_training_launches_one_step_rmse() -> None:
    # GB launches step by +2, -2 (RMS 2); DE by +3 (RMS 3); OLD starts with the panel.
    panel = _panel({("A", "GB"): (1, [4.0, 6.0, 4.0]), ("B", "GB"): (2, [1.0, 3.0, 1.0]),
                    ("C", "DE"): (1, [0.0, 3.0, 6.0]), ("OLD", "GB"): (0, [50.0] * 12),
                    ("D", "GB"): (8, [5.0, 5.0, 5.0]), ("D", "DE"): (8, [1.0, 1.0, 1.0])})
    train = Panel(data=panel.data.filter(pl.col("timestamp") < START + timedelta(weeks=8)),
                  freq="W")
    scales = dict(launch_scale(train, horizon=3).iter_rows())
    assert scales == pytest.approx({"GB": 2.0, "DE": 3.0})
    forecasts = run_launch_backtest(create_model("mean_launch_curve", min_series=1), panel,
                                    LaunchProtocol(horizon=3, cutoffs=(date(2024, 2, 26),)))
    got = dict(forecasts.select("market", "rmsse_scale").unique().iter_rows())
    assert got == pytest.approx({"GB": 2.0, "DE": 3.0})


def test_mean_curve_totals_the_training_launches_mean_and_the_median_does_not() -> None:
    # Skewed launches, as new products are: four sell little, one a lot.
    totals = [4.0, 4.0, 8.0, 4.0, 100.0]
    series = {(f"I{i}", "GB"): (1 + i, [t / 4] * 4) for i, t in enumerate(totals)}
    series[("OLD", "GB")] = (0, [7.0] * 12)  # running from the first week: not a launch
    panel = _panel(series)
    launch = pl.DataFrame({"item_id": ["NEW"], "market": ["GB"], "launch": [date(2024, 6, 3)]})
    forecasts = {point: create_model(f"{point}_launch_curve", max_age=4).fit(panel)
                 .predict_launch(launch, 4)["y_pred"].sum() for point in ("mean", "median")}
    assert forecasts["mean"] == pytest.approx(np.mean(totals))  # 24.0
    assert forecasts["median"] == pytest.approx(np.median(totals))  # 4.0
    assert create_model("mean_launch_curve").params["point"] == "mean"
    assert create_model("median_launch_curve").params["point"] == "median"
    category = create_model("category_launch_curve", point="median")
    assert category.params["point"] == "median"
    point = getattr(create_model("median_launch_curve"), "point", "median")
    assert point == "median"  # Forecaster.point, where present, reads the config


def test_forecast_report_plots_launches_apart_from_history(tmp_path: Path) -> None:
    # A market selling 230 a week over 20 series; two launches forecast at 10 a week each.
    series = {(f"S{i:02d}", "GB"): (0, [11.5] * 20) for i in range(20)}
    history = _panel(series)
    launches = pl.DataFrame({"item_id": ["L1", "L2"], "market": ["GB", "GB"],
                             "launch": [date(2024, 5, 20)] * 2})
    forecast = (create_model("mean_launch_curve").fit(history).predict_launch(launches, 4)
                .with_columns(pl.lit(10.0).alias("y_pred")))
    checked = forecast.with_columns(pl.lit(True).alias("cold_start"))
    figures = market_figures(checked, history, None, ["GB"])
    assert len(figures) == 1  # no series with history in the forecast: no history line
    names = [trace.name for trace in figures[0].data]
    assert names == ["GB forecast"]
    assert list(figures[0].data[0].y) == [20.0] * 4
    # A forecast of both: running series with their own history, launches in a figure apart.
    running = pl.DataFrame({"item_id": ["S00"] * 4, "market": ["GB"] * 4,
                            "timestamp": checked["timestamp"].unique().sort(),
                            "period_since_launch": [1, 2, 3, 4], "y_pred": [11.0] * 4,
                            "cold_start": [False] * 4})
    both = pl.concat([running, checked.select(running.columns)])
    first, second = market_figures(both, history, None, ["GB"])
    assert [t.name for t in first.data] == ["GB history", "GB forecast"]
    assert set(first.data[0].y) == {11.5}  # S00's own history, not the market's 230
    assert [t.name for t in second.data] == ["GB forecast"]
    assert "launches" in second.layout.title.text
    path = tmp_path / "report.html"
    write_forecast_report(forecast, history, path, "launches", "mean_launch_curve")
    page = path.read_text()
    assert "new series (launches, cold start): forecast only" in page
    assert "all series with history sold per period" in page and "GB 230" in page
