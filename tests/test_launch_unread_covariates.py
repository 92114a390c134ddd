"""A launch model says which covariates it read: ``lightgbm_launch`` lists the channels it
read, and with ``covariates: false`` the ones it leaves out, rather than silently forecasting
without a user's trend table (the planted tests are in ``tests/test_launch_covariates.py``)."""

from salesfusion.datasets.synthetic import synthetic
from salesfusion.models.registry import create_model
from tests.test_launch import _planted_panel


def test_lightgbm_launch_names_the_covariates_it_reads_or_leaves_out(tmp_path):
    panel = synthetic(tmp_path / "shop", n_items=20, n_weeks=20, seed=3).panel()
    assert panel.events is not None  # the shop's live streams
    model = create_model("lightgbm_launch", max_rounds=10).fit(panel)
    [read] = [n for n in model.notes if n.startswith("covariates read: ")]
    assert all(name in read for name in ["events", *panel.future_known, *panel.past_only])
    assert any(name.startswith("fk_event_") for name in model.feature_names)
    blind = create_model("lightgbm_launch", max_rounds=10, covariates=False).fit(panel)
    [note] = [n for n in blind.notes if n.startswith("covariates not read: ")]
    assert all(name in note for name in [*panel.future_known, *panel.past_only])
    assert not any(name.startswith("fk_") for name in blind.feature_names)
    bare = create_model("lightgbm_launch", max_rounds=10).fit(_planted_panel())
    assert not any(n.startswith("covariates") for n in bare.notes)
