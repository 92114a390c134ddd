"""A launch model that does not read the covariates says so: ``lightgbm_launch`` lists the
channels it leaves out, rather than silently forecasting without a user's trend table."""

from salesfusion.datasets.synthetic import synthetic
from salesfusion.models.registry import create_model
from tests.test_launch import _planted_panel


def test_lightgbm_launch_names_the_covariates_it_does_not_read(tmp_path):
    panel = synthetic(tmp_path / "shop", n_items=20, n_weeks=20, seed=3).panel()
    assert panel.future_known or panel.past_only  # the shop's events
    model = create_model("lightgbm_launch", max_rounds=10).fit(panel)
    [note] = [n for n in model.notes if n.startswith("covariates not read: ")]
    assert all(name in note for name in [*panel.future_known, *panel.past_only])
    bare = create_model("lightgbm_launch", max_rounds=10).fit(_planted_panel())
    assert not any(n.startswith("covariates not read") for n in bare.notes)
