"""Planted price plans, promotions and category search trends for the synthetic shop.

Opt-in (``generate(..., covariates=True)``). Every draw here comes from a generator of its own
(seeded ``[seed, 1]``), so the default shop's random stream, and with it its data, is unchanged.
The effects on the log mean of weekly demand:

- price plans: each (item, market) series starts at the item's base price, moves by 0-2
  permanent changes of 5-25% at random weeks after launch, and is cut by a 10, 20 or 30%
  discount in promotion weeks (spells of 1-3 weeks, about 8% of weeks). Demand follows
  ``PRICE_ELASTICITY * (log price_t - log base price)``, the elasticity that already holds
  across items, plus ``promo_uplift`` in promotion weeks (display and feature beyond the cut);
- trends: one search-trend index (0-100, a smooth random walk with a yearly shape) per category
  term over exactly the sales weeks; demand follows ``trend_effect`` times the standardised
  index of the item's category one week earlier, so the signal is usable as past-only.

``expected_demand`` rebuilds these terms from the written tables with the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from salesfusion.errors import InputError

PROMO_DEPTHS = (0.1, 0.2, 0.3)
# Spell starts per live week: with spells of 1-3 weeks (mean 2) about 8% of weeks are on promo.
PROMO_START_RATE = 0.04
MAX_PRICE_CHANGES = 2
PRICE_CHANGE = (0.05, 0.25)  # size range of a permanent change, either direction


@dataclass
class PricePlan:
    """One market's weekly prices and promotion flags, ``(n_items, n_weeks)`` each."""

    price: np.ndarray  # rounded to cents, as a shopper sees it: demand follows this price
    promo: np.ndarray  # 0/1


def draw_price_plan(rng: np.random.Generator, prices: np.ndarray, launch: np.ndarray,
                    n_weeks: int) -> PricePlan:
    """Every item's price plan in one market, starting from its base price ``prices``."""
    factor = np.ones((len(prices), n_weeks))
    discount = np.zeros((len(prices), n_weeks))
    for i, first in enumerate(launch):
        for _ in range(int(rng.integers(0, MAX_PRICE_CHANGES + 1))):
            if first + 1 < n_weeks:  # a change in the launch week would just be another base
                week = int(rng.integers(first + 1, n_weeks))
                factor[i, week:] *= 1 + rng.choice((-1, 1)) * rng.uniform(*PRICE_CHANGE)
        for _ in range(int(rng.poisson(PROMO_START_RATE * (n_weeks - first)))):
            start = int(rng.integers(first, n_weeks))
            discount[i, start:start + int(rng.integers(1, 4))] = rng.choice(PROMO_DEPTHS)
    # A cent is the floor so that require_positive_price never drops a row of a cheap item.
    price = np.maximum(np.round(prices[:, None] * factor * (1 - discount), 2), 0.01)
    return PricePlan(price=price, promo=(discount > 0).astype(np.int64))


def price_log_effect(plan: PricePlan, prices: np.ndarray, elasticity: float,
                     promo_uplift: float) -> np.ndarray:
    """The plan's term of the log mean, ``(n_items, n_weeks)``."""
    return (elasticity * (np.log(plan.price) - np.log(prices)[:, None])
            + promo_uplift * plan.promo)


def draw_trends(rng: np.random.Generator, terms: list[str], weeks: np.ndarray) -> pl.DataFrame:
    """``term, week, trend``: a 0-100 search-interest index per term over ``weeks``."""
    index = np.arange(len(weeks))
    parts = []
    for term in terms:
        # Shocks move the slope, not the level, so the walk is smooth like real search interest.
        velocity = np.zeros(len(weeks))
        shocks = rng.normal(0.0, 0.02, len(weeks))
        for t in range(1, len(weeks)):
            velocity[t] = 0.85 * velocity[t - 1] + shocks[t]
        shape = rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * (index + rng.uniform(0, 52)) / 52.0)
        level = np.exp(np.cumsum(velocity) + shape)
        parts.append(pl.DataFrame({"term": term, "week": weeks.astype("datetime64[us]"),
                                   "trend": np.round(100 * level / level.max(), 1)}))
    return pl.concat(parts)


def lagged_trends(trends: pl.DataFrame) -> pl.DataFrame:
    """``term, week, lagged``: each term's standardised index of the week before ``week``; 0 in
    a term's first week, where no earlier value is known."""
    parts = []
    for part in trends.sort("term", "week").partition_by("term", maintain_order=True):
        values = part["trend"].to_numpy()
        spread = values.std()
        z = (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)
        parts.append(part.select("term", "week").with_columns(
            pl.Series("lagged", np.concatenate([[0.0], z[:-1]]))))
    return pl.concat(parts)


def trend_log_effect(trends: pl.DataFrame, categories: np.ndarray,
                     trend_effect: float) -> np.ndarray:
    """The trend term of the log mean, ``(n_items, n_weeks)``, for items of ``categories``."""
    lagged = {term: part["lagged"].to_numpy() for (term,), part in
              lagged_trends(trends).partition_by("term", as_dict=True).items()}
    return trend_effect * np.stack([lagged[c] for c in categories])


def covariate_log_effect(rows: pl.DataFrame, items: pl.DataFrame, folder: Path | None,
                         elasticity: float, promo_uplift: float,
                         trend_effect: float) -> pl.DataFrame:
    """``rows`` (``item_id, timestamp, price`` and ``promo`` when the shop has promotions) with
    ``_covariates``: the price-plan, promotion and trend terms of each row's log mean. A shop
    generated without covariates sells at its base prices, so its terms are 0."""
    base = items.select(pl.col("item_id").cast(pl.String), pl.col("category").cast(pl.String),
                        pl.col("price").cast(pl.Float64).alias("_base"))
    rows = rows.join(base, on="item_id", how="left")
    term = elasticity * (pl.col("price").cast(pl.Float64).log() - pl.col("_base").log())
    if "promo" in rows.columns:
        term = term + promo_uplift * pl.col("promo").cast(pl.Float64)
    if trend_effect != 0.0:
        path = folder / "trends.parquet" if folder else None
        if path is None or not path.is_file():
            raise InputError(f"expected_demand: trend_effect {trend_effect} needs the shop's "
                             f"trends.parquet, not found in folder {folder}")
        lagged = lagged_trends(pl.read_parquet(path)).select(
            pl.col("term").alias("category"), pl.col("week").cast(pl.Datetime("us"))
            .alias("timestamp"), "lagged")
        rows = rows.join(lagged, on=["category", "timestamp"], how="left")
        term = term + trend_effect * pl.col("lagged")
    return rows.with_columns(term.alias("_covariates"))
