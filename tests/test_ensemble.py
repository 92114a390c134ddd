"""The validation-weighted launch ensemble."""

from datetime import date, datetime, timedelta

import polars as pl
import pytest

from salesfusion.data.launch_splits import LaunchProtocol
from salesfusion.data.panel import Panel
from salesfusion.errors import InputError
from salesfusion.evaluation.runner import backtest_models
from salesfusion.models.base import Forecaster
from salesfusion.models.ensemble import _simplex
from salesfusion.models.registry import create_model
from tests.test_launch import _planted_panel

MEMBERS = ["median_launch_curve", "lightgbm_launch"]
START = datetime(2024, 1, 1)


def test_simplex_weights_sum_to_one_on_the_grid():
    grid = _simplex(3, 0.25)
    assert len(grid) == 15 and all(abs(w.sum() - 1) < 1e-12 and (w >= 0).all() for w in grid)


def test_weights_favour_the_member_that_knows_the_planted_attribute():
    panel = _planted_panel()
    model = create_model("launch_ensemble", members=MEMBERS, horizon=4).fit(panel)
    assert model._weights.sum() == pytest.approx(1.0)
    assert model._weights[1] > model._weights[0]  # lightgbm_launch sees the item's size
    assert any(note.startswith("weights {") for note in model.notes)
    run = backtest_models(panel, ["median_launch_curve", "launch_ensemble"],
                          LaunchProtocol(horizon=4, cutoffs=(date(2024, 7, 29),)))
    wape = {r["model"]: r["value"] for r in run.metrics.filter(
        (pl.col("metric") == "WAPE") & (pl.col("window") == "all")
        & (pl.col("segment") == "all")).iter_rows(named=True)}
    assert wape["launch_ensemble"] < 0.8 * wape["median_launch_curve"], wape


def test_forecast_is_the_weighted_sum_and_survives_save_load(tmp_path):
    panel = _planted_panel()
    model = create_model("launch_ensemble", members=MEMBERS, horizon=4).fit(panel)
    launches = pl.DataFrame({"item_id": ["I80", "I81"], "market": ["GB", "DE"],
                             "launch": [date(2025, 6, 4)] * 2})
    combined = model.predict_launch(launches, horizon=4)
    parts = [m.predict_launch(launches, 4)["y_pred"].to_numpy() for m in model._fitted_members]
    expected = model._weights[0] * parts[0] + model._weights[1] * parts[1]
    assert combined["y_pred"].to_numpy() == pytest.approx(expected)
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "member_1" / "manifest.json").is_file()
    assert Forecaster.load(tmp_path / "m").predict_launch(launches, horizon=4).equals(combined)
    (tmp_path / "m" / "member_1" / "booster.txt").write_text("tampered")
    with pytest.raises(InputError, match=r"member_1/booster\.txt"):
        Forecaster.load(tmp_path / "m")


def test_members_must_forecast_launches():
    with pytest.raises(InputError, match="member 'naive' cannot forecast from a launch date"):
        create_model("launch_ensemble", members=["naive"])


def test_rolling_ensemble_weighs_the_member_right_on_the_last_periods():
    # Every series steps to a new level 6 periods before the end: the last value (naive) is
    # right from then on, a moving average lags behind.
    rows = [{"item_id": f"I{i}", "market": "GB", "timestamp": START + timedelta(weeks=w),
             "y": float(10 + i + (30 if w >= 24 else 0))}
            for i in range(6) for w in range(30)]
    panel = Panel(data=pl.DataFrame(rows), freq="W")
    model = create_model("ensemble", members=["moving_average", "naive"], horizon=4).fit(panel)
    assert model._weights[1] == pytest.approx(1.0)
    assert "chosen on the last 3 runs of 4 periods" in " ".join(model.notes)
    single = create_model("ensemble", members=["moving_average", "naive"], horizon=4,
                          validation_folds=1).fit(panel)
    assert "chosen on the last 4 periods" in " ".join(single.notes)
    forecast = model.predict(4)
    assert forecast["y_pred"].to_numpy() == pytest.approx(
        panel.data.filter(pl.col("timestamp") == pl.col("timestamp").max())
        .sort("item_id")["y"].to_numpy().repeat(4))


def test_ensembles_do_not_nest():
    with pytest.raises(InputError, match="ensembles do not nest"):
        create_model("ensemble", members=["naive", "launch_ensemble"])


def _launched_together() -> Panel:
    """Items that all start in the panel's first week: no later launch to hold out."""
    rows = [{"item_id": f"N{i}", "market": "GB", "timestamp": START + timedelta(weeks=w),
             "y": float(1 + (i + w) % 4)} for i in range(6) for w in range(8)]
    return Panel(data=pl.DataFrame(rows).sort("item_id", "market", "timestamp"), freq="W")


def test_with_nothing_to_weigh_on_the_fallback_member_is_used_and_a_warning_says_so():
    panel = _launched_together()
    launches = pl.DataFrame({"item_id": ["NEW"], "market": ["GB"], "launch": [date(2024, 5, 6)]})
    members = ["mean_launch_curve", "median_launch_curve"]
    chosen = create_model("launch_ensemble", members=members, horizon=4,
                          fallback_member="median_launch_curve").fit(panel)
    assert chosen._weights.tolist() == [0.0, 1.0]
    assert any(n.startswith("warning: nothing to weigh the members on: member "
                            "'median_launch_curve' alone") for n in chosen.notes), chosen.notes
    alone = create_model("median_launch_curve", horizon=4).fit(panel)
    assert chosen.predict_launch(launches, 4)["y_pred"].to_list() == pytest.approx(
        alone.predict_launch(launches, 4)["y_pred"].to_list())
    equal = create_model("launch_ensemble", members=members, horizon=4).fit(panel)
    assert equal._weights.tolist() == [0.5, 0.5]
    assert any(n.startswith("warning: nothing to weigh the members on: equal weights")
               for n in equal.notes), equal.notes
    with pytest.raises(InputError, match="fallback_member 'lightgbm' is not one of the members"):
        create_model("launch_ensemble", members=members, fallback_member="lightgbm")


def test_the_chosen_weights_score_no_worse_than_the_best_member_on_the_validation_part():
    panel = _planted_panel()
    model = create_model("launch_ensemble", members=MEMBERS, horizon=4).fit(panel)
    found = model._validation(panel)
    assert found is not None
    from salesfusion.scoring.selection import selection_score

    forecasts, held, _ = found

    def score(weights):
        combined = held.with_columns(
            pl.Series("y_pred", sum(w * f["y_pred"].to_numpy()
                                    for w, f in zip(weights, forecasts, strict=True))))
        return selection_score(combined, "rmsse")

    alone = [score([1.0 if j == i else 0.0 for j in range(len(MEMBERS))])
             for i in range(len(MEMBERS))]
    assert score(model._weights) <= min(alone) + 1e-12
