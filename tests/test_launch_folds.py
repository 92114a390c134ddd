"""Launch validation over several cohorts (``data.launch_folds``) and the launch ensemble
weighed on them: rolling cohorts when launches are spread in time, item groups when a range
launches on one date; never a row of a held-out launch (or, rolling, after its cutoff) fitted
on, every held-out item in exactly one fold, and the spread across folds in the notes."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl

from salesfusion.data.launch_folds import fold_masks, launch_folds
from salesfusion.data.panel import Panel
from salesfusion.models.registry import create_model
from tests.test_launch import _planted_panel

START = datetime(2024, 1, 1)


def _one_date(n_items: int = 30, seed: int = 0) -> Panel:
    """One series running from the first week, and a range of items all launched in week 10
    whose volume follows their ``size``."""
    rng = np.random.default_rng(seed)
    sizes = rng.uniform(0, 1, n_items)
    rows = [{"item_id": "OLD", "market": "GB", "timestamp": START + timedelta(weeks=w),
             "y": 10.0} for w in range(20)]
    rows += [{"item_id": f"I{i:02d}", "market": "GB", "timestamp": START + timedelta(weeks=w),
              "y": float(rng.poisson(1 + 30 * sizes[i]))}
             for i in range(n_items) for w in range(10, 20)]
    items = pl.DataFrame({"item_id": ["OLD", *[f"I{i:02d}" for i in range(n_items)]],
                          "size": [0.5, *sizes]})
    return Panel(data=pl.DataFrame(rows).sort("item_id", "market", "timestamp"), freq="W",
                 items=items, static_numeric=["size"])


def test_rolling_cohorts_are_disjoint_and_never_train_on_their_own_period():
    panel = _planted_panel()
    folds, how = launch_folds(panel, horizon=4, share=0.2, folds=3, seed=0)
    assert len(folds) == 3 and "rolling" in how
    seen: set[str] = set()
    for fold in folds:
        items = set(fold.launches["item_id"].to_list())
        assert items and not items & seen  # each cohort its own
        seen |= items
        first = fold.launches["launch"].min()
        assert fold.fit.data["timestamp"].max() < first
        assert not set(fold.fit.data["item_id"].to_list()) & items
        assert fold.actuals["period_since_launch"].max() <= 4
    # Latest first: each fold's cohort launches before the previous one's.
    assert [f.launches["launch"].min() for f in folds] == sorted(
        (f.launches["launch"].min() for f in folds), reverse=True)
    [single], _ = launch_folds(panel, horizon=4, share=0.2, folds=1, seed=0)
    assert single.launches.equals(folds[0].launches)


def test_a_range_launched_on_one_date_is_folded_by_item():
    panel = _one_date()
    folds, how = launch_folds(panel, horizon=4, share=0.2, folds=3, seed=0)
    assert len(folds) == 3 and "grouped by item" in how
    held = [set(f.launches["item_id"].to_list()) for f in folds]
    assert sorted(i for h in held for i in h) == sorted(f"I{i:02d}" for i in range(30))
    for fold, items in zip(folds, held, strict=True):
        assert not set(fold.fit.data["item_id"].to_list()) & items
        assert "OLD" in fold.fit.data["item_id"].to_list()
    again, _ = launch_folds(panel, horizon=4, share=0.2, folds=3, seed=0)
    assert [f.launches.equals(g.launches) for f, g in zip(folds, again, strict=True)] == [True] * 3
    # One fold asked: the single latest slice, as before folds existed, trained on the one
    # series running from the first week: what the folds by item replace.
    [single], how = launch_folds(panel, horizon=4, share=0.2, folds=1, seed=0)
    assert "rolling" in how and single.fit.data["item_id"].unique().to_list() == ["OLD"]


def test_the_launch_ensemble_weighs_a_one_date_range_instead_of_falling_back():
    panel = _one_date()
    model = create_model("launch_ensemble", members=["mean_launch_curve", "lightgbm_launch"],
                         horizon=4).fit(panel)
    [note] = [n for n in model.notes if n.startswith("weights ")]
    assert "30 validation launches in 3 folds" in note and "per part" in note, note
    assert not any(n.startswith("warning:") for n in model.notes)
    # The attribute decides the volume: the member that reads it gets the weight.
    assert "'lightgbm_launch': 1.0" in note or "'lightgbm_launch': 0.9" in note, note
    assert not any("no RMSSE scale" in n for n in model.notes)  # launches train every fold


def _rows(panel: Panel) -> pl.DataFrame:
    starts = panel.series().select("item_id", "market", pl.col("start").alias("launch"))
    return panel.data.join(starts, on=["item_id", "market"], how="left").select(
        "item_id", "market", "launch", "timestamp")


def test_fold_masks_train_before_each_cohort_or_without_each_group():
    panel = _planted_panel()
    rows = _rows(panel)
    first = panel.data["timestamp"].min()
    masks = fold_masks(rows, first, share=0.2, folds=3, seed=0)
    assert len(masks) == 3
    for train, held in masks:
        cutoff = rows.filter(pl.Series(held))["launch"].min()
        assert rows.filter(pl.Series(train))["timestamp"].max() < cutoff
        assert not set(rows.filter(pl.Series(train))["item_id"]) & set(
            rows.filter(pl.Series(held))["item_id"])
    together = _one_date()
    rows = _rows(together)
    masks = fold_masks(rows, together.data["timestamp"].min(), share=0.2, folds=3, seed=0)
    assert len(masks) == 3
    assert sum(held for _, held in masks).max() == 1  # each row validates once at most
    assert all((train | held).all() for train, held in masks)


def test_lightgbm_launch_chooses_its_rounds_on_the_folds_and_says_so():
    for panel in (_planted_panel(), _one_date()):
        model = create_model("lightgbm_launch", text_encoder=None, validation_folds=3).fit(panel)
        assert any("rounds chosen on 3 validation folds" in n and "sd across folds" in n
                   for n in model.notes), model.notes
    single = create_model("lightgbm_launch", text_encoder=None).fit(_planted_panel())
    assert not any("validation folds" in n for n in single.notes)
