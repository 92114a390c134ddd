"""Planted reviews for the synthetic shop: star ratings whose sentiment moves later demand.

Opt-in (``generate(..., reviews=True)``). Every draw here comes from a generator of its own
(seeded ``[seed, 2]``), so a shop generated without reviews is unchanged, draw for draw.

- Each (item, market) series has a latent sentiment (how buyers in that market find the
  product): an AR(1) path with persistence ``PERSISTENCE`` and standard deviation 1, from the
  first week on.
- From its launch, each live week gets Poisson(``REVIEW_RATE``) reviews, written at a random
  time of the week. A review's stars are ``RATING_CENTRE + RATING_SPREAD x sentiment`` plus
  noise, rounded and clipped to 1-5; its text is a short phrase whose words match the stars
  (``REVIEW_TEXTS``), so a text encoder could read the same sentiment.
- Demand reacts to the reviews a shopper reads, not to the latent sentiment: week w's log mean
  gains ``review_effect x (r - NEUTRAL_RATING)``, where r is the mean stars of the latest week
  before w with reviews of that item in that market (nothing before its first review). A good
  week of reviews lifts every following week until newer reviews replace it; the review
  channels of ``data.reviews`` (the period's count and mean rating, the latter carried forward)
  are exactly what a forecaster needs to read it.

``expected_demand`` rebuilds the term from the written ``reviews.parquet`` with the same function.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl

from salesfusion.errors import InputError

PERSISTENCE = 0.8
REVIEW_RATE = 0.6  # reviews per live week of a series
RATING_CENTRE, RATING_SPREAD, RATING_NOISE = 3.6, 1.0, 0.5
NEUTRAL_RATING = 3.0  # the mean stars that neither lift nor lower demand
REVIEW_TEXTS = {
    1: ("Terrible, it broke after a week.", "Awful quality, do not buy.",
        "Very disappointed, sent it back."),
    2: ("Poor quality for the price.", "Not as pictured, disappointing.",
        "Arrived scratched, not happy."),
    3: ("It is okay, nothing special.", "Average, does the job.", "Fine, but the colour is off."),
    4: ("Good value, happy with it.", "Nice quality, would buy again.",
        "Works well, fast delivery."),
    5: ("Excellent, love it!", "Perfect gift, great quality.", "Wonderful, five stars."),
}
SPEC_ENTRY = {"path": "reviews.parquet", "columns": {
    "item_id": "item_id", "market": "market", "timestamp": "reviewed_at", "text": "text",
    "rating": "stars"}, "rating_range": [1, 5]}


def draw_reviews(rng: np.random.Generator, item_ids: list[str], launch: np.ndarray,
                 weeks: np.ndarray, markets: list[str]) -> pl.DataFrame:
    """``item_id, market, reviewed_at, stars, text``: the reviews of every live series."""
    n_items, n_weeks = len(item_ids), len(weeks)
    live = np.arange(n_weeks)[None, :] >= launch[:, None]
    parts = []
    for market in markets:
        sentiment = np.empty((n_items, n_weeks))
        sentiment[:, 0] = rng.normal(0.0, 1.0, n_items)
        shocks = rng.normal(0.0, math.sqrt(1 - PERSISTENCE ** 2), (n_items, n_weeks))
        for t in range(1, n_weeks):
            sentiment[:, t] = PERSISTENCE * sentiment[:, t - 1] + shocks[:, t]
        counts = rng.poisson(REVIEW_RATE, (n_items, n_weeks)) * live
        rows, cols = np.nonzero(counts)
        item, week = np.repeat(rows, counts[rows, cols]), np.repeat(cols, counts[rows, cols])
        noise = rng.normal(0.0, RATING_NOISE, len(item))
        stars = np.clip(np.round(RATING_CENTRE + RATING_SPREAD * sentiment[item, week] + noise),
                        1, 5).astype(np.int64)
        offsets = rng.integers(0, 7 * 86_400, len(item)).astype("timedelta64[s]")
        phrase = rng.integers(0, 3, len(item))
        parts.append(pl.DataFrame({
            "item_id": np.asarray(item_ids)[item], "market": market,
            "reviewed_at": (weeks[week].astype("datetime64[s]") + offsets)
            .astype("datetime64[us]"),
            "stars": stars,
            "text": [REVIEW_TEXTS[s][p] for s, p in zip(stars.tolist(), phrase.tolist(),
                                                         strict=True)]}))
    return pl.concat(parts)


def review_log_effect(reviews: pl.DataFrame, item_ids: list[str], market: str,
                      weeks: np.ndarray, review_effect: float) -> np.ndarray:
    """The review term of one market's log mean, ``(len(item_ids), len(weeks))`` (see the
    module docstring); ``weeks`` are the shop's week starts."""
    part = reviews.filter(pl.col("market") == market)
    index = {item: i for i, item in enumerate(item_ids)}
    rows = np.array([index[i] for i in part["item_id"].to_list()], dtype=np.int64)
    written = part["reviewed_at"].to_numpy().astype("datetime64[D]")
    cols = ((written - weeks[0].astype("datetime64[D]")).astype(np.int64) // 7)
    sums = np.zeros((len(item_ids), len(weeks)))
    counts = np.zeros_like(sums)
    np.add.at(sums, (rows, cols), part["stars"].to_numpy().astype(float))
    np.add.at(counts, (rows, cols), 1.0)
    reviewed = counts > 0
    # Week w reads the latest reviewed week before it: the index of the last reviewed week up
    # to w - 1, carried along each row.
    latest = np.where(reviewed, np.arange(len(weeks))[None, :], -1)
    latest = np.maximum.accumulate(latest, axis=1)
    before = np.concatenate([np.full((len(item_ids), 1), -1), latest[:, :-1]], axis=1)
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=reviewed)
    read = np.take_along_axis(means, np.maximum(before, 0), axis=1)
    return np.where(before >= 0, review_effect * (read - NEUTRAL_RATING), 0.0)


def with_review_effect(rows: pl.DataFrame, folder: Path | None, review_effect: float,
                       first_week: np.datetime64) -> pl.DataFrame:
    """``rows`` (``item_id, market, timestamp, _covariates``) with the review term of each row
    added to ``_covariates``, rebuilt from the shop's reviews.parquet."""
    path = folder / "reviews.parquet" if folder else None
    if path is None or not path.is_file():
        raise InputError(f"expected_demand: review_effect {review_effect} needs the shop's "
                         f"reviews.parquet, not found in folder {folder}")
    reviews = pl.read_parquet(path)
    last = rows["timestamp"].max()
    n_weeks = (np.datetime64(last, "D") - first_week.astype("datetime64[D]")).astype(int) // 7 + 1
    weeks = first_week.astype("datetime64[D]") + np.arange(n_weeks) * np.timedelta64(7, "D")
    item_ids = rows["item_id"].unique().sort().to_list()
    terms = [pl.DataFrame({
        "item_id": np.repeat(item_ids, n_weeks), "market": market,
        "timestamp": np.tile(weeks.astype("datetime64[us]"), len(item_ids)),
        "_review": review_log_effect(reviews, item_ids, market, weeks, review_effect).ravel()})
        for market in rows["market"].unique().sort().to_list()]
    return (rows.join(pl.concat(terms), on=["item_id", "market", "timestamp"], how="left")
            .with_columns((pl.col("_covariates") + pl.col("_review")).alias("_covariates"))
            .drop("_review"))
