"""Per-segment error reports on a small forecasts frame whose numbers are worked out by hand."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from salesfusion.errors import InputError
from salesfusion.evaluation.backtest import metrics_table
from salesfusion.explain.errors import central_intervals, segment_errors
from salesfusion.explain.segments import Segments

W1, W2 = datetime(2024, 1, 8), datetime(2024, 1, 15)


def forecasts() -> pl.DataFrame:
    """Model "m" (with q0.1 / q0.9 / q0.25 / q0.75) and "n" (points only), one window of two
    steps, markets UK (items a, b) and DE (item c).

    m, UK: y = 10, 20, 0, 5; yhat = 12, 15, 1, 5 -> |e| = 2, 5, 1, 0 (sum 8), e = +2 -5 +1 0
      (sum -2), sum y = 35: WAPE 800/35, bias -200/35, MAE 2.
      80 % interval [8,14] [10,18] [0,2] [6,9]: 10 in, 20 out, 0 in, 5 out -> 0.5.
      50 % interval [11,13] [14,16] [0,1] [4,6]: out, out, in, in -> 0.5.
    m, DE: y = 4, 6; yhat = 4, 3 -> |e| 0, 3; WAPE 30, bias -30, MAE 1.5.
      80 % [3,5] [2,7]: both in -> 1.0;  50 % [4,4] [5,5]: in, out -> 0.5.
    n: yhat = y + 1 everywhere -> UK: WAPE 400/35, bias +400/35; DE: WAPE 20, bias +20.
    """
    base = {"item_id": ["a", "a", "b", "b", "c", "c"],
            "market": ["UK", "UK", "UK", "UK", "DE", "DE"],
            "timestamp": [W1, W2] * 3, "window": [0] * 6,
            "y_true": [10.0, 20.0, 0.0, 5.0, 4.0, 6.0]}
    m = pl.DataFrame({**base, "model": ["m"] * 6, "y_pred": [12.0, 15.0, 1.0, 5.0, 4.0, 3.0],
                      "q0.1": [8.0, 10.0, 0.0, 6.0, 3.0, 2.0],
                      "q0.9": [14.0, 18.0, 2.0, 9.0, 5.0, 7.0],
                      "q0.25": [11.0, 14.0, 0.0, 4.0, 4.0, 5.0],
                      "q0.75": [13.0, 16.0, 1.0, 6.0, 4.0, 5.0]})
    n = pl.DataFrame({**base, "model": ["n"] * 6,
                      "y_pred": [y + 1 for y in base["y_true"]]})
    return pl.concat([m, n], how="diagonal")


def row(frame: pl.DataFrame, **keys: object) -> dict:
    picked = frame.filter(*[pl.col(k) == v for k, v in keys.items()])
    assert picked.height == 1
    return picked.row(0, named=True)


def test_per_market_numbers_are_the_hand_computed_ones():
    out = segment_errors(forecasts())  # no segments: the segment is the market
    assert out.columns == ["model", "segment", "wape", "bias", "mae", "n_series", "n_rows",
                           "actual_total", "coverage_80", "coverage_50"]
    uk = row(out, model="m", segment="UK")
    assert uk["wape"] == pytest.approx(800 / 35) and uk["bias"] == pytest.approx(-200 / 35)
    assert uk["mae"] == pytest.approx(2.0)
    assert (uk["n_series"], uk["n_rows"], uk["actual_total"]) == (2, 4, 35.0)
    assert (uk["coverage_80"], uk["coverage_50"]) == (0.5, 0.5)
    de = row(out, model="m", segment="DE")
    assert (de["wape"], de["bias"], de["mae"]) == pytest.approx((30.0, -30.0, 1.5))
    assert (de["coverage_80"], de["coverage_50"]) == (1.0, 0.5)
    n_uk = row(out, model="n", segment="UK")
    assert (n_uk["wape"], n_uk["bias"]) == pytest.approx((400 / 35, 400 / 35))
    # "n" has no quantiles: its coverage is unknown, not borrowed from "m"'s columns.
    assert n_uk["coverage_80"] is None and n_uk["coverage_50"] is None


def test_segments_step_and_the_metrics_table_agree():
    segments = Segments(pl.DataFrame({"market": ["UK"], "segment": ["mature"]}), 1, None, None,
                        "declared")
    out = segment_errors(forecasts(), segments)
    assert set(out["segment"]) == {"mature", "unknown"}  # DE is not in the segments
    assert row(out, model="m", segment="unknown")["wape"] == pytest.approx(30.0)
    # WAPE is the project's: the backtest metrics table gives the same per market.
    table = metrics_table(forecasts().drop("q0.25", "q0.75"))
    wape = row(table, model="m", window="all", segment="UK", metric="WAPE")["value"]
    assert row(out, model="m", segment="mature")["wape"] == pytest.approx(wape)
    # Steps from the window: step 1 is W1. m, step 1: y 10, 0, 4; yhat 12, 1, 4 -> WAPE 3/14.
    steps = segment_errors(forecasts(), by=["step"])
    first = row(steps, model="m", step=1)
    assert first["wape"] == pytest.approx(300 / 14) and first["bias"] == pytest.approx(300 / 14)
    assert first["coverage_80"] == 1.0
    assert row(steps, model="m", step=2)["coverage_80"] == pytest.approx(1 / 3)
    overall = segment_errors(forecasts(), by=[], quantiles=False)
    assert overall.columns == ["model", "wape", "bias", "mae", "n_series", "n_rows",
                               "actual_total"]
    assert row(overall, model="m")["wape"] == pytest.approx(1100 / 45)


def test_plain_y_is_accepted_and_zero_actuals_give_null_ratios():
    frame = forecasts().rename({"y_true": "y"})
    assert segment_errors(frame)["wape"].equals(segment_errors(forecasts())["wape"])
    zeros = forecasts().with_columns(pl.lit(0.0).alias("y_true"))  # n still predicts 5, 7
    out = row(segment_errors(zeros), model="n", segment="DE")
    assert out["wape"] is None and out["bias"] is None and out["mae"] == pytest.approx(6.0)


def test_bad_inputs_name_the_column():
    with pytest.raises(InputError, match="lack column\\(s\\) y_pred"):
        segment_errors(forecasts().drop("y_pred"))
    with pytest.raises(InputError, match="lack column\\(s\\) y_true"):
        segment_errors(forecasts().drop("y_true"))
    with pytest.raises(InputError, match="by column\\(s\\) channel not in"):
        segment_errors(forecasts(), by=["segment", "channel"])
    with pytest.raises(InputError, match="needs a step or a window"):
        segment_errors(forecasts().drop("window"), by=["step"])


def test_central_intervals_pair_mirrored_levels_only():
    assert central_intervals(["q0.9", "q0.1", "q0.5", "q0.05", "y_pred", "q0.75", "q0.25"]) == [
        ("q0.1", "q0.9", 80), ("q0.25", "q0.75", 50)]


def test_errors_by_market_equal_errors_by_segment_without_segments():
    """Without segments the segment is the market, so ``by=("market",)`` gives the same."""
    by_segment = segment_errors(forecasts()).rename({"segment": "market"})
    assert segment_errors(forecasts(), by=("market",)).equals(by_segment)
