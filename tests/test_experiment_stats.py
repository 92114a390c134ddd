"""Significance tests of the experiment runner: DM/HLN against hand-computed values and R's
published output, Wilcoxon and critical difference against scipy / autorank on the same data."""

from __future__ import annotations

import contextlib
import io
import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
from scipy import stats as sps

from salesfusion.errors import InputError
from salesfusion.experiments import ranking as R
from salesfusion.experiments import stats as S

# --- Diebold-Mariano: hand-computed --------------------------------------------------------------

# d = loss_a - loss_b = [2, 3, 1, 0, 4, 2]: mean 2, centred [0, 1, -1, -2, 2, 0],
# gamma_0 = (0+1+1+4+4+0)/6 = 10/6, gamma_1 = (0*1 + 1*(-1) + (-1)(-2) + (-2)2 + 2*0)/6 = -3/6.
LOSS_B = np.array([1.0, 1.0, 2.0, 3.0, 1.0, 2.0])
LOSS_A = LOSS_B + np.array([2.0, 3.0, 1.0, 0.0, 4.0, 2.0])


def test_dm_hand_computed_h1() -> None:
    # V = gamma_0 / T = (10/6)/6 = 5/18; DM = 2 / sqrt(5/18) = 2 sqrt(3.6);
    # HLN factor sqrt((6 + 1 - 2 + 0)/6) = sqrt(5/6); DM* = 2 sqrt(3.6 * 5/6) = 2 sqrt(3).
    result = S.diebold_mariano(LOSS_A, LOSS_B, horizon=1)
    assert result.mean_difference == pytest.approx(2.0)
    assert result.long_run_variance == pytest.approx(10 / 6)
    assert result.statistic_uncorrected == pytest.approx(2 * math.sqrt(3.6))
    assert result.statistic == pytest.approx(2 * math.sqrt(3))
    assert result.p_value == pytest.approx(0.01796288460994396)  # 2 * P(t_5 > 2 sqrt 3)
    assert (result.n, result.horizon, result.variance_fallback) == (6, 1, False)


def test_dm_hand_computed_h2() -> None:
    # Long-run variance gamma_0 + 2 gamma_1 = 10/6 - 1 = 2/3; V = (2/3)/6 = 1/9; DM = 2/(1/3) = 6;
    # HLN factor sqrt((6 + 1 - 4 + 2*1/6)/6) = sqrt(5/9); DM* = 6 sqrt(5)/3 = 2 sqrt(5).
    result = S.diebold_mariano(LOSS_A, LOSS_B, horizon=2)
    assert result.long_run_variance == pytest.approx(2 / 3)
    assert result.statistic_uncorrected == pytest.approx(6.0)
    assert result.statistic == pytest.approx(2 * math.sqrt(5))
    assert result.p_value == pytest.approx(0.006566271827563007)  # 2 * P(t_5 > 2 sqrt 5)
    greater = S.diebold_mariano(LOSS_A, LOSS_B, horizon=2, alternative="greater")
    assert greater.p_value == pytest.approx(0.0032831359137815035)  # B more accurate: d > 0
    less = S.diebold_mariano(LOSS_A, LOSS_B, horizon=2, alternative="less")
    assert less.p_value == pytest.approx(1 - 0.0032831359137815035)
    swapped = S.diebold_mariano(LOSS_B, LOSS_A, horizon=2)
    assert swapped.statistic == pytest.approx(-2 * math.sqrt(5))
    assert swapped.p_value == pytest.approx(result.p_value)


def test_dm_negative_long_run_variance_falls_back_to_lag_zero() -> None:
    # d = [0, 2, 0, 2, 0, 2]: mean 1, gamma_0 = 1, gamma_1 = -5/6, so 1 - 5/3 < 0. Fallback (as R's
    # dm.test): h = 1, V = 1/6, DM = sqrt(6), HLN factor sqrt(5/6), DM* = sqrt(5).
    result = S.diebold_mariano(np.array([0.0, 2, 0, 2, 0, 2]), np.zeros(6), horizon=2)
    assert result.variance_fallback
    assert result.long_run_variance == pytest.approx(1.0)
    assert result.statistic_uncorrected == pytest.approx(math.sqrt(6))
    assert result.statistic == pytest.approx(math.sqrt(5))
    assert result.p_value == pytest.approx(0.07558681842161241)
    assert result.horizon == 2


# --- Diebold-Mariano: R's published worked example -----------------------------------------------

# Out-of-sample one-step residuals of forecast's dm.test example (ets and auto.arima fitted on
# WWWusage[1:80], applied to WWWusage[81:100]), as typed into HypothesisTests.jl's tests.
E_ETS = np.array([0.002241270, -0.000661906, -1.200002613, -4.000218178, 3.799373533,
                  3.401005111, -1.199692125, -0.800490048, -1.200048999, 3.399847229,
                  7.000708948, 2.200989241, -4.800165569, -1.201043375, 3.400167556,
                  3.000709085, 0.400267950, -6.800169207, -2.401259050, 1.200112198])
E_ARIMA = np.array([0.1209998, 8.0622269, -0.9189429, -1.7952436, 5.3431277, 2.0459823,
                    -0.6073261, 0.5516816, -0.7633238, 4.1229472, 5.8785333, 1.2828331,
                    -3.4854233, 1.1971370, 3.1709314, 2.3408457, 0.4962286, -5.9841362,
                    0.1537114, 0.4207951])


def test_dm_matches_r_forecast_published_example() -> None:
    """R forecast::dm.test documentation example, out-of-sample part: the rendered output reads
    ``DM = -0.14392, Forecast horizon = 1, Loss function power = 2, p-value = 0.8871``
    (repository robjhyndman/forecast, file reference/dm.test.md, the pkgdown page
    https://pkg.robjhyndman.com/forecast/reference/dm.test.html). The residual values are from
    JuliaStats/HypothesisTests.jl test/diebold_mariano.jl, whose other expected p-values (one-sided,
    h = 10, absolute loss) are checked too. The residuals are tied to R's page by its
    ``accuracy()`` output for the same fits (ME, RMSE, MAE), asserted first."""
    for errors, (me, rmse, mae) in ((E_ETS, (0.2100836, 3.24835, 2.570459)),
                                    (E_ARIMA, (1.081679, 3.329012, 2.437119))):
        assert errors.mean() == pytest.approx(me, abs=1e-6)
        assert np.sqrt((errors ** 2).mean()) == pytest.approx(rmse, abs=1e-5)
        assert np.abs(errors).mean() == pytest.approx(mae, abs=1e-6)
    squared = S.diebold_mariano(E_ETS ** 2, E_ARIMA ** 2, horizon=1)
    assert squared.statistic == pytest.approx(-0.14392, abs=5e-6)
    assert squared.p_value == pytest.approx(0.8871, abs=5e-5)
    assert S.diebold_mariano(E_ETS ** 2, E_ARIMA ** 2, 1, "greater").p_value == pytest.approx(
        0.5565, abs=5e-5)
    assert S.diebold_mariano(E_ETS ** 2, E_ARIMA ** 2, 1, "less").p_value == pytest.approx(
        0.4435, abs=5e-5)
    h10 = S.diebold_mariano(E_ETS ** 2, E_ARIMA ** 2, horizon=10)
    assert not h10.variance_fallback
    assert h10.p_value == pytest.approx(0.9362, abs=5e-5)
    assert S.diebold_mariano(E_ETS ** 2, E_ARIMA ** 2, 10, "greater").p_value == pytest.approx(
        0.5319, abs=5e-5)
    absolute = S.diebold_mariano(np.abs(E_ETS), np.abs(E_ARIMA), horizon=1)
    assert absolute.p_value == pytest.approx(0.7818, abs=5e-5)
    assert S.diebold_mariano(np.abs(E_ETS), np.abs(E_ARIMA), 1, "less").p_value == pytest.approx(
        0.6091, abs=5e-5)


# --- Diebold-Mariano: edges ----------------------------------------------------------------------

def test_dm_identical_losses_give_statistic_zero_and_p_one() -> None:
    losses = np.array([1.0, 4.0, 2.0, 3.0])
    for alternative in S.ALTERNATIVES:
        result = S.diebold_mariano(losses, losses.copy(), horizon=2, alternative=alternative)
        assert (result.statistic, result.p_value, result.long_run_variance) == (0.0, 1.0, 0.0)


def test_dm_constant_nonzero_differential_is_infinitely_significant() -> None:
    result = S.diebold_mariano(np.full(5, 1.0), np.full(5, 3.0))
    assert result.statistic == -math.inf
    assert result.p_value == 0.0
    assert S.diebold_mariano(np.full(5, 1.0), np.full(5, 3.0), 1, "greater").p_value == 1.0
    tenth = S.diebold_mariano(np.full(7, 0.1), np.zeros(7))  # numpy mean of 7 x 0.1 misses 0.1
    assert (tenth.statistic, tenth.p_value) == (math.inf, 0.0)


@pytest.mark.parametrize(("a", "b", "kwargs", "message"), [
    ([1.0, 2.0], [2.0, 1.0], {}, "at least 3 periods"),
    ([1.0, 2.0, 3.0], [1.0, 2.0], {}, "differ in length"),
    ([1.0, math.nan, 3.0], [1.0, 2.0, 3.0], {}, "non-finite"),
    ([1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 3.0, 3.0], {"horizon": 4}, "needs more than 4 periods"),
    ([1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 3.0, 3.0], {"horizon": 0}, "positive integer"),
    ([1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 3.0, 3.0], {"alternative": "two.sided"}, "alternative"),
])
def test_dm_bad_input(a: list, b: list, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        S.diebold_mariano(np.array(a), np.array(b), **kwargs)


# --- a small panel of forecasts ------------------------------------------------------------------

def make_forecasts(periods: int = 8) -> pl.DataFrame:
    """Two trials of three models on 3 items x 2 markets; C never forecasts item i2 in DE."""
    rng = np.random.default_rng(7)
    rows = []
    for item in ("i0", "i1", "i2"):
        for market in ("GB", "DE"):
            truth = rng.poisson(10, periods).astype(float)
            for trial in (0, 1):
                for step in range(periods):
                    when = date(2024, 1, 1) + timedelta(weeks=step)
                    base = {"dataset": "shop", "trial": trial, "item_id": item, "market": market,
                            "timestamp": when, "window": step // 2, "y_true": truth[step]}
                    spreads = {"A": 1.0, "B": 3.0, "C": 2.0}
                    for model, spread in spreads.items():
                        if model == "C" and (item, market) == ("i2", "DE"):
                            continue
                        rows.append({**base, "model": model,
                                     "y_pred": truth[step] + rng.normal(0, spread)})
    return pl.DataFrame(rows)


def losses_by(frame: pl.DataFrame, a: str, b: str, group: tuple[str, ...],
              power: int) -> dict[tuple, tuple[list[float], list[float]]]:
    """Losses of the rows both models forecast, grouped, by plain Python (not the module)."""
    key = ("dataset", "trial", "item_id", "market", "timestamp", "window")
    by_model: dict[str, dict[tuple, dict]] = {a: {}, b: {}}
    for row in frame.iter_rows(named=True):
        if row["model"] in by_model:
            by_model[row["model"]][tuple(row[k] for k in key)] = row
    out: dict[tuple, tuple[list[float], list[float]]] = {}
    for k, row_a in by_model[a].items():
        if k in by_model[b]:
            lists = out.setdefault(tuple(row_a[g] for g in group), ([], []))
            lists[0].append(abs(row_a["y_pred"] - row_a["y_true"]) ** power)
            lists[1].append(abs(by_model[b][k]["y_pred"] - row_a["y_true"]) ** power)
    return out


@pytest.mark.parametrize(("pair", "loss", "power"), [
    (("A", "B"), "squared", 2), (("A", "C"), "absolute", 1)])
def test_panel_dm_is_dm_on_per_period_mean_losses_of_shared_rows(pair: tuple, loss: str,
                                                                 power: int) -> None:
    frame = make_forecasts()
    groups = losses_by(frame, *pair, ("timestamp",), power)
    periods = sorted(groups)
    mean_a = np.array([np.mean(groups[p][0]) for p in periods])
    mean_b = np.array([np.mean(groups[p][1]) for p in periods])
    expected = S.diebold_mariano(mean_a, mean_b, horizon=2)
    result = S.panel_dm(frame, *pair, horizon=2, loss=loss)
    assert result.n == 8
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.p_value)
    assert result.mean_difference == pytest.approx(float(np.mean(mean_a - mean_b)))
    if pair == ("A", "C"):  # C lacks one series: A's rows there must not count
        all_a = losses_by(frame, "A", "B", ("timestamp",), power)
        assert np.mean(all_a[periods[0]][0]) != pytest.approx(mean_a[0])


def test_panel_dm_needs_one_dataset_and_three_periods() -> None:
    frame = make_forecasts()
    two = pl.concat([frame, frame.with_columns(pl.lit("other").alias("dataset"))])
    with pytest.raises(InputError, match="one dataset at a time"):
        S.panel_dm(two, "A", "B", horizon=1)
    assert S.panel_dm(two, "A", "B", 1, dataset="other").n == 8
    with pytest.raises(S.TooFewObservations, match="at least 3 periods"):
        S.panel_dm(make_forecasts(periods=2), "A", "B", horizon=1)


def test_wilcoxon_equals_scipy_on_per_series_metrics() -> None:
    frame = make_forecasts()
    for metric, power in (("MAE", 1), ("RMSE", 2)):
        groups = losses_by(frame, "A", "C", ("dataset", "item_id", "market"), power)
        keys = sorted(groups)
        a = np.array([np.mean(groups[k][0]) ** (1 / power) for k in keys])
        c = np.array([np.mean(groups[k][1]) ** (1 / power) for k in keys])
        expected = sps.wilcoxon(a, c)
        result = S.wilcoxon_across_series(frame, "A", "C", metric=metric)
        assert result.n_series == 5  # six series, C lacks one
        assert result.statistic == pytest.approx(expected.statistic)
        assert result.p_value == pytest.approx(expected.pvalue)
        assert (result.a_better, result.b_better, result.tied) == (
            int((a < c).sum()), int((a > c).sum()), 0)
        assert result.a_better + result.b_better == 5


def test_identical_forecasts_are_not_significant() -> None:
    frame = make_forecasts()
    twin = frame.filter(pl.col("model") == "A").with_columns(pl.lit("A2").alias("model"))
    frame = pl.concat([frame, twin])
    wilcoxon = S.wilcoxon_across_series(frame, "A", "A2")
    assert (wilcoxon.statistic, wilcoxon.p_value, wilcoxon.tied, wilcoxon.n_series) == (
        0.0, 1.0, 6, 6)
    dm = S.panel_dm(frame, "A", "A2", horizon=2)
    assert (dm.statistic, dm.p_value) == (0.0, 1.0)


def test_forecast_frame_errors() -> None:
    frame = make_forecasts()
    with pytest.raises(InputError, match="unknown model 'Z'"):
        S.panel_dm(frame, "A", "Z", horizon=1)
    with pytest.raises(InputError, match="unknown model 'Z'"):
        S.wilcoxon_across_series(frame, "Z", "A")
    with pytest.raises(InputError, match="with itself"):
        S.wilcoxon_across_series(frame, "A", "A")
    with pytest.raises(InputError, match="lacks column"):
        S.panel_dm(frame.drop("window"), "A", "B", horizon=1)
    with pytest.raises(InputError, match="rows sharing one"):
        S.panel_dm(pl.concat([frame, frame.head(1)]), "A", "B", horizon=1)
    shifted = frame.with_columns(
        pl.when((pl.col("model") == "B") & (pl.col("item_id") == "i0"))
        .then(pl.col("y_true") + 1).otherwise(pl.col("y_true")).alias("y_true"))
    with pytest.raises(InputError, match="disagree on y_true"):
        S.wilcoxon_across_series(shifted, "A", "B")
    holed = frame.with_columns(pl.when(pl.col("window") == 1).then(None)
                               .otherwise(pl.col("y_pred")).alias("y_pred"))
    with pytest.raises(InputError, match="non-finite"):
        S.panel_dm(holed, "A", "B", horizon=1)
    with pytest.raises(InputError, match="metric"):
        S.wilcoxon_across_series(frame, "A", "B", metric="MAPE")


# --- critical difference -------------------------------------------------------------------------

def scores_frame(matrix: np.ndarray, models: list[str]) -> pl.DataFrame:
    return pl.DataFrame([{"dataset": f"d{i}", "model": m, "value": float(matrix[i, j])}
                         for i in range(matrix.shape[0]) for j, m in enumerate(models)])


def test_cd_hand_checkable_strict_order() -> None:
    # 3 models x 5 datasets, A < B < C everywhere: ranks 1, 2, 3; Friedman
    # 12*5/(3*4) * ((1-2)^2 + 0 + (3-2)^2) = 10 on 2 df, p = exp(-5);
    # CD = 2.343 * sqrt(3*4 / (6*5)) = 1.4818 (Demsar's q_0.05 for k = 3 is 2.343).
    matrix = np.array([[0.1, 0.5, 0.9], [1.0, 2.0, 3.0], [5.0, 6.0, 7.0], [0.2, 0.3, 0.4],
                       [3.0, 3.5, 9.0]])
    result = R.critical_difference(scores_frame(matrix, ["A", "B", "C"]))
    assert result.method == "autorank"
    assert result.mean_ranks == {"A": 1.0, "B": 2.0, "C": 3.0}
    assert list(result.mean_ranks) == ["A", "B", "C"]
    assert result.friedman_statistic == pytest.approx(10.0)
    assert result.friedman_p_value == pytest.approx(math.exp(-5))
    assert result.critical_difference == pytest.approx(2.343 * math.sqrt(12 / 30), abs=1e-3)
    assert result.groups == [("A", "B"), ("B", "C")]  # A and C are 2 > CD apart
    higher = R.critical_difference(scores_frame(-matrix, ["A", "B", "C"]), lower_is_better=False)
    assert higher.mean_ranks == result.mean_ranks


def test_cd_equals_autorank_and_demsar_path_agrees() -> None:
    from autorank import autorank
    rng = np.random.default_rng(3)
    models = ["m1", "m2", "m3", "m4"]
    matrix = np.round(rng.normal(size=(8, 4)) + np.array([0.0, 0.3, 0.6, 1.5]), 1)
    matrix[2, 1] = matrix[2, 0]  # a tie, so both use average ranks
    frame = pd.DataFrame(matrix, columns=models)
    with contextlib.redirect_stdout(io.StringIO()):
        reference = autorank(frame, alpha=0.05, order="ascending", force_mode="nonparametric")
    result = R.critical_difference(scores_frame(matrix, models).to_pandas())
    assert result.method == "autorank"
    for model in models:
        assert result.mean_ranks[model] == pytest.approx(reference.rankdf.loc[model, "meanrank"])
    assert result.critical_difference == pytest.approx(reference.cd)
    assert result.friedman_p_value == pytest.approx(reference.pvalue)
    by_hand = R._demsar(frame, 0.05)  # the path used below autorank's minimum
    assert by_hand.mean_ranks == pytest.approx(result.mean_ranks)
    assert by_hand.critical_difference == pytest.approx(result.critical_difference)
    assert by_hand.friedman_statistic == pytest.approx(sps.friedmanchisquare(*matrix.T).statistic)
    assert by_hand.friedman_p_value == pytest.approx(result.friedman_p_value)


def test_cd_two_models_two_blocks() -> None:
    # Ranks 1, 2 in both blocks; Friedman 12*2/(2*3) * (0.25 + 0.25) = 2 on 1 df, p = 0.1573;
    # q_0.05 for k = 2 is z_0.975 = 1.95996, CD = 1.95996 * sqrt(2*3 / (6*2)) = 1.38590 > 1.
    result = R.critical_difference(scores_frame(np.array([[1.0, 2.0], [3.0, 4.0]]), ["A", "B"]))
    assert result.method == "demsar"
    assert result.mean_ranks == {"A": 1.0, "B": 2.0}
    assert result.friedman_statistic == pytest.approx(2.0)
    assert result.friedman_p_value == pytest.approx(0.15729920705028105)
    assert result.critical_difference == pytest.approx(1.385903824349678, abs=1e-6)
    assert result.groups == [("A", "B")]


def test_cd_blocks_average_trials_or_count_them() -> None:
    rows = []
    for dataset in ("d0", "d1"):
        for trial in range(3):
            # B beats A in trial 0 only, by less than A beats B in the others.
            values = {"A": 1.0 if trial else 3.0, "B": 2.0, "C": 5.0}
            rows += [{"dataset": dataset, "trial": trial, "model": m, "value": v}
                     for m, v in values.items()]
    scores = pl.DataFrame(rows)
    per_dataset = R.critical_difference(scores)  # trial means A 5/3 < B 2 < C 5
    assert (per_dataset.n_blocks, per_dataset.mean_ranks) == (2, {"A": 1.0, "B": 2.0, "C": 3.0})
    per_trial = R.critical_difference(scores, blocks="dataset_trial")
    assert per_trial.n_blocks == 6
    assert per_trial.mean_ranks == pytest.approx({"A": 4 / 3, "B": 5 / 3, "C": 3.0})


@pytest.mark.parametrize(("rows", "message"), [
    ([("d0", "A", 1.0), ("d1", "A", 2.0)], "2\\+ models"),
    ([("d0", "A", 1.0), ("d0", "B", 2.0)], "2\\+ blocks"),
    ([("d0", "A", 1.0), ("d0", "B", 2.0), ("d1", "A", 1.0)], "no score for block"),
    ([("d0", "A", 1.0), ("d0", "B", math.nan), ("d1", "A", 1.0), ("d1", "B", 1.0)], "non-finite"),
    ([("d0", "A", 1.0), ("d0", "A", 2.0), ("d1", "A", 1.0), ("d1", "B", 1.0)], "repeat"),
])
def test_cd_bad_input(rows: list, message: str) -> None:
    scores = pl.DataFrame(rows, schema=["dataset", "model", "value"], orient="row")
    with pytest.raises(InputError, match=message):
        R.critical_difference(scores)


# --- significance table --------------------------------------------------------------------------

def test_significance_table_pairs_baseline_and_notes() -> None:
    frame = make_forecasts()
    tiny = make_forecasts(periods=2).with_columns(pl.lit("tiny").alias("dataset"))
    both = pl.concat([frame, tiny])
    table = S.significance_table(both, ["A", "B", "C"], horizon=2)
    assert table.height == 6  # 2 datasets x 3 pairs
    row = table.filter((pl.col("dataset") == "shop") & (pl.col("model_a") == "A")
                       & (pl.col("model_b") == "C")).row(0, named=True)
    dm = S.panel_dm(frame, "A", "C", horizon=2)
    wx = S.wilcoxon_across_series(frame, "A", "C")
    assert row["dm_statistic"] == pytest.approx(dm.statistic)
    assert row["dm_p_value"] == pytest.approx(dm.p_value)
    assert row["wilcoxon_p_value"] == pytest.approx(wx.p_value)
    assert (row["n_series"], row["a_better"], row["note"]) == (5, wx.a_better, None)
    short = table.filter(pl.col("dataset") == "tiny").row(0, named=True)
    assert short["dm_p_value"] is None and "at least 3 periods" in short["note"]
    assert short["wilcoxon_p_value"] is not None
    against = S.significance_table(frame, ["A", "B", "C"], horizon=2, baseline="B")
    assert against.select("model_a", "model_b").rows() == [("A", "B"), ("C", "B")]
    with pytest.raises(InputError, match="unknown model 'Z'"):
        S.significance_table(frame, ["A", "Z"], horizon=2)
