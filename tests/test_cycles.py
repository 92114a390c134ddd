"""Demand cycles: planted periods are found, noise is not, the synthetic shop's year is found."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from scipy.signal import lfilter

from salesfusion.data.panel import Panel
from salesfusion.datasets.synthetic import synthetic
from salesfusion.errors import InputError
from salesfusion.explain.cycles import market_cycles

START = datetime(2021, 1, 4)  # a Monday


def _panel(log_means: dict[str, np.ndarray], items: int = 5, seed: int = 0,
           poisson: bool = True) -> Panel:
    """A weekly panel: ``items`` series per market, y Poisson around exp(log mean) (or exactly
    exp(log mean) when not ``poisson``)."""
    rng = np.random.default_rng(seed)
    frames = []
    for market, log_mean in log_means.items():
        weeks = [START + timedelta(weeks=w) for w in range(log_mean.size)]
        for item in range(items):
            y = rng.poisson(np.exp(log_mean)) if poisson else np.exp(log_mean)
            frames.append(pl.DataFrame({"item_id": f"I{item}", "market": market,
                                        "timestamp": weeks, "y": y.astype(float)}))
    data = pl.concat(frames).with_columns(pl.col("timestamp").cast(pl.Datetime("us")))
    return Panel(data=data.sort("item_id", "market", "timestamp"), freq="W")


def _planted(seed: int = 0) -> Panel:
    t = np.arange(156)
    base = 2.0 + 0.008 * t  # a steady growth trend in every market
    return _panel({"A": base + 0.3 * np.sin(2 * np.pi * t / 13),
                   "B": base + 0.3 * np.sin(2 * np.pi * t / 26),
                   "C": base}, seed=seed)


def test_planted_cycles_are_found_where_they_are_and_nowhere_else() -> None:
    report = market_cycles(_planted(), alpha=0.05, surrogates=300, seed=0)
    found = report.periods.filter(pl.col("significant"))
    for market, truth in (("A", 13), ("B", 26)):
        periods = found.filter(pl.col("segment") == market)["period"].to_list()
        assert periods and all(abs(p - truth) <= 1 for p in periods), (market, periods)
    assert found.filter(pl.col("segment") == "C").is_empty()  # the trend is no long cycle
    a = found.filter(pl.col("segment") == "A").row(0, named=True)
    assert a["period_days"] == pytest.approx(7 * a["period"])
    assert a["acf"] > 0.3 and a["strength"] > 0.5 and 0.2 < a["power_share"] <= 1
    # Comparison: the 13-week cycle belongs to A only, and is far larger there than in B or C.
    short = report.comparison.filter((pl.col("cycle") - 13).abs() <= 1)
    assert short.filter(pl.col("has_cycle"))["segment"].to_list() == ["A"]
    amplitude = dict(short.select("segment", "amplitude").iter_rows())
    assert 0.15 < amplitude["A"] < 0.35 and amplitude["B"] < 0.1 and amplitude["C"] < 0.1
    assert set(report.series["segment"].unique()) == {"A", "B", "C"}
    trendless = report.series.group_by("segment").agg(pl.col("detrended").mean().abs())
    assert trendless["detrended"].max() < 1e-9


def test_false_positive_rate_of_red_noise_is_near_alpha() -> None:
    # 100 markets of pure AR(1) noise (each tested on its own, like 100 seeds): the share with
    # any significant cycle must stay near alpha, not near what a white-noise test flags on red
    # noise. (Over 400 such markets the rate was 4.3%; 10 of 100 is 2.6 sd above 4.5.)
    rng = np.random.default_rng(7)
    noise = lfilter([1.0], [1.0, -0.6], rng.standard_normal((100, 204)), axis=1)[:, 100:]
    panel = _panel({f"M{i:02d}": 4.0 + 0.3 * row for i, row in enumerate(noise)}, items=1,
                   poisson=False)
    report = market_cycles(panel, alpha=0.05, surrogates=200, seed=1)
    flagged = report.periods.filter(pl.col("significant"))["segment"].n_unique()
    assert flagged <= 2 * 0.05 * 100


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Panel:
    return synthetic(tmp_path_factory.mktemp("cycles"), n_items=60, n_weeks=156,
                     image_size=16).panel()


def test_synthetic_shop_yearly_cycle_in_every_market_with_one_phase(shop: Panel) -> None:
    report = market_cycles(shop, seed=0)
    assert set(report.segments["segment"]) == {"UK", "DE", "BR", "TH"}
    yearly = report.periods.filter(pl.col("significant") & ((pl.col("period") - 52).abs() <= 4))
    assert set(yearly["segment"]) == {"UK", "DE", "BR", "TH"}
    # Emerging markets grow ~1% a week: the growth must not come back as a long cycle.
    assert report.periods.filter(pl.col("significant") & (pl.col("period") > 60)).is_empty()
    year = report.comparison.filter((pl.col("cycle") - 52).abs() <= 4)
    assert year["has_cycle"].all() and year.height == 4
    # The generator's sin(2 pi week / 52) crests at week 13 of 2022 in every market; log1p
    # compresses the planted 0.3, so the amplitude is below it but clearly there.
    crest = datetime(2022, 1, 3) + timedelta(weeks=13)
    assert all(abs((p - crest).days) <= 21 for p in year["first_peak"])
    assert all(0.1 < a <= 0.3 for a in year["amplitude"])


def test_segments_from_the_markets_table(shop: Panel) -> None:
    report = market_cycles(shop, segment="maturity", surrogates=200)
    yearly = report.periods.filter(pl.col("significant") & ((pl.col("period") - 52).abs() <= 4))
    assert set(yearly["segment"]) == {"mature", "emerging"}
    assert report.segments["n_series"].to_list() == [120, 120]  # two markets of 60 items each
    with pytest.raises(InputError, match="region"):
        market_cycles(shop, segment="region")


def test_too_short_panel_and_bad_settings_are_input_errors() -> None:
    short = _panel({"A": np.full(6, 2.0)})
    with pytest.raises(InputError, match="6 periods") as error:
        market_cycles(short)
    assert "\n" not in str(error.value)
    panel = _planted()
    with pytest.raises(InputError, match="max_period"):
        market_cycles(panel, max_period=100)  # 156 weeks: a 100-week cycle cannot repeat
    with pytest.raises(InputError, match="surrogates"):
        market_cycles(panel, surrogates=10)  # p can never fall below 1/11 > 0.05


def test_same_seed_same_tables_other_seed_other_p_values() -> None:
    panel = _planted(seed=3)
    first = market_cycles(panel, surrogates=100, seed=5)
    again = market_cycles(panel, surrogates=100, seed=5)
    for name in ("periods", "series", "comparison", "segments"):
        assert getattr(first, name).equals(getattr(again, name)), name
    other = market_cycles(panel, surrogates=100, seed=6)
    assert not first.periods["p_value"].equals(other.periods["p_value"])
    assert first.periods["period"].equals(other.periods["period"])  # the data decide periods
