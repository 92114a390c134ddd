"""statsforecast baselines: per-series fallback (too short, or the model raises) counted in the
notes, and ARIMA regressing on future-known covariates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from statsforecast import models as sf_models

from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.models.base import Forecaster
from salesfusion.models.registry import create_model

START = np.datetime64("2022-01-03")  # a Monday
WEEK = np.timedelta64(7, "D")


def _panel(folder: Path, series: dict[tuple[str, str], list[float]], weeks: int,
           plan: dict[str, dict[str, list[float]]] | None = None) -> Panel:
    """A weekly period-grain panel whose series all end at week ``weeks - 1`` (a series of n
    values starts n weeks before the end); ``plan``: future-known columns (name -> market ->
    values over the weeks and beyond)."""
    from salesfusion.data.panel import build_panel
    from salesfusion.data.spec import load_spec
    from salesfusion.data.validate import load_tables

    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"item_id": item, "market": market, "y": value,
             "timestamp": str(START + (weeks - len(values) + t) * WEEK)}
            for (item, market), values in series.items() for t, value in enumerate(values)]
    pl.DataFrame(rows).write_csv(folder / "sales.csv")
    spec = ("name: fallback\nfreq: W\nsales_grain: period\nsales:\n  path: sales.csv\n"
            "  columns: {item_id: item_id, market: market, timestamp: timestamp, quantity: y}\n")
    if plan:
        markets = next(iter(plan.values()))
        pl.DataFrame([{"week": str(START + t * WEEK), "market": market,
                       **{column: plan[column][market][t] for column in plan}}
                      for market, values in markets.items() for t in range(len(values))]
                     ).write_csv(folder / "plan.csv")
        spec += ("exogenous:\n  path: plan.csv\n  columns: {timestamp: week, market: market}\n"
                 f"  future_known: [{', '.join(plan)}]\n")
    (folder / "spec.yaml").write_text(spec)
    return build_panel(load_tables(load_spec(folder / "spec.yaml")))


def _series(frame: pl.DataFrame, item: str, market: str = "GB") -> pl.DataFrame:
    return frame.filter((pl.col("item_id") == item) & (pl.col("market") == market)) \
        .sort("timestamp")


def _y(panel: Panel, item: str, market: str = "GB") -> np.ndarray:
    return _series(panel.data, item, market)["y"].cast(pl.Float64).to_numpy()


def test_ets_forecasts_short_series_by_the_mean_and_counts_them(tmp_path):
    rng = np.random.default_rng(1)
    long_values = {(f"L{i}", "GB"): list(20 + i + rng.normal(0, 2, 60).round(1))
                   for i in range(2)}
    panel = _panel(tmp_path, {**long_values, ("S2", "GB"): [5.0, 9.0],
                              ("S3", "GB"): [4.0, 6.0, 11.0]}, weeks=60)
    model = create_model("ets").fit(panel)
    forecast = model.predict(4)
    assert forecast.height == 4 * 4 and forecast["y_pred"].is_finite().all()
    assert model.notes == ["2 of 4 series too short for AutoETS (fewer than 7 periods): "
                           "forecast by the mean of their periods"]
    for item in ("S2", "S3"):
        short = _series(forecast, item)
        assert short["y_pred"].to_list() == pytest.approx([7.0] * 4)
        assert (short["q0.1"] < short["y_pred"]).all() and (short["y_pred"] < short["q0.9"]).all()
    # The long series are AutoETS's own forecasts (60 weeks: not seasonal with a 52-week season).
    for item in ("L0", "L1"):
        expected = sf_models.AutoETS(season_length=1, model="ZZN").forecast(
            y=_y(panel, item), h=4, level=[80])
        got = _series(forecast, item)
        np.testing.assert_allclose(got["y_pred"], expected["mean"], rtol=1e-9)
        np.testing.assert_allclose(got["q0.9"], expected["hi-80"], rtol=1e-9)
    # Notes describe the latest forecast: without the short series, nothing fell back.
    long_keys = pl.DataFrame({"item_id": ["L0", "L1"], "market": ["GB", "GB"]})
    model.predict(4, series=long_keys)
    assert model.notes == []


def test_a_series_the_model_raises_on_falls_back_and_is_counted(tmp_path):
    """ETS with a multiplicative error refuses a series holding a zero (statsforecast raises);
    that series alone gets the mean of its last 8 periods."""
    rng = np.random.default_rng(2)
    positive = list(10 + rng.poisson(5, 40).astype(float))
    with_zero = [*positive[:20], 0.0, *positive[21:]]
    panel = _panel(tmp_path, {("POS", "GB"): positive, ("ZERO", "GB"): with_zero}, weeks=40)
    with pytest.raises(ValueError, match="negative or zero"):
        sf_models.AutoETS(season_length=1, model="MNN").forecast(y=_y(panel, "ZERO"), h=3)

    model = create_model("ets", model="MNN").fit(panel)
    forecast = model.predict(3)
    assert model.notes == ["AutoETS failed on 1 of 2 series (ValueError: Inappropriate model "
                           "for data with negative or zero values): forecast by the mean of "
                           "their last 8 periods"]
    assert _series(forecast, "ZERO")["y_pred"].to_list() == pytest.approx(
        [np.mean(with_zero[-8:])] * 3)
    expected = sf_models.AutoETS(season_length=1, model="MNN").forecast(y=_y(panel, "POS"), h=3)
    np.testing.assert_allclose(_series(forecast, "POS")["y_pred"], expected["mean"], rtol=1e-9)


HISTORY, HORIZON = 70, 6


def _campaign_panels(folder: Path) -> tuple[Panel, Panel, np.ndarray]:
    """Two panels that differ only in the campaign plan of the forecast weeks (GB: ``future``
    or its opposite; DE never ran one before, so its plan's column is constant there), and
    ``future``. GB demand rises by 12 in campaign weeks."""
    rng = np.random.default_rng(3)
    past = (rng.random(HISTORY) < 0.35).astype(float)
    future = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    series = {(item, "GB"): list((base + 12 * past + rng.normal(0, 1.5, HISTORY)).round(1))
              for item, base in (("A", 20), ("B", 30))}
    series[("A", "DE")] = list((15 + rng.normal(0, 1.5, HISTORY)).round(1))
    # Eight weeks: enough for plain AutoARIMA (7), not with the campaign regressor (7 + 2).
    series[("C", "GB")] = series[("A", "GB")][-8:]
    panels = [_panel(folder / name, series, HISTORY, plan={"campaign": {
        "GB": [*past, *plan], "DE": [0.0] * HISTORY + [1.0] * HORIZON}})
        for name, plan in (("plan", future), ("opposite", 1 - future))]
    return panels[0], panels[1], future


def test_arima_follows_a_future_known_covariate(tmp_path):
    panel, opposite, future = _campaign_panels(tmp_path)
    model = create_model("arima").fit(panel)
    forecast = model.predict(HORIZON)
    assert forecast.height == 4 * HORIZON and forecast["y_pred"].is_finite().all()
    on = future.astype(bool)
    for item in ("A", "B"):
        y_pred = _series(forecast, item)["y_pred"].to_numpy()
        assert y_pred[on].mean() - y_pred[~on].mean() > 8
        # The opposite plan moves the same weeks the other way.
        flipped = _series(model.predict(HORIZON, history=opposite), item)["y_pred"].to_numpy()
        assert flipped[~on].mean() - flipped[on].mean() > 8
    assert model.notes == [
        "1 of 4 series too short for AutoARIMA (fewer than 7 periods, 2 more per regressor): "
        "forecast by the mean of their periods",
        "regressors: campaign (each series uses those not constant or collinear over its "
        "history)"]
    assert _series(forecast, "C")["y_pred"].to_list() == pytest.approx(
        [np.mean(_y(panel, "C"))] * HORIZON)

    plain = create_model("arima", covariates=False).fit(panel)
    plain_forecast = plain.predict(HORIZON)
    assert plain_forecast.equals(plain.predict(HORIZON, history=opposite))  # does not react
    assert plain.notes == []  # C's 8 weeks suffice without a regressor
    # DE's campaign column is constant over its history: dropped, so plain AutoARIMA there.
    np.testing.assert_allclose(_series(forecast, "A", "DE")["y_pred"],
                               _series(plain_forecast, "A", "DE")["y_pred"], rtol=1e-9)

    model.save(tmp_path / "saved")
    state = json.loads((tmp_path / "saved" / "arima.json").read_text())
    assert set(state["scale"]) == {"campaign"}
    assert Forecaster.load(tmp_path / "saved").predict(HORIZON).equals(forecast)


def test_arima_drops_a_regressor_collinear_with_another(tmp_path):
    """A campaign's spend that is a fixed multiple of the campaign flag, plus a fee, makes
    AutoARIMA's regression singular ("xreg is rank deficient"): the later channel is dropped
    for that series, so it is forecast as with the flag alone, and nothing fails."""
    rng = np.random.default_rng(5)
    flag = (rng.random(40 + 3) < 0.4).astype(float)
    series = {("A", "GB"): list((20 + 10 * flag[:40] + rng.normal(0, 1, 40)).round(1))}
    both = _panel(tmp_path / "both", series, 40,
                  plan={"campaign": {"GB": list(flag)}, "spend": {"GB": list(100 * flag + 50)}})
    alone = _panel(tmp_path / "alone", series, 40, plan={"campaign": {"GB": list(flag)}})
    model = create_model("arima").fit(both)
    forecast = model.predict(3)
    assert model.notes == ["regressors: campaign, spend (each series uses those not constant or "
                           "collinear over its history)"]
    np.testing.assert_allclose(forecast["y_pred"],
                               create_model("arima").fit(alone).predict(3)["y_pred"], rtol=1e-6)


def test_series_key_order_does_not_matter(tmp_path):
    """Forecasts are matched to their series, whatever order ``series`` names them in."""
    rng = np.random.default_rng(4)
    values = {(item, "GB"): list(level + rng.normal(0, 1, 30).round(1))
              for item, level in (("X", 5.0), ("Y", 50.0))}
    panel = _panel(tmp_path, values, weeks=30)
    model = create_model("arima").fit(panel)
    keys = pl.DataFrame({"item_id": ["Y", "X"], "market": ["GB", "GB"]})
    forecast = model.predict(2, series=keys)
    means = forecast.group_by(SERIES_KEY).agg(pl.col("y_pred").mean()).sort("item_id")
    assert means["y_pred"][0] < 10 < 40 < means["y_pred"][1]
