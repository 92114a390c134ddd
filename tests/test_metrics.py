import math

import polars as pl
import pytest

from salesfusion.scoring.metrics import evaluate, score

Y = [2.0, 0.0, 4.0, 6.0]
F = [3.0, 1.0, 4.0, 3.0]


def test_point_metrics_match_hand_computation():
    m = score(Y, F, y_last=3.0, mase_scale=2.0)
    # errors 1, 1, 0, 3
    assert m["MAE"] == pytest.approx(5 / 4)
    assert m["MSE"] == pytest.approx(11 / 4)
    assert m["RMSE"] == pytest.approx(math.sqrt(11 / 4))
    # MAPE skips the zero actual: (1/2 + 0/4 + 3/6) / 3
    assert m["MAPE"] == pytest.approx(100 * (0.5 + 0 + 0.5) / 3)
    # sMAPE: 200*1/5, 200*1/1, 0, 200*3/9
    assert m["sMAPE"] == pytest.approx((40 + 200 + 0 + 200 / 3) / 4)
    assert m["WAPE"] == pytest.approx(100 * 5 / 12)
    assert m["MASE"] == pytest.approx(5 / 4 / 2)
    # mean 3, SST = 1 + 9 + 1 + 9 = 20, SSE = 11
    assert m["R2"] == pytest.approx(1 - 11 / 20)


def test_direction_metrics():
    # last value 3: actual went up for 4 and 6; forecast says up for 4? no (4 > 3 yes), 3 no
    m = score(Y, F, y_last=3.0)
    predicted_up = [f > 3 for f in F]  # F, F, T, F
    actual_up = [y > 3 for y in Y]  # F, F, T, T
    assert m["direction_accuracy"] == pytest.approx(
        sum(p == a for p, a in zip(predicted_up, actual_up, strict=True)) / 4)
    # scores f - 3: 0, -2, 1, 0 ; positives (up) have scores 1 and 0; negatives 0 and -2
    # pairs (pos, neg): (1,0)=1, (1,-2)=1, (0,0)=0.5, (0,-2)=1 -> 3.5 / 4
    assert m["direction_AUC"] == pytest.approx(3.5 / 4)


def test_zero_handling():
    m = score([0.0, 0.0], [0.0, 1.0], y_last=0.0, mase_scale=0.0)
    assert m["MAPE"] is None  # every actual is zero
    assert m["WAPE"] is None
    assert m["sMAPE"] == pytest.approx((0 + 200) / 2)  # 0/0 counts as perfect
    assert m["MASE"] is None  # zero scale is skipped
    assert m["R2"] is None  # constant actuals
    assert m["direction_AUC"] is None  # one class only


def test_quantile_metrics():
    y = [1.0, 5.0, 10.0]
    lo, hi = [0.0, 6.0, 8.0], [2.0, 9.0, 12.0]
    m = score(y, [1.0, 7.0, 10.0], quantiles={0.1: lo, 0.9: hi})
    # pinball 0.1: y-q = 1, -1, 2 -> 0.1, 0.9, 0.2 ; pinball 0.9: y-q = -1, -4, -2 -> .1, .4, .2
    expected = ((0.1 + 0.9 + 0.2) + (0.1 + 0.4 + 0.2)) / 2 / 3
    assert m["pinball"] == pytest.approx(expected)
    assert m["coverage"] == pytest.approx(2 / 3)


def test_grouped_evaluation_per_market():
    frame = pl.DataFrame({"market": ["A", "A", "B"], "y_true": [1.0, 3.0, 10.0],
                          "y_pred": [2.0, 3.0, 5.0]})
    result = evaluate(frame, ["market"]).filter(pl.col("metric") == "WAPE").sort("market")
    assert result["value"].to_list() == pytest.approx([100 * 1 / 4, 100 * 5 / 10])


def test_bias_pct_is_the_share_the_total_misses():
    m = score(Y, F)
    assert m["bias_pct"] == pytest.approx(100 * (11 / 12 - 1))
    assert score([0.0, 0.0], [1.0, 2.0])["bias_pct"] is None  # no actual demand: undefined


def test_rmsse_is_m5s_per_series_then_averaged():
    # Series a: errors 1, 1 scaled by 2 -> sqrt(mean(1/4, 1/4)) = 0.5; series b: errors 0, 3
    # scaled by 3 -> sqrt(mean(0, 1)) = sqrt(0.5); series c has a flat history (scale 0).
    frame = pl.DataFrame({"item_id": ["a", "a", "b", "b", "c"], "market": ["X"] * 5,
                          "y_true": [2.0, 0.0, 4.0, 6.0, 5.0], "y_pred": [3.0, 1.0, 4.0, 3.0, 1.0],
                          "rmsse_scale": [2.0, 2.0, 3.0, 3.0, 0.0]})
    overall = dict(evaluate(frame).select("metric", "value").iter_rows())
    assert overall["RMSSE"] == pytest.approx((0.5 + math.sqrt(0.5)) / 2)
    per_item = dict(evaluate(frame, ["item_id"]).filter(pl.col("metric") == "RMSSE")
                    .select("item_id", "value").iter_rows())
    assert per_item["a"] == pytest.approx(0.5)
    assert per_item["b"] == pytest.approx(math.sqrt(0.5))
    assert per_item["c"] is None


def test_wrmsse_weights_each_series_rmsse_by_its_recent_revenue():
    # The RMSSEs of the last test (a: 0.5, b: sqrt(0.5)) weighted 3:1 by revenue; c has no
    # scale and drops out of both, as in M5.
    frame = pl.DataFrame({"item_id": ["a", "a", "b", "b", "c"], "market": ["X"] * 5,
                          "y_true": [2.0, 0.0, 4.0, 6.0, 5.0], "y_pred": [3.0, 1.0, 4.0, 3.0, 1.0],
                          "rmsse_scale": [2.0, 2.0, 3.0, 3.0, 0.0],
                          "revenue_weight": [300.0, 300.0, 100.0, 100.0, 1e6]})
    overall = dict(evaluate(frame).select("metric", "value").iter_rows())
    assert overall["WRMSSE"] == pytest.approx((3 * 0.5 + math.sqrt(0.5)) / 4)
    assert overall["RMSSE"] == pytest.approx((0.5 + math.sqrt(0.5)) / 2)
    # Without revenue (no prices in the data) there is no weight and no WRMSSE.
    assert dict(evaluate(frame.drop("revenue_weight")).select("metric", "value")
                .iter_rows())["WRMSSE"] is None


def test_a_backtest_weights_series_by_revenue_over_the_last_horizon(shop_panel):
    from salesfusion.scoring.scales import origin_context

    history = shop_panel.until(shop_panel.periods.sort()[-5])
    context = origin_context(history, 3)
    last = history.periods.sort().tail(3)
    expected = (history.data.filter(pl.col("timestamp").is_in(last.implode()))
                .group_by("item_id", "market").agg(pl.col("revenue").sum().alias("expected")))
    both = context.join(expected, on=["item_id", "market"], how="inner")
    assert both.height == context.height > 0
    assert (both["revenue_weight"] - both["expected"]).abs().max() < 1e-6
    assert both["revenue_weight"].sum() > 0


def test_rmsse_does_not_reward_a_median_that_under_forecasts():
    """On intermittent demand the median (0) beats the mean on WAPE, but RMSSE and bias show
    that it under-forecasts."""
    actual = [0.0, 0.0, 0.0, 10.0] * 5
    scale = [5.0] * len(actual)
    median = score(actual, [0.0] * len(actual), rmsse_scale=scale)
    mean = score(actual, [2.5] * len(actual), rmsse_scale=scale)
    assert median["WAPE"] < mean["WAPE"]
    assert mean["RMSSE"] < median["RMSSE"]
    assert median["bias_pct"] == pytest.approx(-100.0) and mean["bias_pct"] == pytest.approx(0.0)
