"""LightGBM on a history shorter than its lags and its horizon: it fits on the steps the history
holds and says so, instead of failing on array shapes."""

from __future__ import annotations

import numpy as np

from salesfusion.features.lags import LAGS, origin_features, to_wide
from salesfusion.models.registry import create_model


def test_lags_longer_than_the_history_are_unknown(shop_panel):
    short = shop_panel.until(shop_panel.periods.sort()[2])  # 3 periods
    features = origin_features(to_wide(short))
    longest = features[f"lag_{max(LAGS)}"]
    assert longest.shape == features["lag_1"].shape and np.isnan(longest).all()
    assert not np.isnan(features["lag_1"]).all()


def test_a_three_period_history_forecasts_four_steps_and_notes_it(shop_panel):
    short = shop_panel.until(shop_panel.periods.sort()[2])
    model = create_model("lightgbm", max_rounds=20, horizon=4).fit(short)
    forecast = model.predict(4)
    assert forecast.height == 4 * short.n_series and forecast["y_pred"].is_finite().all()
    assert any("trained on steps 1-2 ahead only; steps 3-4 use what step 2 learned" in note
               for note in model.notes)
