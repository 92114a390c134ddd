"""The statsforecast baselines on large panels: the closed-form models forecast a whole panel at
once with the per-series path's numbers, routing and notes; the others forecast series in a
process pool with the same results as in one process."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pytest

from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.models.baselines import series_pool
from salesfusion.models.baselines.statsforecast_adapter import StatsForecastModel
from salesfusion.models.registry import create_model, model_class
from salesfusion.threads import default_threads

END = datetime(2024, 6, 3)  # a Monday: every series ends in this week unless told otherwise


def _panel(series: dict[str, list[float]], end_back: dict[str, int] | None = None) -> Panel:
    """A weekly panel, one market; series ``name`` ends ``end_back[name]`` weeks before END."""
    rows = []
    for name, values in series.items():
        last = END - timedelta(weeks=(end_back or {}).get(name, 0))
        rows += [{"item_id": name, "market": "GB", "y": float(v),
                  "timestamp": last - timedelta(weeks=len(values) - 1 - t)}
                 for t, v in enumerate(values)]
    data = (pl.DataFrame(rows).with_columns(pl.col("timestamp").cast(pl.Datetime("us")))
            .sort(*SERIES_KEY, "timestamp"))
    return Panel(data=data, freq="W")


def _awkward() -> Panel:
    """Short, constant, all-zero, negative, intermittent, fractional and long series."""
    rng = np.random.default_rng(7)
    series: dict[str, list[float]] = {
        "one": [4.0], "two": [3.0, 8.0], "three": [0.0, 2.0, 5.0], "four": [1.0, 0.0, 0.0, 6.0],
        "constant": [5.0] * 30, "zeros": [0.0] * 20, "zero_one": [0.0, 0.0, 3.0],
        "negative": [-2.0, 0.0, -1.0, -4.0, 0.0, -3.0], "returns": [3.0, -1.0, 0.0, 2.0, -2.0, 4.0],
        "single_sale": [0.0] * 11 + [7.0], "sale_first": [9.0] + [0.0] * 14,
        "fraction": list(rng.normal(10, 3, 45)),
        "seasonal": list(20 + 8 * np.sin(np.arange(130) / 52 * 2 * np.pi) + rng.normal(0, 1, 130)),
    }
    for i in range(12):
        n = int(rng.integers(5, 70))
        series[f"sparse{i}"] = list(rng.poisson(3, n) * (rng.random(n) < 0.3))
    return _panel(series, end_back={"fraction": 3, "sale_first": 1})


VECTORISED = [
    ("naive", {}), ("naive", {"interval_level": 95}),
    ("seasonal_naive", {}), ("seasonal_naive", {"season_length": 4}),
    ("seasonal_naive", {"season_length": 13, "interval_level": 50}),
    ("moving_average", {}), ("moving_average", {"window": 10}), ("moving_average", {"window": 1}),
    ("croston", {}), ("tsb", {}), ("tsb", {"alpha_d": 0.5, "alpha_p": 0.05}),
]


def _forecast(name: str, params: dict[str, Any], panel: Panel,
              horizon: int = 7) -> tuple[pl.DataFrame, list[str]]:
    model = create_model(name, **params).fit(panel)
    return model.predict(horizon), model.notes


@pytest.mark.parametrize(("name", "params"), VECTORISED)
def test_vectorised_forecasts_equal_the_per_series_path(name, params, monkeypatch):
    panel = _awkward()
    calls: list[int] = []
    per_series = StatsForecastModel.forecast_one
    monkeypatch.setattr(StatsForecastModel, "forecast_one",
                        lambda self, y, *rest: calls.append(len(y)) or per_series(self, y, *rest))
    fast, fast_notes = _forecast(name, params, panel)
    # Only the rows the closed form does not cover went series by series: TSB's negative one.
    assert calls == ([6] if name == "tsb" else [])

    monkeypatch.setattr(model_class(name), "vectorised", False)
    slow, slow_notes = _forecast(name, params, panel)
    assert len(calls) > 20  # every series went through statsforecast this time
    assert fast.columns == slow.columns
    assert fast.drop("y_pred", *[c for c in fast.columns if c.startswith("q")]).equals(
        slow.drop("y_pred", *[c for c in slow.columns if c.startswith("q")]))
    values = [c for c in fast.columns if c == "y_pred" or c.startswith("q")]
    assert len(values) == (3 if model_class(name)(**params).supports_quantiles else 1)
    for column in values:
        np.testing.assert_allclose(fast[column].to_numpy(), slow[column].to_numpy(),
                                   rtol=1e-9, atol=1e-9, err_msg=column)
    assert fast_notes == slow_notes


def test_vectorised_routing_and_notes_on_the_awkward_panel():
    """What the equality above covers: short series fall back to their mean, statsforecast's
    refusal (TSB on a series with no positive value) is counted, intervals widen."""
    panel = _awkward()
    forecast, notes = _forecast("moving_average", {"window": 10}, panel)
    assert notes == ["7 of 25 series too short for WindowAverage (fewer than 10 periods): "
                     "forecast by the mean of their periods"]
    three = forecast.filter(pl.col("item_id") == "three")["y_pred"]
    assert three.to_list() == pytest.approx([7 / 3] * 7)
    _, notes = _forecast("tsb", {}, panel)
    assert notes == ["TSB failed on 1 of 25 series (ValueError: ses_forecast requires at least "
                     "1 data point): forecast by the mean of their last 8 periods"]
    naive, _ = _forecast("naive", {}, panel)
    seasonal = naive.filter(pl.col("item_id") == "fraction")
    width = (seasonal["q0.9"] - seasonal["q0.1"]).to_numpy()
    assert (np.diff(width) > 0).all()
    constant = naive.filter(pl.col("item_id") == "constant")
    assert (constant["q0.1"] == 5.0).all() and (constant["q0.9"] == 5.0).all()


def test_a_panel_of_one_period_and_of_one_series():
    for series in ({"a": [3.0], "b": [0.0]}, {"only": [1.0, 2.0, 4.0]}):
        panel = _panel(series)
        for name in ("naive", "seasonal_naive", "moving_average", "croston", "tsb"):
            forecast, _ = _forecast(name, {}, panel, horizon=2)
            assert forecast.height == 2 * len(series) and forecast["y_pred"].is_finite().all()


class _CountingPool(ProcessPoolExecutor):
    sizes: ClassVar[list[int]] = []

    def __init__(self, workers: int, **kwargs: Any) -> None:
        _CountingPool.sizes.append(workers)
        super().__init__(workers, **kwargs)


@pytest.mark.parametrize(("name", "params"), [("ets", {"model": "ZZN"}),
                                              ("ets", {"model": "MNN"}), ("imapa", {})])
def test_a_process_pool_gives_what_one_process_gives(name, params, monkeypatch):
    rng = np.random.default_rng(11)
    series = {f"s{i:02d}": list(rng.poisson(4, int(rng.integers(2, 40))).astype(float))
              for i in range(36)}
    panel = _panel(series)
    monkeypatch.setattr(model_class(name), "parallel_min_series", 10)
    monkeypatch.setattr(series_pool, "ProcessPoolExecutor", _CountingPool)
    _CountingPool.sizes = []
    alone, alone_notes = _forecast(name, {**params, "n_jobs": 1}, panel, horizon=3)
    assert _CountingPool.sizes == []
    pooled, pooled_notes = _forecast(name, {**params, "n_jobs": 2}, panel, horizon=3)
    assert _CountingPool.sizes == [2]
    assert pooled.equals(alone)
    assert pooled_notes == alone_notes
    if name == "ets":  # short series counted across chunks; MNN also fails on zeros
        short = sum(len(values) < 7 for values in series.values())
        assert alone_notes[0].startswith(f"{short} of 36 series too short for AutoETS")
        assert len(alone_notes) == (2 if params["model"] == "MNN" else 1)


def test_the_pool_is_for_large_panels_only():
    ets = create_model("ets", n_jobs=4)
    assert ets._workers(series_pool.PARALLEL_MIN_SERIES - 1) == 1
    assert ets._workers(series_pool.PARALLEL_MIN_SERIES) == 4
    assert create_model("imapa", n_jobs=4)._workers(5000) == 1  # cheap per series
    assert create_model("imapa", n_jobs=4)._workers(50_000) == 4
    assert create_model("ets", n_jobs=1)._workers(50_000) == 1
    assert create_model("arima")._workers(50_000) == default_threads()  # None
    with pytest.raises(Exception, match="n_jobs"):
        create_model("imapa", n_jobs=0)
