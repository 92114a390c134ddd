"""The synthetic shop's opt-in reviews: ratings and matching texts whose latest weekly mean moves
the following weeks' demand, rebuilt by ``expected_demand``; the shop without reviews is
unchanged."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import polars as pl
import pytest
import yaml

from salesfusion.datasets.synthetic import expected_demand, generate, synthetic
from salesfusion.datasets.synthetic_reviews import REVIEW_TEXTS
from salesfusion.errors import InputError

SMALL = {"n_items": 40, "n_weeks": 60, "image_size": 8, "seed": 7}
KEYS = ["item_id", "market", "timestamp"]


def _frame_hash(frame: pl.DataFrame) -> str:
    return hashlib.sha256(json.dumps(frame.to_dicts(), default=str).encode()).hexdigest()[:16]


@pytest.fixture(scope="module")
def shops(tmp_path_factory):
    """The same small shop without and with reviews (effect 0.5 per star)."""
    return (synthetic(tmp_path_factory.mktemp("plain"), **SMALL),
            synthetic(tmp_path_factory.mktemp("reviews"), reviews=True, review_effect=0.5,
                      **SMALL))


def test_reviews_leave_the_catalogue_and_the_first_market_as_they_were(shops):
    """Reviews come from a stream of their own, so the items, images and the first market's
    events are the same draws; a market's demand draws (Poisson, whose use of the shop's stream
    depends on the mean) move the draws after them, as covariates do."""
    plain, shop = shops
    for table in ("items.parquet", "markets.csv"):
        assert (plain.folder / table).read_bytes() == (shop.folder / table).read_bytes(), table
    for image in (plain.folder / "images").iterdir():
        assert image.read_bytes() == (shop.folder / "images" / image.name).read_bytes()
    uk = pl.col("market") == "UK"
    assert plain.tables.events.filter(uk).equals(shop.tables.events.filter(uk))
    assert not (plain.folder / "reviews.parquet").exists()
    assert "reviews" not in yaml.safe_load((plain.folder / "spec.yaml").read_text())
    assert plain.truth.review_effect == 0.0 and shop.truth.review_effect == 0.5
    # The same series and weeks, different units: demand reacts to the reviews.
    assert plain.tables.sales.select(KEYS).equals(shop.tables.sales.select(KEYS))
    assert not plain.tables.sales["quantity"].equals(shop.tables.sales["quantity"])


def test_reviews_are_star_ratings_of_live_series_with_matching_texts(shops):
    _, shop = shops
    reviews = shop.tables.reviews
    assert shop.spec.reviews.rating_range == (1.0, 5.0)
    assert set(reviews["rating"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    for stars, text in reviews.select("rating", "text").unique().iter_rows():
        assert text in REVIEW_TEXTS[int(stars)], (stars, text)
    # Only a series that sells that week is reviewed: every review's week has a sales row.
    weeks = reviews.with_columns(pl.col("timestamp").dt.truncate("1w"))
    assert weeks.join(shop.tables.sales, on=KEYS, how="anti").height == 0
    # Reviews come at any time of the week; 0.6 a week per series on average.
    assert reviews["timestamp"].dt.weekday().n_unique() == 7
    assert 0.5 < reviews.height / shop.tables.sales.height < 0.7


def test_the_seed_controls_the_reviews(tmp_path):
    def reviews(folder, seed):
        generate(folder, **{**SMALL, "seed": seed}, reviews=True)
        return _frame_hash(pl.read_parquet(folder / "reviews.parquet"))

    first = reviews(tmp_path / "a", 7)
    assert first == reviews(tmp_path / "b", 7)
    assert first != reviews(tmp_path / "c", 8)


def _latest_mean_before(shop) -> pl.DataFrame:
    """Per sales row, the mean rating of the latest week with reviews before its week: rebuilt
    here with an as-of join, independently of the generator's arrays."""
    weekly = (shop.tables.reviews.with_columns(pl.col("timestamp").dt.truncate("1w"))
              .group_by(KEYS).agg(pl.col("rating").mean().alias("latest")).sort("timestamp"))
    rows = shop.tables.sales.select(KEYS).sort("timestamp")
    # Both sorted by timestamp overall, so sorted within each series too.
    return rows.join_asof(weekly, on="timestamp", by=["item_id", "market"],
                          strategy="backward", allow_exact_matches=False,
                          check_sortedness=False)


def test_expected_demand_adds_exactly_the_planted_review_term(shops):
    """In the market drawn alike in both shops, the mean with reviews is the mean without times
    exp(0.5 x (latest weekly mean stars before the week - 3)), and exactly the mean without
    before a series' first review."""
    plain, shop = shops
    uk = pl.col("market") == "UK"  # the market whose events are drawn alike in both shops
    rows = (_latest_mean_before(shop).filter(uk).join(expected_demand(shop), on=KEYS)
            .join(expected_demand(plain).rename({"mean": "plain"}), on=KEYS))
    assert rows.height == shop.tables.sales.filter(uk).height
    planted = (0.5 * (rows["latest"] - 3.0)).fill_null(0.0)
    np.testing.assert_allclose(rows["mean"] / rows["plain"], planted.exp(), rtol=1e-9)
    assert rows["latest"].null_count() > 0 and planted.std() > 0.3


def test_draws_follow_the_expected_demand_with_reviews(shops):
    """Standardised by the expected mean, the draws are mean 0 and variance 1, also in the weeks
    after good and after bad reviews, where a missing or wrong term would bias them."""
    _, shop = shops
    rows = (_latest_mean_before(shop).join(shop.tables.sales, on=KEYS)
            .join(expected_demand(shop), on=KEYS)
            .with_columns(((pl.col("quantity") - pl.col("mean")) / pl.col("mean").sqrt())
                          .alias("z")))
    assert abs(rows["quantity"].sum() / rows["mean"].sum() - 1) < 0.02
    assert abs(rows["z"].mean()) < 0.05 and abs(rows["z"].var() - 1) < 0.1
    for subset in (pl.col("latest") >= 4.5, pl.col("latest") <= 2.0):
        part = rows.filter(subset)
        assert part.height > 300 and abs(part["z"].mean()) < 0.15, (str(subset), part.height)
    # Weeks after good reviews sell more than weeks after bad ones.
    good = rows.filter(pl.col("latest") >= 4.5)["quantity"].mean()
    bad = rows.filter(pl.col("latest") <= 2.0)["quantity"].mean()
    assert math.log(good / bad) > 1.0


def test_truth_written_before_reviews_reads_with_zero_effect(tmp_path):
    synthetic(tmp_path, **SMALL)
    path = tmp_path / "truth.json"
    old = {k: v for k, v in json.loads(path.read_text()).items() if k != "review_effect"}
    path.write_text(json.dumps(old))
    assert synthetic(tmp_path, **SMALL).truth.review_effect == 0.0


def test_refuses_a_non_finite_review_effect(tmp_path):
    with pytest.raises(InputError, match="review_effect"):
        generate(tmp_path, reviews=True, review_effect=math.inf, **SMALL)
