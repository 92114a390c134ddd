"""The synthetic shop: seeded, reusable, loadable through its spec, with effects really there."""

from dataclasses import asdict

import numpy as np
import polars as pl
import pytest

from salesfusion.datasets.synthetic import expected_demand, synthetic
from salesfusion.encoders.registry import create_encoder
from salesfusion.evaluation.probe import probe_r2


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return synthetic(tmp_path_factory.mktemp("syn"), n_items=300, n_weeks=60, seed=3)


def test_seeded_reusable_and_independent_across_seeds(tmp_path):
    """Same seed: identical tables, images and truth. The truth written to truth.json reads back
    equal when the folder is reused. Another seed: the same shop layout with independent draws.
    (Generation speed is measured by benchmarks/synthetic.py, not asserted here.)"""
    first = synthetic(tmp_path / "a", n_items=400, n_weeks=20, seed=5)
    second = synthetic(tmp_path / "b", n_items=400, n_weeks=20, seed=5)
    assert first.tables.sales.equals(second.tables.sales)
    assert first.tables.items.equals(second.tables.items)
    assert (tmp_path / "a" / "images" / "S00399.png").read_bytes() == \
        (tmp_path / "b" / "images" / "S00399.png").read_bytes()

    written = (tmp_path / "a" / "truth.json").stat().st_mtime_ns
    reused = synthetic(tmp_path / "a", n_items=400, n_weeks=20, seed=5)
    assert (tmp_path / "a" / "truth.json").stat().st_mtime_ns == written  # read, not rewritten
    assert reused.truth.item_effects.equals(first.truth.item_effects)
    scalars = {k: v for k, v in asdict(first.truth).items() if k != "item_effects"}
    assert {k: v for k, v in asdict(reused.truth).items() if k != "item_effects"} == scalars

    other = synthetic(tmp_path / "c", n_items=400, n_weeks=20, seed=6)
    assert other.tables.sales.schema == first.tables.sales.schema
    assert other.tables.items["item_id"].equals(first.tables.items["item_id"])
    assert other.tables.markets.equals(first.tables.markets)
    # Independent draws: per-item effects uncorrelated across seeds (sd of r ~ 0.05 here).
    for factor in ("visual", "textual", "attribute"):
        r = np.corrcoef(first.truth.item_effects[factor], other.truth.item_effects[factor])[0, 1]
        assert abs(r) < 0.2, (factor, r)


def test_loads_through_its_spec_with_every_role(shop):
    panel = shop.panel()
    assert panel.static_text == ["title", "description"]
    assert set(panel.static_categorical) == {"category", "material"}
    assert panel.data["price_local"].null_count() == 0
    markets = shop.tables.markets
    assert set(markets["maturity"]) == {"emerging", "mature"}
    assert shop.tables.events.height > 0
    truth = shop.truth
    assert truth.kol_half_life["TH"] < truth.kol_half_life["UK"]


def test_demand_follows_the_known_effects(shop):
    """Mean log demand per item regresses on the true per-modality effects with slope ~1."""
    panel = shop.panel()
    per_item = (panel.data.filter(pl.col("market") == "UK").group_by("item_id")
                .agg(pl.col("y").mean().alias("mean_units"))
                .join(shop.truth.item_effects, on="item_id"))
    x = np.column_stack([per_item["visual"], per_item["textual"], per_item["attribute"],
                         np.ones(per_item.height)])
    y = np.log(per_item["mean_units"].to_numpy() + 0.5)
    coefficients = np.linalg.lstsq(x, y, rcond=None)[0]
    assert np.all(np.abs(coefficients[:3] - 1.0) < 0.25)


def test_kol_events_decay_faster_in_emerging_markets(shop):
    """Average demand around events, relative to the series' median: the lift two weeks after
    an event is a smaller share of the event-week lift in emerging markets."""
    data = shop.panel().data
    shares = {}
    for market in ("UK", "TH"):
        events = shop.tables.events.filter(pl.col("market") == market)
        series = data.filter(pl.col("market") == market)
        base = series.group_by("item_id").agg(pl.col("y").median().alias("base"))
        lifts = []
        for lag in (0, 2):
            at = (events.with_columns(pl.col("timestamp").dt.offset_by(f"{lag}w"))
                  .join(series, on=["item_id", "timestamp"]).join(base, on="item_id"))
            lifts.append(float((at["y"] / (at["base"] + 1)).mean()))
        shares[market] = (lifts[1] - 1) / (lifts[0] - 1)
    assert shares["TH"] < shares["UK"]


@pytest.mark.parametrize(("name", "modality", "factor"), [
    ("tfidf", "text", "textual"), ("minilm", "text", "textual"),
    ("color_texture", "image", "visual"), ("efficientnet_lite0", "image", "visual"),
    ("static", "static", "attribute")])
def test_linear_probe_recovers_each_modality_factor(shop, name, modality, factor):
    items = shop.tables.items.join(shop.truth.item_effects, on="item_id")
    inputs = {"text": (items["title"] + " " + items["description"]).to_list(),
              "image": items["image"].to_list(),
              "static": items.select("category", "material", "price").to_dicts()}[modality]
    params = {"image": {"image_root": shop.folder},
              "static": {"categorical": ["category", "material"], "numeric": ["price"]}}
    encoder = create_encoder(name, **params.get(modality, {}))
    if encoder.needs_fit:
        encoder.fit(inputs)
    vectors = encoder.encode(inputs).vectors
    own = probe_r2(vectors, items[factor].to_numpy())
    control = probe_r2(vectors, items["visual" if factor != "visual" else "textual"].to_numpy())
    assert own > 0.6, own
    assert control < 0.1, control


def test_expected_demand_is_the_mean_the_draws_came_from(tmp_path):
    shop = synthetic(tmp_path, n_items=80, n_weeks=60, seed=3)
    expected = expected_demand(shop)
    joined = shop.tables.sales.join(expected, on=["item_id", "market", "timestamp"])
    assert joined.height == shop.tables.sales.height == expected.height
    # Poisson draws standardised by their true mean: mean 0, variance 1 (13,740 rows).
    z = (joined["quantity"] - joined["mean"]) / joined["mean"].sqrt()
    assert abs(z.mean()) < 0.03 and abs(z.var() - 1) < 0.06
    # The live-stream weeks sell far above the rest, and the expected demand follows them.
    lifted = joined.join(shop.tables.events.select("item_id", "market", "timestamp"),
                         on=["item_id", "market", "timestamp"], how="semi")
    assert lifted["quantity"].mean() > 2 * joined["quantity"].mean()
    z_lifted = (lifted["quantity"] - lifted["mean"]) / lifted["mean"].sqrt()
    assert abs(z_lifted.mean()) < 0.3
