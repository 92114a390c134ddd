"""The multimodal model's launch path: launch windows, launch-level scaling and persistence."""

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from salesfusion.data.launches import POOLED, launch_grid, launch_levels, launch_rows
from salesfusion.datasets.synthetic import synthetic
from salesfusion.features.calendar import CALENDAR_WIDTH, year_position
from salesfusion.features.lags import WidePanel
from salesfusion.models.base import Forecaster
from salesfusion.models.registry import create_model, model_class
from salesfusion.training.windows import abroad_at_launch, make_windows

HORIZON = 6


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return synthetic(tmp_path_factory.mktemp("mm_launch"), n_items=40, n_weeks=30, seed=7)


@pytest.fixture(scope="module")
def fitted(shop):
    params = {**model_class("multimodal").test_params(), "horizon": HORIZON,
              "launch_scale": "launch_level", "launch_weight": 3}
    return create_model("multimodal", **params).fit(shop.panel())


def _launches(panel, weeks_after_end: list[int]) -> tuple[pl.DataFrame, list]:
    dates = [panel.data["timestamp"].max() + timedelta(weeks=w) for w in weeks_after_end]
    frame = pl.DataFrame({"item_id": [f"NEW{i}" for i in range(len(dates))], "market": "UK",
                          "launch": dates})
    return frame, dates


def test_launch_levels_are_each_markets_mean_first_periods(shop):
    panel = shop.panel()
    levels = launch_levels(panel, HORIZON)
    rows, launched = launch_rows(panel, HORIZON)
    assert launched
    for market, frame in rows.group_by("market"):
        assert levels[market[0]] == pytest.approx(frame["y"].mean())
    assert levels[POOLED] == pytest.approx(rows["y"].mean())


def test_launch_windows_have_no_history_and_the_calendar_of_the_launch_periods(shop, fitted):
    panel = shop.panel()
    launches, dates = _launches(panel, [10, 36])  # half a year apart: other seasons
    wide, windows = fitted.launch_windows(launch_grid(launches, HORIZON, "W"), panel)
    assert not windows.history_mask.any()
    assert wide.keys["item_id"].to_list() == ["NEW0", "NEW1"]
    for row, launch in enumerate(dates):
        periods = np.array([launch + timedelta(weeks=w) for w in range(HORIZON)],
                           dtype="datetime64[us]")
        np.testing.assert_allclose(windows.future[row, :, :CALENDAR_WIDTH],
                                   year_position(periods, "W"), atol=1e-6)
    # Scaled by the UK's launch level, known however far ahead the launch is.
    assert windows.level == pytest.approx(np.full(2, fitted.inputs.launch_levels["UK"] + 1.0))


def test_a_launch_is_forecast_on_its_own_periods_and_the_season_changes_it(shop, fitted):
    panel = shop.panel()
    launches, dates = _launches(panel, [10, 36])
    forecast = fitted.predict_launch(launches, horizon=HORIZON)
    for item, launch in zip(["NEW0", "NEW1"], dates, strict=True):
        rows = forecast.filter(pl.col("item_id") == item)
        assert rows["timestamp"].to_list() == [launch + timedelta(weeks=w)
                                               for w in range(HORIZON)]
        assert rows["period_since_launch"].to_list() == list(range(1, HORIZON + 1))
    first, second = (forecast.filter(pl.col("item_id") == i)["y_pred"].to_numpy()
                     for i in ("NEW0", "NEW1"))
    assert np.isfinite(first).all() and not np.allclose(first, second)
    with pytest.raises(Exception, match="trained for horizons up to 6"):
        fitted.predict_launch(launches, horizon=HORIZON + 1)


def test_market_level_scaling_uses_the_markets_running_level(shop):
    panel = shop.panel()
    params = {**model_class("multimodal").test_params(), "horizon": 4, "epochs": 1}
    model = create_model("multimodal", **params).fit(panel)  # launch_scale: market_level
    launches, _ = _launches(panel, [3])
    _, windows = model.launch_windows(launch_grid(launches, 4, "W"), panel)
    last = panel.data.filter(pl.col("market") == "UK").sort("timestamp")
    recent = last.filter(pl.col("timestamp") > last["timestamp"].max()
                         - timedelta(weeks=params["lookback"]))
    assert windows.level[0] == pytest.approx(recent["y"].mean() + 1.0, rel=1e-5)


def test_save_load_gives_identical_launch_forecasts(shop, fitted, tmp_path):
    launches, _ = _launches(shop.panel(), [5])
    before = fitted.predict_launch(launches, horizon=HORIZON)
    fitted.save(tmp_path / "m")
    after = Forecaster.load(tmp_path / "m").predict_launch(launches, horizon=HORIZON)
    assert before.equals(after)


def test_abroad_is_what_the_item_sells_in_the_other_markets():
    keys = pl.DataFrame({"item_id": ["A", "A", "B"], "market": ["GB", "DE", "GB"]})
    y = np.array([[4.0, 4.0, 8.0, 8.0], [np.nan, np.nan, 1.0, 3.0], [5.0, 5.0, 5.0, 5.0]])
    periods = np.array(["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22"],
                       dtype="datetime64[us]")
    wide = WidePanel(keys=keys, periods=periods, y=y, price_local=None, fx_rate=None)
    windows = make_windows(wide, "W", lookback=2, horizon=1, origins=np.array([3]))
    by_series = dict(zip(windows.series.tolist(), windows.abroad.tolist(), strict=True))
    assert by_series[0] == pytest.approx(np.log1p((1 + 3) / 2))  # A in GB: A's DE sales
    assert by_series[1] == pytest.approx(np.log1p(8.0))  # A in DE: A's GB sales
    assert by_series[2] == pytest.approx(0.0)  # B sells nowhere else
    # A launch of A in FR three weeks after the data: A's sales everywhere before it.
    entry = abroad_at_launch(wide, 2, ["A", "B", "Z"], launch_index=7)
    assert entry == pytest.approx(np.log1p([(8 + 1 + 8 + 3) / 2, 5.0, 0.0]))


def test_cross_market_model_reads_the_items_sales_abroad(shop):
    panel = shop.panel()
    params = {**model_class("multimodal").test_params(), "horizon": 4, "epochs": 1,
              "cross_market": True, "launch_scale": "launch_level"}
    model = create_model("multimodal", **params).fit(panel)
    sold = panel.data["item_id"][0]
    launch = panel.data["timestamp"].max() + timedelta(weeks=2)
    entries = pl.DataFrame({"item_id": [sold, "NEVER_SOLD"], "market": "XX",
                            "launch": [launch] * 2})
    history = panel.select_series(panel.data.filter(pl.col("market") != "XX"))
    _, windows = model.launch_windows(launch_grid(entries, 4, "W"), history)
    assert windows.abroad[0] > 0 and windows.abroad[1] == 0
    forecast = model.predict_launch(entries, horizon=4, history=history)
    assert forecast["y_pred"].is_finite().all()


@pytest.mark.parametrize("backbone", ["gtm", "transformer"])
def test_attention_backbones_forecast_launches_on_several_dates(shop, backbone):
    """Launch windows of several dates keep boolean history masks (an attention backbone's
    padding mask must be boolean)."""
    panel = shop.panel()
    params = {**model_class("multimodal").test_params(), "horizon": HORIZON,
              "backbone": backbone, "epochs": 1}
    model = create_model("multimodal", **params).fit(panel)
    launches, _ = _launches(panel, [2, 20])
    _, windows = model.launch_windows(launch_grid(launches, HORIZON, "W"), panel)
    assert windows.history_mask.dtype == np.bool_
    forecast = model.predict_launch(launches, HORIZON, history=panel)
    assert forecast.height == 2 * HORIZON and forecast["y_pred"].is_finite().all()
