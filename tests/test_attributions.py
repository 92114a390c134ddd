"""Integrated-gradients attributions (explain.attributions), TFT selection weights and attention
maps (explain.selection), and market attributes as static inputs, on synthetic shops whose
modality effects are planted."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from salesfusion.datasets.synthetic import synthetic
from salesfusion.errors import InputError
from salesfusion.explain.attributions import GROUPS, integrated_gradients
from salesfusion.explain.selection import attention_maps, selection_weights
from salesfusion.models.base import Forecaster
from salesfusion.models.registry import create_model, model_class

# The image carries 1.5x the generator's colour/pattern effects, the text 0.4x its tier effect:
# planted standard deviations over items ~0.68 (visual), ~0.38 (attributes: category and
# price), ~0.14 (text), so the three content modalities have distinct, known effect sizes.
SCALE = {"visual": 1.5, "textual": 0.4, "attribute": 1.0}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    shop = synthetic(tmp_path_factory.mktemp("planted"), n_items=200, n_weeks=60,
                     image_size=16, seed=0, new_items=0.3, modality_scale=SCALE)
    panel = shop.panel()
    model = create_model("multimodal", **{**model_class("multimodal").test_params(),
                                          "epochs": 10, "launch_weight": 4,
                                          "covariates": False})
    model.fit(panel)
    return shop, panel, model, integrated_gradients(model, panel, max_windows=400, seed=0)


@pytest.fixture(scope="module")
def small_shop(tmp_path_factory):
    return synthetic(tmp_path_factory.mktemp("small"), n_items=60, n_weeks=40, image_size=16,
                     seed=1)


def _cells(table: pl.DataFrame) -> pl.DataFrame:
    return (table.group_by("item_id", "market", "origin", "step", "group")
            .agg(pl.col("attribution").sum()))


def test_attributions_are_complete(planted):
    """Completeness: each (window, step)'s attributions sum to output(input) -
    output(baseline), both computed here by separate forward passes, within 2 % of the
    largest output change (captum's Gauss-Legendre path integral with 32 points)."""
    _, _, _, result = planted
    totals = (result.table.group_by("item_id", "market", "origin", "step", maintain_order=True)
              .agg(pl.col("attribution").sum()))
    windows = result.output.shape[0]
    assert totals.height == windows * result.output.shape[1]
    # Rows are written step by step, window by window inside a step.
    by_step = totals.with_row_index().sort("step", "index")["attribution"].to_numpy()
    expected = (result.output - result.base_output).T.ravel()
    change = np.abs(expected).max()
    assert change > 0.1
    assert np.abs(by_step - expected).max() < 0.02 * change
    assert result.completeness_gap < 0.02 * change


def test_modality_effect_sizes_rank_as_planted(planted):
    """Mean |attribution| ranks image > static attributes > text, as the planted effects, and
    each item's attribution of a modality follows that item's planted effect of it."""
    shop, _, _, result = planted
    cells = _cells(result.table)
    size = dict(cells.group_by("group").agg(pl.col("attribution").abs().mean()).iter_rows())
    assert size["image"] > size["static"] > size["text"] > 0
    truth = shop.truth.item_effects
    for group, planted_column in (("image", "visual"), ("text", "textual"),
                                  ("static", "attribute")):
        per_item = (cells.filter(pl.col("group") == group).group_by("item_id")
                    .agg(pl.col("attribution").mean()).join(truth, on="item_id"))
        correlation = np.corrcoef(per_item["attribution"], per_item[planted_column])[0, 1]
        assert correlation > 0.5, (group, correlation)


def test_table_variables_and_ages(planted):
    _, panel, model, result = planted
    table = result.table
    assert set(table["group"].unique()) <= set(GROUPS)
    # A categorical attribute's embedding columns are summed back to one variable.
    static = set(table.filter(pl.col("group") == "static")["variable"].unique())
    assert static == {f"static:{c}" for c in model.static_vocabulary.categorical
                      + model.static_vocabulary.numeric}
    assert table["age"].min() == 0  # launch windows (no history) are explained too
    first_sale = panel.data.filter(pl.col("y") > 0).group_by("item_id", "market").agg(
        pl.col("timestamp").min().alias("first"))
    row = table.filter(pl.col("age") > 0).row(0, named=True)
    first = first_sale.filter((pl.col("item_id") == row["item_id"])
                              & (pl.col("market") == row["market"]))["first"].item()
    assert first <= row["origin"]


def test_same_seed_same_attributions(planted):
    _, panel, model, result = planted
    again = integrated_gradients(model, panel, max_windows=400, seed=0)
    assert again.table.equals(result.table)
    other = integrated_gradients(model, panel, max_windows=50, seed=1, baseline="zero")
    assert other.output.shape[0] == 50 and other.baseline == "zero"


def _without_market(panel, market: str):
    return panel.select_series(panel.series().filter(pl.col("market") != market))


def test_recurrent_backbone_with_market_attributes(small_shop):
    """An LSTM (gradients through a recurrent network in eval mode) with the markets table's
    maturity as a static input: the attributions name it and stay complete."""
    panel = small_shop.panel()
    model = create_model("lstm", **{**model_class("lstm").test_params(),
                                    "market_attributes": ["maturity"]})
    model.fit(panel)
    result = integrated_gradients(model, panel, max_windows=60, steps=16)
    assert "market:maturity" in set(result.table["variable"].unique())
    change = np.abs(result.output - result.base_output).max()
    assert result.completeness_gap < 0.02 * change


def test_unseen_market_is_known_by_its_attributes(small_shop, tmp_path):
    """A market left out of training is forecast with its attributes' codes (TH is emerging,
    as BR), and a saved model keeps the codes."""
    panel = small_shop.panel()
    params = {**model_class("lstm").test_params(), "market_attributes": ["maturity"],
              "covariates": False}
    model = create_model("lstm", **params).fit(_without_market(panel, "TH"))
    forecast = model.predict(4, panel)
    thai = forecast.filter(pl.col("market") == "TH")
    assert thai.height > 0 and thai["y_pred"].is_finite().all()
    blind = create_model("lstm", **{**params, "market_attributes": []}).fit(
        _without_market(panel, "TH"))
    # The same network seed and data: only the maturity input differs, so the unseen
    # market's forecasts differ too.
    assert not np.allclose(thai["y_pred"].to_numpy(), blind.predict(4, panel).filter(
        pl.col("market") == "TH")["y_pred"].to_numpy())
    loaded = Forecaster.load(model.save(tmp_path / "m"))
    assert loaded.predict(4, panel).equals(forecast)


def test_missing_market_attribute_is_an_input_error(small_shop):
    model = create_model("lstm", **{**model_class("lstm").test_params(),
                                    "market_attributes": ["region"]})
    with pytest.raises(InputError, match="region"):
        model.fit(small_shop.panel())


def test_tft_selection_weights_and_attention(small_shop):
    panel = small_shop.panel()
    model = create_model("tft_multimodal", **{**model_class("tft_multimodal").test_params(),
                                              "epochs": 1})
    model.fit(panel)
    weights = selection_weights(model, panel)
    sums = weights.group_by("item_id", "market", "origin", "kind").agg(pl.col("weight").sum())
    # Softmax weights: 1 per window (history: per observed step, averaged; a launch window
    # observed none).
    static = sums.filter(pl.col("kind") != "history")["weight"].to_numpy()
    assert np.allclose(static, 1.0, atol=1e-5)
    assert {"image", "text", "market", "level"} <= set(
        weights.filter(pl.col("kind") == "static")["variable"])
    # The calendar's two channels are one variable.
    assert (weights.filter(pl.col("kind") == "future")["variable"] == "calendar").sum() == \
        weights.filter(pl.col("kind") == "future").select("item_id", "market", "origin"
                                                          ).unique().height
    maps = attention_maps(model, panel)
    horizon, lookback = model.config.horizon, model.config.lookback
    assert maps["temporal"].shape[1:] == (horizon, lookback + horizon)
    assert np.allclose(maps["temporal"].sum(-1), 1.0, atol=1e-5)


def test_models_without_gradients_are_refused(small_shop):
    model = create_model("seasonal_naive").fit(small_shop.panel())
    with pytest.raises(InputError, match="no gradients"):
        integrated_gradients(model, small_shop.panel())
    assert selection_weights(model, small_shop.panel()) is None
    assert attention_maps(model, small_shop.panel()) == {}


def test_life_cycle_shares_and_no_planted_inverted_u(planted):
    """The synthetic shop's content effects do not change over an item's life, so the content
    modalities' share over age has no curvature to find: the inverted-U test's curvature
    interval contains 0 and its verdict is not an inverted U. (The shares by age themselves are
    what the model does: here ~0.5 content at every age, launches included.)"""
    from salesfusion.explain.contributions import age_buckets, inverted_u, modality_shares

    _, _, _, result = planted
    shares = modality_shares(age_buckets(result.table, max_age=16, width=4), ["age_bucket"])
    assert set(shares["age_bucket"]) == {0, 4, 8, 12, 16}
    totals = shares.group_by("age_bucket").agg(pl.col("share").sum())["share"].to_numpy()
    assert np.allclose(totals, 1.0)
    summary = inverted_u(result.table, bootstrap=100, seed=0).summary()
    assert summary["curvature_lo"] <= 0 <= summary["curvature_hi"]
    assert summary["verdict"] != "inverted U"
