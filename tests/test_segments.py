"""Market segments, declared and learned, against the synthetic shop's planted maturity."""

from __future__ import annotations

import pytest
from sklearn.metrics import adjusted_rand_score

from salesfusion.datasets.synthetic import synthetic
from salesfusion.errors import InputError
from salesfusion.explain.segments import declared_segments, learned_segments


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    return synthetic(tmp_path_factory.mktemp("segments"), n_items=80, n_weeks=104,
                     image_size=16).panel()


def test_learned_segments_recover_the_planted_maturity(panel):
    """Emerging markets (BR, TH) grow about 1 % a week and mature ones (UK, DE) do not: the
    learned segments must split them exactly so, stably across subsamples of their periods."""
    found = learned_segments(panel, resamples=30, seed=0)
    truth = {"UK": "mature", "DE": "mature", "BR": "emerging", "TH": "emerging"}
    markets = found.markets["market"].to_list()
    assert found.k == 2
    assert adjusted_rand_score([truth[m] for m in markets], found.markets["segment"]) == 1.0
    assert found.stability > 0.8
    growth = dict(zip(markets, found.markets["growth"], strict=True))
    assert min(growth["BR"], growth["TH"]) > max(growth["UK"], growth["DE"])
    assert learned_segments(panel, resamples=30, seed=0).markets.equals(found.markets)


def test_declared_segments_and_errors(panel):
    declared = declared_segments(panel, "maturity")
    assert dict(declared.markets.select("market", "segment").iter_rows()) == {
        "BR": "emerging", "DE": "mature", "TH": "emerging", "UK": "mature"}
    with pytest.raises(InputError, match="segment column 'climate' is not in the markets"):
        declared_segments(panel, "climate")
    two = panel.select_series(panel.data.filter(panel.data["market"].is_in(["UK", "DE"])))
    with pytest.raises(InputError, match="at least 3 markets; the panel has 2"):
        learned_segments(two)
