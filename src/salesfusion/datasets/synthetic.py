"""A synthetic multimodal cross-border shop with a known ground truth.

Every product has a rendered image (a shape of one colour with a pattern), a generated title and
description, attributes and a price; it sells in several markets of different maturity, each with
its own currency, seasonality and live-stream (KOL) events. Weekly demand is Poisson with a log
mean that adds up known effects, each carried by exactly one modality:

- visual: the product's colour and pattern appear only in its image;
- textual: the "tier" word (premium, classic, ...) appears only in the title and description;
- attributes: category and (log) price appear only in the items table;
- market: level, growth (emerging markets grow), yearly seasonality;
- events: a live stream lifts the featured item's demand in that market by ``uplift`` at the
  event week, decaying with the market's half-life (short in emerging, long in mature markets);
- covariates (opt-in, ``covariates=True``; see ``synthetic_covariates``): weekly price plans
  with promotions, and a search-trend table keyed by the category attribute;
- reviews (opt-in, ``reviews=True``; see ``synthetic_reviews``): star ratings and matching
  texts whose latest mean moves the following weeks' demand by ``review_effect`` per star.

``SyntheticTruth`` holds every effect, and each item's per-modality contribution, so tests can
check that a modality pathway recovers the effect that is really there.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import yaml
from PIL import Image, ImageDraw

from salesfusion.data.spec import load_spec
from salesfusion.data.validate import load_tables
from salesfusion.datasets.base import Dataset
from salesfusion.datasets.synthetic_content import describe, render
from salesfusion.datasets.synthetic_covariates import (
    covariate_log_effect,
    draw_price_plan,
    draw_trends,
    price_log_effect,
    trend_log_effect,
)
from salesfusion.datasets.synthetic_reviews import (
    SPEC_ENTRY,
    draw_reviews,
    review_log_effect,
    with_review_effect,
)
from salesfusion.errors import InputError

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 220),
           "yellow": (235, 200, 30), "purple": (140, 50, 170)}
COLOUR_EFFECT = {"red": 0.6, "green": -0.2, "blue": -0.5, "yellow": 0.3, "purple": 0.0}
PATTERNS = ("plain", "stripes", "dots")
PATTERN_EFFECT = {"plain": -0.3, "stripes": 0.3, "dots": 0.0}
SHAPES = ("circle", "square", "triangle")
TIERS = {"premium": 0.5, "classic": 0.1, "everyday": -0.1, "budget": -0.5}
CATEGORIES = {"mug": 0.3, "lamp": -0.2, "scarf": 0.1, "bag": -0.2}
MATERIALS = ("ceramic", "cotton", "steel", "glass", "wool")
PRICE_ELASTICITY = -0.8
MARKETS = [  # name, currency, maturity, language, log level, weekly growth, KOL half-life (weeks)
    ("UK", "GBP", "mature", "en", 0.6, 0.000, 4.0),
    ("DE", "EUR", "mature", "de", 0.4, 0.001, 3.0),
    ("BR", "BRL", "emerging", "pt", -0.2, 0.010, 1.0),
    ("TH", "THB", "emerging", "th", -0.4, 0.012, 0.7),
]
FIRST_WEEK = np.datetime64("2022-01-03")  # a Monday: week 0 of every shop
CACHE = Path.home() / ".cache" / "salesfusion" / "synthetic"
FX_START = {"GBP": 0.85, "BRL": 6.0, "THB": 38.0, "USD": 1.1}  # units per EUR


@dataclass
class SyntheticTruth:
    """The effects that generated the data (log scale unless said otherwise)."""

    colour_effect: dict[str, float]
    pattern_effect: dict[str, float]
    tier_effect: dict[str, float]
    category_effect: dict[str, float]
    price_elasticity: float
    kol_uplift: float  # log uplift at the event week
    kol_half_life: dict[str, float]  # weeks, per market
    market_maturity: dict[str, str]
    market_growth: dict[str, float]
    seasonal_amplitude: float
    # Per item: each modality's contribution to its log demand.
    item_effects: pl.DataFrame = field(repr=False)
    # Covariate effects; 0 in a shop generated without covariates (and in truth.json files
    # written before they existed). Per-row prices and promotions are in the sales table.
    promo_uplift: float = 0.0  # log lift of a promotion week beyond its price cut
    trend_effect: float = 0.0  # log effect per sd of the category's trend a week earlier
    review_effect: float = 0.0  # log effect per star of the latest reviews' mean (vs 3 stars)

    def to_json(self) -> str:
        data = asdict(self)
        data["item_effects"] = self.item_effects.to_dicts()
        return json.dumps(data, indent=1)


@dataclass
class SyntheticDataset(Dataset):
    truth: SyntheticTruth | None = None
    folder: Path | None = None


def generate(folder: Path, n_items: int = 300, n_weeks: int = 104, seed: int = 0,
             image_size: int = 64, seasonal_amplitude: float = 0.3, kol_uplift: float = 1.2,
             events_per_market: int = 40, new_items: float = 0.1, covariates: bool = False,
             promo_uplift: float = 0.4, trend_effect: float = 0.3, reviews: bool = False,
             review_effect: float = 0.5,
             modality_scale: dict[str, float] | None = None,
             content_signal: float = 1.0) -> SyntheticTruth:
    """Write the tables, images and spec of a synthetic shop into ``folder``. With
    ``covariates``, prices follow weekly plans with promotions and a category trend table is
    written (``promo_uplift`` and ``trend_effect`` are their effects, unused without); with
    ``reviews``, a reviews table whose ratings move later demand by ``review_effect``.
    ``modality_scale`` multiplies the ``visual`` (colour, pattern), ``textual`` (tier) and
    ``attribute`` (category; the price elasticity stays) effects, for shops whose modalities
    matter by known, distinct amounts; the truth holds the scaled effects. ``content_signal``
    multiplies all three: 0 makes the content (photo, text, category) unrelated to demand, 1
    keeps today's effects, so a benchmark can ask whether a content model's gain holds when
    the content carries less or nothing."""
    if not (math.isfinite(content_signal) and content_signal >= 0):
        raise InputError(f"synthetic: content_signal must be a finite number >= 0, got "
                         f"{content_signal}")
    scale = {"visual": 1.0, "textual": 1.0, "attribute": 1.0, **(modality_scale or {})}
    if set(scale) != {"visual", "textual", "attribute"} or not all(
            math.isfinite(v) for v in scale.values()):
        raise InputError(f"synthetic: modality_scale takes finite visual, textual and "
                         f"attribute factors, got {modality_scale}")
    scale = {k: v * content_signal for k, v in scale.items()}
    colour_effect = {k: v * scale["visual"] for k, v in COLOUR_EFFECT.items()}
    pattern_effect = {k: v * scale["visual"] for k, v in PATTERN_EFFECT.items()}
    tier_effect = {k: v * scale["textual"] for k, v in TIERS.items()}
    category_effect = {k: v * scale["attribute"] for k, v in CATEGORIES.items()}
    for name, value in (("promo_uplift", promo_uplift), ("trend_effect", trend_effect),
                        ("review_effect", review_effect)):
        if not math.isfinite(value):
            raise InputError(f"synthetic: {name} must be a finite number, got {value}")
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "images").mkdir(exist_ok=True)
    start = FIRST_WEEK
    weeks = start + np.arange(n_weeks) * np.timedelta64(7, "D")

    colours = rng.choice(list(COLOURS), n_items)
    patterns = rng.choice(PATTERNS, n_items)
    shapes = rng.choice(SHAPES, n_items)
    tiers = rng.choice(list(TIERS), n_items)
    categories = rng.choice(list(CATEGORIES), n_items)
    materials = rng.choice(MATERIALS, n_items)
    prices = np.round(np.exp(rng.normal(math.log(20), 0.4, n_items)), 2)
    # Most items launch in the first half; the last `new_items` share launch near the end
    # (cold-start material: little or no history at the forecast origin).
    launch = rng.integers(0, n_weeks // 2, n_items)
    n_new = round(new_items * n_items)
    launch[n_items - n_new:] = rng.integers(n_weeks - 8, n_weeks, n_new)
    item_ids = [f"S{i:05d}" for i in range(n_items)]

    visual = np.array([colour_effect[c] + pattern_effect[p] for c, p in zip(colours, patterns,
                                                                            strict=True)])
    textual = np.array([tier_effect[t] for t in tiers])
    attribute = np.array([category_effect[c] for c in categories]) + PRICE_ELASTICITY * (
        np.log(prices) - math.log(20))
    for i in range(n_items):
        image = Image.new("RGB", (image_size, image_size), (245, 245, 240))
        render(ImageDraw.Draw(image), image_size, shapes[i], COLOURS[colours[i]], patterns[i],
               rng)
        image.save(folder / "images" / f"{item_ids[i]}.png")
    if covariates:  # drawn up front from their own stream: the effects' sizes change no draw
        extra = np.random.default_rng([seed, 1])
        plans = [draw_price_plan(extra, prices, launch, n_weeks) for _ in MARKETS]
        trends = draw_trends(extra, list(CATEGORIES), weeks)
        trend_term = trend_log_effect(trends, categories, trend_effect)
    if reviews:  # a stream of their own as well: without reviews, nothing else changes
        review_rows = draw_reviews(np.random.default_rng([seed, 2]), item_ids, launch, weeks,
                                   [m[0] for m in MARKETS])
    items = pl.DataFrame({
        "item_id": item_ids,
        "title": [f"{t.capitalize()} {m} {c} {i}" for t, m, c, i in
                  zip(tiers, materials, categories, range(n_items), strict=True)],
        "description": [describe(t, c, m, rng) for t, c, m in zip(tiers, categories, materials,
                                                                   strict=True)],
        "category": categories, "material": materials, "price": prices,
        "image": [f"images/{i}.png" for i in item_ids],
        "launch_date": weeks[launch].astype("datetime64[us]"),
    })

    event_rows, sales_parts = [], []
    week_index = np.arange(n_weeks)
    season = seasonal_amplitude * np.sin(2 * np.pi * week_index / 52.0)
    for m, (name, _currency, _maturity, _lang, level, growth, half_life) in enumerate(MARKETS):
        kol = np.zeros((n_items, n_weeks))
        for _ in range(events_per_market):
            item, week = int(rng.integers(n_items)), int(rng.integers(n_weeks))
            if week < launch[item]:
                continue
            after = week_index[week:] - week
            kol[item, week:] += kol_uplift * np.exp(-math.log(2) * after / half_life)
            event_rows.append({"market": name, "timestamp": weeks[week].astype("datetime64[us]")
                               .item(), "item_id": item_ids[item],
                               "kol_id": f"K{int(rng.integers(20)):02d}",
                               "audience": float(rng.integers(1_000, 100_000))})
        log_mean = (0.5 + level + growth * week_index[None, :] + season[None, :]
                    + (visual + textual + attribute)[:, None] + kol)
        if covariates:
            log_mean = log_mean + price_log_effect(plans[m], prices, PRICE_ELASTICITY,
                                                   promo_uplift) + trend_term
        if reviews:
            log_mean = log_mean + review_log_effect(review_rows, item_ids, name, weeks,
                                                    review_effect)
        units = rng.poisson(np.exp(log_mean))
        alive = week_index[None, :] >= launch[:, None]
        rows, cols = np.nonzero(alive)
        sales_parts.append(pl.DataFrame({
            "item_id": np.asarray(item_ids)[rows], "market": name,
            "week": weeks[cols].astype("datetime64[us]"),
            "units": units[rows, cols].astype(float),
            "price": plans[m].price[rows, cols] if covariates else prices[rows],
            **({"promo": plans[m].promo[rows, cols]} if covariates else {})}))
    sales = pl.concat(sales_parts)
    markets = pl.DataFrame({"market": [m[0] for m in MARKETS], "currency": [m[1] for m in MARKETS],
                            "maturity": [m[2] for m in MARKETS],
                            "language": [m[3] for m in MARKETS]})
    days = np.arange(start - np.timedelta64(7, "D"), weeks[-1] + np.timedelta64(7, "D"))
    walks = {c: v * np.exp(np.cumsum(rng.normal(0, 0.004, len(days))))
             for c, v in FX_START.items()}
    fx = pl.DataFrame({"Date": days.astype("datetime64[us]"), **walks})

    sales.write_parquet(folder / "sales.parquet")
    items.write_parquet(folder / "items.parquet")
    markets.write_csv(folder / "markets.csv")
    fx.write_parquet(folder / "fx.parquet")
    pl.DataFrame(event_rows).write_parquet(folder / "events.parquet")
    spec = {
        "name": "synthetic", "freq": "W", "currency": "USD", "sales_grain": "period",
        "sales": {"path": "sales.parquet", "columns": {
            "item_id": "item_id", "market": "market", "timestamp": "week", "quantity": "units",
            "price": "price"}},
        "items": {"path": "items.parquet", "columns": {
            "item_id": "item_id", "title": "title", "description": "description",
            "image": "image", "launch_date": "launch_date"},
            "static_categorical": ["category", "material"], "static_numeric": ["price"]},
        "markets": {"path": "markets.csv", "columns": {
            "market": "market", "currency": "currency", "maturity": "maturity",
            "language": "language"}},
        "events": {"path": "events.parquet", "columns": {
            "market": "market", "timestamp": "timestamp", "item_id": "item_id",
            "kol_id": "kol_id", "audience": "audience"}},
        "fx": {"path": "fx.parquet", "date_column": "Date", "base_currency": "EUR"},
        "cleaning": {"drop_partial_periods": False, "require_positive_price": True},
    }
    if covariates:
        trends.write_parquet(folder / "trends.parquet")
        spec["sales"]["columns"]["promo"] = "promo"
        # The trend is keyed by the items' category, not by item or market; it is past-only
        # because the demand reacts to last week's value and the table ends with the sales.
        spec["exogenous"] = [{"path": "trends.parquet",
                              "columns": {"timestamp": "week", "attribute": "term"},
                              "attribute_of": ["category"], "past_only": ["trend"]}]
    if reviews:
        review_rows.write_parquet(folder / "reviews.parquet")
        spec["reviews"] = SPEC_ENTRY
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    truth = SyntheticTruth(
        colour_effect=colour_effect, pattern_effect=pattern_effect, tier_effect=tier_effect,
        category_effect=category_effect, price_elasticity=PRICE_ELASTICITY, kol_uplift=kol_uplift,
        kol_half_life={m[0]: m[6] for m in MARKETS},
        market_maturity={m[0]: m[2] for m in MARKETS},
        market_growth={m[0]: m[5] for m in MARKETS}, seasonal_amplitude=seasonal_amplitude,
        item_effects=pl.DataFrame({"item_id": item_ids, "colour": colours, "pattern": patterns,
                                   "shape": shapes, "tier": tiers, "visual": visual,
                                   "textual": textual, "attribute": attribute,
                                   "launch_week": launch}),
        promo_uplift=promo_uplift if covariates else 0.0,
        trend_effect=trend_effect if covariates else 0.0,
        review_effect=review_effect if reviews else 0.0)
    (folder / "truth.json").write_text(truth.to_json())
    return truth


def synthetic(folder: str | Path | None = None, **params: object) -> SyntheticDataset:
    """Generate (or reuse, when the same parameters were generated into ``folder`` before) a
    synthetic multimodal shop and load it through its dataset spec."""
    key = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
    folder = Path(folder) if folder else CACHE / key[:16]
    marker = folder / "params.json"
    if marker.is_file() and marker.read_text() == key:
        truth = _read_truth(folder / "truth.json")
    else:
        truth = generate(folder, **params)
        marker.write_text(key)
    spec = load_spec(folder / "spec.yaml")
    return SyntheticDataset(name="synthetic", spec=spec, tables=load_tables(spec), truth=truth,
                            folder=folder)


def _read_truth(path: Path) -> SyntheticTruth:
    data = json.loads(path.read_text())
    data["item_effects"] = pl.DataFrame(data["item_effects"])
    return SyntheticTruth(**data)


def expected_demand(dataset: SyntheticDataset) -> pl.DataFrame:
    """The true Poisson mean of every sales row (``item_id, market, timestamp, mean``), rebuilt
    from the truth and the events table as ``generate`` drew it (with covariates, also from the
    rows' prices and promotions and the folder's trends.parquet; with reviews, from its
    reviews.parquet): the best any forecast can do, so that a benchmark can report the noise
    floor (the oracle's error against the draws)."""
    truth = dataset.truth
    if truth is None:
        raise ValueError("expected_demand needs a synthetic dataset with its truth")
    sales = dataset.tables.sales.select(
        pl.col("item_id").cast(pl.String), pl.col("market").cast(pl.String),
        pl.col("timestamp").cast(pl.Datetime("us")), "price",
        *[c for c in ("promo",) if c in dataset.tables.sales.columns])
    sales = covariate_log_effect(sales, dataset.tables.items, dataset.folder,
                                 truth.price_elasticity, truth.promo_uplift, truth.trend_effect)
    if truth.review_effect != 0.0:
        sales = with_review_effect(sales, dataset.folder, truth.review_effect, FIRST_WEEK)
    first = FIRST_WEEK.astype("datetime64[us]").item()
    week = ((pl.col("timestamp") - pl.lit(first)).dt.total_days() // 7).cast(pl.Int64)
    markets = pl.DataFrame({"market": [m[0] for m in MARKETS], "_level": [m[4] for m in MARKETS],
                            "_growth": [m[5] for m in MARKETS],
                            "_half_life": [m[6] for m in MARKETS]})
    effects = truth.item_effects.select(
        "item_id", (pl.col("visual") + pl.col("textual") + pl.col("attribute")).alias("_item"))
    rows = (sales.with_columns(week.alias("_week"))
            .join(markets, on="market", how="left").join(effects, on="item_id", how="left"))
    events = (dataset.tables.events.drop_nulls("item_id").select(
        pl.col("item_id").cast(pl.String), pl.col("market").cast(pl.String),
        pl.col("timestamp").cast(pl.Datetime("us")).alias("_event")))
    lifts = (rows.select("item_id", "market", "timestamp", "_week", "_half_life")
             .join(events, on=["item_id", "market"], how="inner")
             .with_columns(((pl.col("timestamp") - pl.col("_event")).dt.total_days() // 7)
                           .alias("_after"))
             .filter(pl.col("_after") >= 0)
             .group_by("item_id", "market", "timestamp")
             .agg((truth.kol_uplift * (-math.log(2) * pl.col("_after")
                                       / pl.col("_half_life")).exp()).sum().alias("_kol")))
    season = truth.seasonal_amplitude * (2 * math.pi * pl.col("_week") / 52.0).sin()
    return (rows.join(lifts, on=["item_id", "market", "timestamp"], how="left")
            .with_columns((0.5 + pl.col("_level") + pl.col("_growth") * pl.col("_week") + season
                           + pl.col("_item") + pl.col("_kol").fill_null(0.0)
                           + pl.col("_covariates")).exp()
                          .alias("mean"))
            .select("item_id", "market", "timestamp", "mean"))
