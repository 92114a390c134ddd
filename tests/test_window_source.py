"""Windows gathered batch by batch equal the materialised windows, and hold no window tensor."""

from __future__ import annotations

import numpy as np
import torch

from salesfusion.features.covariates import Covariates
from salesfusion.features.lags import to_wide
from salesfusion.training.batches import batch_loader, gathered_loader, window_tensors
from salesfusion.training.checkpoints import data_fingerprint
from salesfusion.training.windows import make_windows, market_levels, window_samples


def _covariates(n_series: int, n_periods: int) -> Covariates:
    rng = np.random.default_rng(0)
    return Covariates(values=rng.normal(size=(n_series, n_periods, 2)), names=["a", "b"],
                      future_known=np.array([True, False]))


def _fields(windows) -> dict[str, np.ndarray]:
    return {f: getattr(windows, f) for f in windows.__dataclass_fields__}


def test_gathered_subsets_equal_the_materialised_windows(module_shop_panel) -> None:
    wide = to_wide(module_shop_panel)
    n_periods = wide.y.shape[1]
    covariates = _covariates(wide.y.shape[0], n_periods + 4)
    every = make_windows(wide, "W", 6, 4, covariates=covariates)
    samples = window_samples(wide, "W", 6, 4, covariates=covariates)
    assert len(samples) == len(every) > 100
    chosen = np.random.default_rng(1).choice(len(samples), 50, replace=False)
    part = samples.gather(chosen)
    for name, values in _fields(every.subset(chosen)).items():
        np.testing.assert_array_equal(getattr(part, name), values, err_msg=name)
    # The cut and the transform, as a training applies them to materialised windows.
    cut_at = n_periods - 4
    expected = every.subset(chosen)
    target_index = expected.origin[:, None] + np.arange(1, 5)[None, :]
    expected.target_mask = expected.target_mask & ~(target_index >= cut_at)
    expected = expected.transformed(np.log1p)
    trained = samples.with_targets_until(cut_at).with_transform(np.log1p).gather(chosen)
    for name, values in _fields(expected).items():
        np.testing.assert_array_equal(getattr(trained, name), values, err_msg=name)
    cut = samples.with_targets_until(cut_at)
    np.testing.assert_array_equal(
        cut.target_masks(), every.target_mask & ~(
            (every.origin[:, None] + np.arange(1, 5)[None, :]) >= cut_at))
    np.testing.assert_array_equal(samples.history_observed(), every.history_mask.any(axis=1))
    full = cut.gather()
    np.testing.assert_array_equal(cut.observed_targets(), full.target[full.target_mask])


def test_gathered_loader_gives_the_batches_of_the_materialised_loader(
        module_shop_panel) -> None:
    wide = to_wide(module_shop_panel)
    rows, markets = np.arange(wide.y.shape[0]), np.ones(wide.y.shape[0], dtype=int)
    samples = window_samples(wide, "W", 6, 4)

    def tensors(windows):
        return window_tensors(windows, rows, markets)

    materialised = batch_loader(tensors(make_windows(wide, "W", 6, 4)), 32, True, 7)
    gathered = gathered_loader(samples, tensors, 32, True, 7)
    for _ in range(2):  # two epochs: the shuffle generator carries on identically
        pairs = list(zip(materialised, gathered, strict=True))
        assert len(pairs) == -(-len(samples) // 32)
        for left, right in pairs:
            assert left.keys() == right.keys()
            for name in left:
                assert left[name].dtype == right[name].dtype, name
                assert torch.equal(left[name], right[name]), name


def test_a_gathered_dataset_holds_the_panel_not_the_windows(module_shop_panel) -> None:
    wide = to_wide(module_shop_panel)
    samples = window_samples(wide, "W", 16, 4)
    every = samples.gather()
    window_bytes = sum(a.nbytes for a in _fields(every).values())
    held = samples.source.nbytes() + samples.nbytes()
    assert held * 3 < window_bytes


def test_the_fingerprint_follows_the_samples_and_the_transform(module_shop_panel) -> None:
    wide = to_wide(module_shop_panel)
    samples = window_samples(wide, "W", 6, 4)

    def fingerprint(chosen) -> str:
        def tensors(windows):
            return window_tensors(windows, np.arange(wide.y.shape[0]),
                                  np.ones(wide.y.shape[0], dtype=int))
        return data_fingerprint([gathered_loader(chosen, tensors, 8, True, 0)], {})

    base = fingerprint(samples)
    assert fingerprint(samples) == base
    assert fingerprint(samples.subset(np.arange(len(samples) - 1))) != base
    assert fingerprint(samples.with_transform(np.log1p)) != base
    assert fingerprint(samples.with_targets_until(10)) != base


def test_market_levels_are_the_trailing_mean_of_each_markets_series(module_shop_panel) -> None:
    wide = to_wide(module_shop_panel)
    lookback = 5
    levels = market_levels(wide, lookback)
    markets = wide.keys["market"].to_numpy()
    for market in np.unique(markets):
        rows = markets == market
        for t in (0, 3, wide.y.shape[1] - 1):
            block = wide.y[rows, max(0, t - lookback + 1): t + 1]
            expected = np.nanmean(block) if (~np.isnan(block)).any() else 0.0
            np.testing.assert_allclose(levels[rows, t], expected, rtol=1e-12)
