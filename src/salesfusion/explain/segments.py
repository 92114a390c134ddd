"""Market segments: declared in the markets table, or learned from how each market's demand
behaves.

Learned segments cluster markets on three documented features of the panel, all in percent:

- ``growth``: like-for-like growth per year: the least-squares slope of the log of the market's
  demand per live series (total units over the series selling there that period, so a catalogue
  that is still launching items does not count as growth), as a yearly rate;
- ``volatility``: the standard deviation of that log level around its trend, x100;
- ``penetration``: the share of the panel's items that have sold in the market.

The features are not standardised: in common percent units a point counts the same in each, and
a feature that barely differs between markets (its spread is noise) cannot dominate, as it would
once rescaled to unit variance. k-means (scikit-learn, seeded, several starts) runs for every k
from 2 to ``max_k`` (at most markets - 1); the k with the best silhouette wins.
Stability: the clustering is repeated on random subsamples of 80 % of each market's periods
(without replacement, so no period counts twice; features recomputed from them) and compared
with the full-data labels by the adjusted Rand index; the mean ARI is reported, near 1 for
segments the data supports and near 0 for arbitrary ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score

from salesfusion.data.panel import Panel
from salesfusion.errors import InputError

FEATURES = ("growth", "volatility", "penetration")
PERIODS_PER_YEAR = {"D": 365.25, "W": 52.18, "M": 12.0}


@dataclass
class Segments:
    """``markets``: market, the features, ``segment``; ``k``; ``silhouette``; ``stability``
    (mean adjusted Rand index over subsamples; None for declared segments)."""

    markets: pl.DataFrame
    k: int
    silhouette: float | None
    stability: float | None
    source: str


def declared_segments(panel: Panel, column: str) -> Segments:
    """Segments from a markets-table column (maturity, region, language...)."""
    if panel.markets is None or column not in panel.markets.columns:
        raise InputError(f"segment column '{column}' is not in the markets table; declare it "
                         f"there (e.g. maturity, region, language) or learn segments")
    sold = panel.data.select("market").unique()
    frame = (market_features(panel)
             .join(panel.markets.select("market", pl.col(column).cast(pl.String)
                                        .alias("segment")), on="market", how="left")
             .join(sold, on="market", how="semi")
             .with_columns(pl.col("segment").fill_null("unknown")))
    return Segments(frame.sort("market"), frame["segment"].n_unique(), None, None,
                    f"markets table column '{column}'")


def market_features(panel: Panel, rows: dict[str, np.ndarray] | None = None) -> pl.DataFrame:
    """Growth, volatility and penetration of every market (see the module docstring);
    ``rows`` picks, per market, which of its periods (indices into its sorted totals) to use."""
    totals = (panel.data.group_by("market", "timestamp")
              .agg((pl.col("y").sum() / pl.len()).alias("y"))
              .sort("market", "timestamp"))
    per_year = PERIODS_PER_YEAR[panel.freq]
    items = panel.data["item_id"].n_unique()
    sold = (panel.data.filter(pl.col("y") > 0).group_by("market")
            .agg(pl.col("item_id").n_unique().alias("sold_items")))
    out = []
    for (market,), group in totals.group_by("market", maintain_order=True):
        level = np.log1p(group["y"].to_numpy())
        time = np.arange(len(level), dtype=float)
        if rows is not None:
            picked = np.sort(rows[market])
            level, time = level[picked], time[picked]
        if len(level) < 3:
            raise InputError(f"market {market!r} has {len(level)} periods; segments need at "
                             f"least 3 per market")
        slope, intercept = np.polyfit(time, level, 1)
        residual = level - (slope * time + intercept)
        out.append({"market": market, "growth": float(np.expm1(slope * per_year) * 100),
                    "volatility": float(np.std(residual) * 100)})
    frame = pl.DataFrame(out).join(sold, on="market", how="left")
    return frame.with_columns((pl.col("sold_items").fill_null(0) / items * 100)
                              .alias("penetration")).select("market", *FEATURES)


def _cluster(values: np.ndarray, k: int, seed: int) -> np.ndarray:
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(values)


def learned_segments(panel: Panel, max_k: int = 4, resamples: int = 100,
                     seed: int = 0) -> Segments:
    """Markets clustered on their demand features, k by silhouette, with a subsampling
    stability check (see the module docstring)."""
    features = market_features(panel).sort("market")
    n = features.height
    if n < 3:
        raise InputError(f"learning segments needs at least 3 markets; the panel has {n}")
    values = features.select(FEATURES).to_numpy()  # percent units, unscaled (see above)
    candidates = range(2, min(max_k, n - 1) + 1)
    scored = []
    for k in candidates:
        labels = _cluster(values, k, seed)
        if len(np.unique(labels)) == k:  # identical markets can leave a cluster empty
            scored.append((silhouette_score(values, labels), k, labels))
    if not scored:
        raise InputError("the markets' features do not separate into segments")
    silhouette, k, labels = max(scored, key=lambda item: item[0])
    rng = np.random.default_rng(seed)
    lengths = dict(panel.data.group_by("market").agg(pl.col("timestamp").n_unique())
                   .iter_rows())
    agreement = []
    for _ in range(resamples):
        rows = {m: rng.choice(lengths[m], max(3, int(0.8 * lengths[m])), replace=False)
                for m in features["market"]}
        resampled = market_features(panel, rows).sort("market").select(FEATURES).to_numpy()
        agreement.append(adjusted_rand_score(labels, _cluster(resampled, k, seed)))
    # Name segments by their growth, so a rerun labels the same clusters the same way.
    order = np.argsort([values[labels == c, 0].mean() for c in range(k)])
    names = {int(c): f"segment_{rank + 1}" for rank, c in enumerate(order)}
    frame = features.with_columns(pl.Series("segment", [names[int(c)] for c in labels]))
    return Segments(frame, k, float(silhouette), float(np.mean(agreement)),
                    "learned: k-means on growth, volatility, penetration")
