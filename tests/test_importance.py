"""Permutation importance of LightGBM's input groups against the synthetic shop's planted
effects."""

from __future__ import annotations

import pytest

from salesfusion.datasets.synthetic import synthetic
from salesfusion.errors import InputError
from salesfusion.explain.importance import feature_group, permutation_importance
from salesfusion.models.registry import create_model


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    shop = synthetic(tmp_path_factory.mktemp("importance"), covariates=True, n_items=60,
                     n_weeks=70, image_size=16)
    panel = shop.panel()
    origin = panel.periods[-5]
    model = create_model("lightgbm", horizon=4, max_rounds=150).fit(panel.until(origin))
    return model, panel, origin


def test_planted_drivers_matter_and_groups_cover_every_feature(fitted):
    model, panel, origin = fitted
    table = permutation_importance(model, panel, origin, repeats=4, seed=1)
    by_group = dict(zip(table["group"], table["increase"], strict=True))
    spread = dict(zip(table["group"], table["increase_sd"], strict=True))
    # Every feature is in exactly one group.
    listed = [f for features in table["features"] for f in features.split(", ")]
    assert sorted(listed) == sorted(model._feature_names)
    # Demand history carries the level of every series: the largest loss when scrambled.
    assert table["group"][0] == "history"
    # Planted: promotions lift log demand by 0.4 beyond their discount, and prices move it with
    # elasticity -0.8, so scrambling either loses accuracy beyond its own noise.
    for group in ("covariate:promo", "covariate:price"):
        assert by_group[group] > 2 * spread[group] and by_group[group] > 0.1, table
    assert table["wape"].n_unique() == 1  # one baseline for every group


def test_same_seed_same_table_and_bad_arguments(fitted):
    model, panel, origin = fitted
    first = permutation_importance(model, panel, origin, repeats=2, seed=3)
    assert first.equals(permutation_importance(model, panel, origin, repeats=2, seed=3))
    with pytest.raises(InputError, match="periods of actuals after it"):
        permutation_importance(model, panel, panel.periods[-2])
    with pytest.raises(InputError, match="model 'naive' has no feature matrix"):
        permutation_importance(create_model("naive").fit(panel), panel, origin)


def test_feature_groups():
    assert feature_group("lag_3") == "history"
    assert feature_group("week_of_year") == "calendar"
    assert feature_group("cov_event_decay_h2_at_target") == "events"
    assert feature_group("cov_price_local_change") == "covariate:price_local"
    assert feature_group("fx_rate") == "price_fx"
