"""A launch model that corrects a reference instead of starting from the mean: with
``reference`` set, ``lightgbm_launch``'s trees start from a launch curve's value at each row
(its base score), so without a feature that explains launches it stays with the curve, and with
one it still learns it. And the synthetic shop's ``content_signal`` knob, which turns the
content's effect on demand down to nothing, so such claims can be checked."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from salesfusion.data.launch_splits import LaunchProtocol
from salesfusion.datasets.synthetic import generate
from salesfusion.evaluation.runner import backtest_models
from salesfusion.models.base import Forecaster
from salesfusion.models.registry import create_model
from tests.test_launch import _planted_panel

CUTOFF = (date(2024, 7, 29),)


def _wape(panel, models) -> dict[str, float]:
    run = backtest_models(panel, models, LaunchProtocol(horizon=4, cutoffs=CUTOFF))
    return {r["model"]: r["value"] for r in run.metrics.filter(
        (pl.col("metric") == "WAPE") & (pl.col("window") == "all")
        & (pl.col("segment") == "all")).iter_rows(named=True)}


def _referenced(**params):
    model = create_model("lightgbm_launch", reference="mean_launch_curve", text_encoder=None,
                         **params)
    model.name = "referenced"
    return model


def test_without_a_signal_it_stays_with_the_curve_and_with_one_it_learns_it():
    planted = _planted_panel()
    scores = _wape(planted, ["mean_launch_curve", _referenced()])
    assert scores["referenced"] < 0.7 * scores["mean_launch_curve"], scores
    # The same launches with the size attribute shuffled across items: nothing to learn.
    rng = np.random.default_rng(1)
    items = planted.items.with_columns(pl.Series("size", rng.permutation(
        planted.items["size"].to_numpy())))
    blind = type(planted)(**{**planted.__dict__, "items": items})
    scores = _wape(blind, ["mean_launch_curve", _referenced()])
    assert scores["referenced"] < 1.05 * scores["mean_launch_curve"], scores


def test_a_referenced_model_saves_its_curve_and_loads_to_the_same_forecasts(tmp_path):
    model = _referenced(max_rounds=40).fit(_planted_panel())
    launches = pl.DataFrame({"item_id": ["I80", "I81"], "market": ["GB", "DE"],
                             "launch": [date(2025, 6, 4)] * 2})
    before = model.predict_launch(launches, horizon=5)
    loaded = Forecaster.load(model.save(tmp_path / "m"))
    assert loaded.predict_launch(launches, horizon=5).equals(before)
    assert (tmp_path / "m" / "reference").is_dir()


def test_content_signal_zero_makes_the_content_unrelated_to_demand(tmp_path):
    silent = generate(tmp_path / "silent", n_items=40, n_weeks=12, image_size=8,
                      content_signal=0.0)
    loud = generate(tmp_path / "loud", n_items=40, n_weeks=12, image_size=8)
    assert (silent.item_effects["visual"] == 0).all()
    assert (silent.item_effects["textual"] == 0).all()
    assert loud.item_effects["visual"].abs().sum() > 0
    assert all(v == 0 for v in silent.tier_effect.values())
    # The content itself is drawn the same: only its effect on demand is gone.
    assert silent.item_effects["tier"].equals(loud.item_effects["tier"])
