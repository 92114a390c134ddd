"""Event and exogenous covariates: decay transforms, future-known vs past-only, windows."""

import json

import numpy as np
import polars as pl
import pytest

from salesfusion.data.events import period_events
from salesfusion.features.covariates import covariate_cube, fit_exogenous_scale
from salesfusion.features.events import event_cube, event_names
from salesfusion.features.lags import to_wide
from salesfusion.training.windows import extended_periods, feature_widths, make_windows


def test_event_decay_halves_every_half_life():
    periods = np.arange(np.datetime64("2024-01-01"), np.datetime64("2024-03-01"),
                        np.timedelta64(7, "D")).astype("datetime64[us]")
    events = period_events(pl.DataFrame({
        "market": ["UK", "UK", "UK"], "item_id": ["A", "A", None],
        "timestamp": pl.Series(periods[[2, 2, 5]]), "audience": [100.0, 300.0, 50.0]}),
        "W")
    keys = pl.DataFrame({"item_id": ["A", "B"], "market": ["UK", "UK"]})
    cube = event_cube(events, keys, periods)
    channel = {n: i for i, n in enumerate(event_names())}
    assert cube[0, 2, channel["event_item"]] == 2  # two streams featured A that week
    assert cube[1, :, channel["event_item"]].sum() == 0  # B was never featured
    assert cube[0, 2, channel["event_item_audience"]] == pytest.approx(np.log1p(400))
    # The market-wide stream counts for every series of the market, for no single item.
    assert cube[1, 5, channel["event_market"]] == pytest.approx(np.log1p(1))
    decay = cube[0, :, channel["event_decay_h2"]]
    assert decay[:2].sum() == 0
    np.testing.assert_allclose(decay[2:7], 2 * 0.5 ** (np.arange(5) / 2), rtol=1e-6)


def test_future_known_and_past_only_channels(shop_panel):
    wide = to_wide(shop_panel)
    periods = extended_periods(wide, shop_panel.freq, 3)
    scale = fit_exogenous_scale(shop_panel)
    cube = covariate_cube(shop_panel, wide.keys, periods, scale)
    # The sales table's prices (past-only: the shop is a transaction log), then the exogenous.
    assert cube.names == [*event_names(), "price", "price_local", "footfall", "search_trend"]
    assert cube.future_known.tolist() == [True] * len(event_names()) + [False] * 3 + [True]
    # The event scheduled after the sales end is in the forecast periods of P003 in GB.
    row = wide.keys.with_row_index().filter((pl.col("item_id") == "P003")
                                            & (pl.col("market") == "GB"))["index"].item()
    assert cube.values[row, len(wide.periods):, 0].sum() == 1
    # Standardised with the training periods' statistics.
    trend = cube.values[:, : len(wide.periods), cube.names.index("search_trend")]
    assert abs(trend.mean()) < 0.3 and 0.7 < trend.std() < 1.3

    windows = make_windows(wide, shop_panel.freq, 8, 3, origins=np.array([len(wide.periods) - 1]),
                           covariates=cube)
    history_width, future_width = feature_widths(cube)
    assert windows.history.shape[-1] == history_width == 3 + cube.width
    assert windows.future.shape[1:] == (3, future_width)
    assert future_width == 2 + cube.width - 3  # calendar + every channel but the past-only 3

    # A past-only column's values after the origin never reach a window; future-known do.
    index, exogenous = next((i, t) for i, t in enumerate(shop_panel.covariate_tables)
                            if "footfall" in t.channels)
    changed = exogenous.frame.with_columns(
        pl.when(pl.col("timestamp") > shop_panel.data["timestamp"].max())
        .then(pl.col("footfall") * 10 + 1).otherwise(pl.col("footfall")).alias("footfall"),
        pl.when(pl.col("timestamp") > shop_panel.data["timestamp"].max())
        .then(pl.col("search_trend") + 40).otherwise(pl.col("search_trend"))
        .alias("search_trend"))
    shop_panel.covariate_tables[index] = exogenous.with_frame(changed)
    again = make_windows(wide, shop_panel.freq, 8, 3, origins=np.array([len(wide.periods) - 1]),
                         covariates=covariate_cube(shop_panel, wide.keys, periods, scale))
    np.testing.assert_array_equal(windows.history, again.history)
    # The future-known trend moves by exactly its +40, in the training standard deviations;
    # nothing else in the future inputs moves (footfall is not one of them).
    trend_column = 2 + cube.width - 4  # the last future channel
    difference = again.future - windows.future
    np.testing.assert_allclose(difference[..., trend_column], 40 / scale["search_trend"][1],
                               rtol=1e-4)
    assert not np.delete(difference, trend_column, axis=-1).any()


@pytest.mark.parametrize("kind", ["none", "log1p", "boxcox"])
def test_target_transforms_invert_exactly(kind):
    from salesfusion.training.transforms import TargetTransform

    rng = np.random.default_rng(0)
    values = rng.gamma(0.5, 2.0, 5000) * (rng.random(5000) > 0.3)  # intermittent, skewed
    transform = TargetTransform.fit(kind, values)
    np.testing.assert_allclose(transform.inverse(transform.forward(values)), values, atol=1e-9)
    if kind == "boxcox":
        assert -2 < transform.lam < 1  # fitted: skewed counts call for a concave transform
    # Saved as JSON (as a model folder holds it) and read back, it is the same transform.
    saved = json.loads(json.dumps(transform.to_dict()))
    assert saved == transform.to_dict()
    again = TargetTransform(**saved)
    np.testing.assert_array_equal(again.forward(values), transform.forward(values))
    np.testing.assert_array_equal(again.inverse(values), transform.inverse(values))
