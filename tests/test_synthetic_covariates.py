"""The synthetic shop's opt-in covariates: price plans, promotions and category trends, planted
with known effects that ``expected_demand`` rebuilds; the default shop is left unchanged."""

import hashlib
import json
import math

import numpy as np
import polars as pl
import pytest
import yaml
from PIL import Image

from salesfusion.datasets.synthetic import (
    CATEGORIES,
    PRICE_ELASTICITY,
    expected_demand,
    generate,
    synthetic,
)
from salesfusion.errors import InputError

SMALL = {"n_items": 40, "n_weeks": 60, "image_size": 16, "seed": 7}
KEYS = ["item_id", "market", "timestamp"]


def _frame_hash(frame: pl.DataFrame) -> str:
    # Python's float repr is exact and stable, unlike a file format's bytes across versions.
    return hashlib.sha256(json.dumps(frame.to_dicts(), default=str).encode()).hexdigest()[:16]


@pytest.fixture(scope="module")
def shops(tmp_path_factory):
    """The same small shop without and with covariates: one market's draws (UK, the first) are
    the same in both, every other difference comes from the covariates."""
    return (synthetic(tmp_path_factory.mktemp("plain"), **SMALL),
            synthetic(tmp_path_factory.mktemp("covariates"), covariates=True, **SMALL))


def test_default_output_is_unchanged(tmp_path):
    """Hashes taken from the generator before covariates existed: the default shop, and one
    generated with covariates=False, are that shop, draw for draw."""
    pinned = {"sales": "56b61e466c3e79af", "items": "5a57b14f8e5dec13",
              "events": "45912e25683c3233", "fx": "87ff1306f52227ea"}
    for name, options in (("default", {}), ("off", {"covariates": False})):
        folder = tmp_path / name
        truth = generate(folder, **SMALL, **options)
        hashes = {table: _frame_hash(pl.read_parquet(folder / f"{table}.parquet"))
                  for table in pinned}
        assert hashes == pinned, name
        pixels = hashlib.sha256()
        for path in sorted((folder / "images").glob("*.png")):
            pixels.update(np.asarray(Image.open(path)).tobytes())
        assert pixels.hexdigest()[:16] == "206f63d048009f10"
        spec = yaml.safe_load((folder / "spec.yaml").read_text())
        assert "exogenous" not in spec and "promo" not in spec["sales"]["columns"]
        assert not (folder / "trends.parquet").exists()
        assert truth.promo_uplift == truth.trend_effect == 0.0


def test_prices_follow_plans_and_promo_weeks_are_discounted(shops):
    _, shop = shops
    sales = shop.tables.sales.with_columns(pl.col("promo").cast(pl.Float64).cast(pl.Int64))
    base = shop.tables.items.select("item_id", pl.col("price").alias("base"))
    rows = sales.join(base, on="item_id").sort(KEYS)
    assert set(rows["promo"].unique()) == {0, 1}
    assert 0.04 < rows["promo"].mean() < 0.12
    # Permanent changes: regular (non-promo) prices move within a series, by at most two
    # changes of up to 25% each.
    regular = rows.filter(pl.col("promo") == 0)
    per_series = regular.group_by("item_id", "market").agg(pl.col("price").n_unique().alias("n"))
    assert per_series["n"].max() <= 3 and (per_series["n"] > 1).mean() > 0.4
    ratio = regular["price"] / regular["base"]
    assert ratio.min() > 0.75 ** 2 - 0.01 and ratio.max() < 1.25 ** 2 + 0.01
    # A promo week's price is the regular price around it cut by 10, 20 or 30% (a regular price
    # that changes during a spell makes the neighbour the wrong reference for a few rows).
    reference = pl.when(pl.col("promo") == 0).then(pl.col("price"))
    rows = rows.with_columns(reference.forward_fill().backward_fill().over("item_id", "market")
                             .alias("regular"))
    cuts = rows.filter(pl.col("promo") == 1).select(1 - pl.col("price") / pl.col("regular"))
    cut = cuts.to_series().to_numpy()
    nearest = np.abs(cut[:, None] - np.array([0.1, 0.2, 0.3])[None, :])
    assert (nearest.min(axis=1) < 0.01).mean() > 0.9
    assert set(np.argmin(nearest, axis=1)) == {0, 1, 2}


def test_trend_table_covers_every_category_and_sales_week(shops):
    _, shop = shops
    trends = pl.read_parquet(shop.folder / "trends.parquet")
    assert trends.columns == ["term", "week", "trend"]
    sales_weeks = shop.tables.sales["timestamp"].cast(pl.Datetime("us")).unique().sort()
    assert sales_weeks.len() == SMALL["n_weeks"]
    for term in CATEGORIES:
        series = trends.filter(pl.col("term") == term).sort("week")
        assert series["week"].equals(sales_weeks, check_names=False), term
        assert series["trend"].max() == 100.0 and series["trend"].min() > 0
        # Smooth: a week-on-week step is small against the series' range.
        steps = series["trend"].diff().drop_nulls().abs()
        assert steps.median() < 0.1 * (series["trend"].max() - series["trend"].min()), term
    assert set(trends["term"]) == set(CATEGORIES)
    spec = yaml.safe_load((shop.folder / "spec.yaml").read_text())
    assert spec["sales"]["columns"]["promo"] == "promo"
    assert spec["exogenous"] == [{"path": "trends.parquet",
                                  "columns": {"timestamp": "week", "attribute": "term"},
                                  "attribute_of": ["category"], "past_only": ["trend"]}]


def test_expected_demand_adds_exactly_the_planted_terms(shops):
    """In the market drawn alike in both shops, the mean with covariates is the mean without
    times exp(elasticity x log price change + uplift x promo + effect x last week's standardised
    category trend), each term rebuilt here from the written tables."""
    plain, shop = shops
    assert shop.truth.promo_uplift == 0.4 and shop.truth.trend_effect == 0.3
    trends = pl.read_parquet(shop.folder / "trends.parquet").with_columns(
        ((pl.col("trend") - pl.col("trend").mean()) / pl.col("trend").std(ddof=0))
        .over("term").alias("z"), (pl.col("week") + pl.duration(weeks=1)).alias("timestamp"))
    items = shop.tables.items.select("item_id", "category", pl.col("price").alias("base"))
    rows = (shop.tables.sales.filter(pl.col("market") == "UK")
            .join(items, on="item_id")
            .join(trends.select(pl.col("term").alias("category"), "timestamp", "z"),
                  on=["category", "timestamp"], how="left")
            .join(expected_demand(shop), on=KEYS)
            .join(expected_demand(plain).rename({"mean": "plain"}), on=KEYS))
    assert rows.height == shop.tables.sales.filter(pl.col("market") == "UK").height
    first = rows["timestamp"].min()
    assert rows.filter(pl.col("z").is_null())["timestamp"].unique().to_list() == [first]
    planted = (PRICE_ELASTICITY * (rows["price"].log() - rows["base"].log())
               + 0.4 * rows["promo"].cast(pl.Float64) + 0.3 * rows["z"].fill_null(0.0))
    np.testing.assert_allclose(rows["mean"] / rows["plain"], planted.exp(), rtol=1e-9)
    assert planted.std() > 0.2  # the terms are really there to be checked


def test_draws_follow_the_expected_demand_with_covariates(shops):
    """Standardised by the expected mean, the draws are mean 0 and variance 1 overall and in
    the rows each planted effect moves most: a missing or wrong term would bias those rows."""
    _, shop = shops
    trends = (pl.read_parquet(shop.folder / "trends.parquet").sort("term", "week")
              .with_columns(((pl.col("trend") - pl.col("trend").mean())
                             / pl.col("trend").std(ddof=0)).over("term").alias("z"))
              .with_columns(pl.col("z").shift(1).over("term").alias("lagged")))
    rows = (shop.tables.sales.join(expected_demand(shop), on=KEYS)
            .join(shop.tables.items.select("item_id", "category"), on="item_id")
            .join(trends.select(pl.col("term").alias("category"),
                                pl.col("week").alias("timestamp"), "lagged"),
                  on=["category", "timestamp"], how="left")
            .with_columns(pl.col("promo").cast(pl.Float64).cast(pl.Int64),
                          ((pl.col("quantity") - pl.col("mean")) / pl.col("mean").sqrt())
                          .alias("z")))
    assert rows.height == shop.tables.sales.height and rows["mean"].null_count() == 0
    assert abs(rows["quantity"].sum() / rows["mean"].sum() - 1) < 0.02
    assert abs(rows["z"].mean()) < 0.05 and abs(rows["z"].var() - 1) < 0.1
    for subset in (pl.col("promo") == 1, pl.col("lagged") > 0.8, pl.col("lagged") < -0.8):
        part = rows.filter(subset)
        assert part.height > 300 and abs(part["z"].mean()) < 0.15, (str(subset), part.height)
    # Promo weeks sell more than the same series' other weeks.
    lifts = (rows.group_by("item_id", "market", "promo").agg(pl.col("quantity").mean())
             .pivot("promo", index=["item_id", "market"], values="quantity").drop_nulls())
    assert (np.log(lifts["1"] + 0.5) - np.log(lifts["0"] + 0.5)).mean() > 0.2


def test_truth_written_before_covariates_reads_with_zero_effects(tmp_path):
    shop = synthetic(tmp_path, **SMALL)
    path = tmp_path / "truth.json"
    old = {k: v for k, v in json.loads(path.read_text()).items()
           if k not in ("promo_uplift", "trend_effect")}
    path.write_text(json.dumps(old))
    reused = synthetic(tmp_path, **SMALL)
    assert reused.truth.promo_uplift == reused.truth.trend_effect == 0.0
    assert expected_demand(reused).equals(expected_demand(shop))


def test_refuses_a_non_finite_effect(tmp_path):
    with pytest.raises(InputError, match="promo_uplift"):
        generate(tmp_path, covariates=True, promo_uplift=math.nan, **SMALL)


def test_panel_reads_plans_as_future_known_and_the_trend_as_past_only(shops):
    """A period-grain sales table's prices and promotions are plans (known ahead); the trend
    reaches every item through its category and is declared past-only."""
    _, shop = shops
    panel = shop.panel()
    assert set(panel.future_known) == {"price", "price_local", "promo"}
    assert panel.past_only == ["trend_by_category"]
