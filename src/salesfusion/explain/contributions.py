"""What the forecast leans on, and how that changes over an item's life: modality shares of an
attribution table (``explain.attributions``: one row per window, forecast step and variable).

Definitions used throughout:

- A (window, step) is one forecast point: a window is ``(item_id, market, origin)``.
- ``A_g``: a group's attribution at a point, the SIGNED sum over the group's variables (a price
  pulling the forecast up and a discount pulling it down partly cancel inside "exogenous").
- ``share_g = |A_g| / sum_h |A_h|`` over the groups of the table; a group with no row at a point
  has ``A_g = 0`` there, so the shares of a point sum to 1. Points whose total is 0 (the output
  equals the baseline's) carry no information on shares and are dropped.
- ``modality_shares``: the mean share per cell of ``by`` and group, over the cell's points
  (``n``). Its interval is a normal approximation with a cluster-robust (CR1) standard error
  over items: the steps and windows of one item are not independent, so clustering by item
  keeps the interval from being too narrow. Bounds are clipped to [0, 1].
- ``inverted_u``: the combined share of some groups (default: the content groups text, image
  and static) per point, fitted by least squares on ``x`` and ``x^2`` with x in its own units
  (periods for ``age``), so the curvature is in share per period^2. Intervals are percentiles of
  a bootstrap that resamples clusters (items) with replacement.

Ages are long-tailed (a few series have years of history), so plots over age read better with
``age_buckets``: ages capped at ``max_age`` and pooled into bins of ``width`` periods.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.stats import norm

from salesfusion.errors import InputError
from salesfusion.explain.event_response import percentile_interval
from salesfusion.explain.segments import Segments

POINT = ("item_id", "market", "origin", "step")
REQUIRED = (*POINT, "group", "attribution")
PER_VARIABLE = ("group", "variable", "attribution")


def _require(frame: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{what}: column(s) {', '.join(missing)} not in the attribution table "
                         f"(columns: {', '.join(frame.columns)})")


def with_segments(frame: pl.DataFrame, segments: Segments) -> pl.DataFrame:
    """``frame`` with a ``segment`` column from ``segments.markets`` (market -> segment); a
    market the segments do not know is labelled "unknown"."""
    _require(frame, ["market"], "with_segments")
    table = segments.markets.select("market", pl.col("segment").cast(pl.String))
    return (frame.drop("segment", strict=False).join(table, on="market", how="left")
            .with_columns(pl.col("segment").fill_null("unknown")))


def age_buckets(frame: pl.DataFrame, max_age: int, width: int = 1) -> pl.DataFrame:
    """``frame`` with ``age_bucket``: ``min(age, max_age)`` floored to a multiple of ``width``
    (the bin's lower edge). The last bucket therefore pools every age from its edge up: with
    ``max_age=24, width=4`` the buckets are 0, 4, ..., 24 and 24 means "24 periods or older"."""
    _require(frame, ["age"], "age_buckets")
    if max_age < 0 or width < 1:
        raise InputError(f"age_buckets: need max_age >= 0 and width >= 1; got max_age={max_age}, "
                         f"width={width}")
    capped = pl.min_horizontal(pl.col("age"), pl.lit(max_age))
    return frame.with_columns(((capped // width) * width).cast(pl.Int64).alias("age_bucket"))


def _point_shares(attributions: pl.DataFrame, keep: Sequence[str], what: str) -> pl.DataFrame:
    """One row per (point, group of the table): ``*POINT, *keep, group, share``; points with a
    zero total dropped. ``keep`` columns must be constant within a point."""
    _require(attributions, [*REQUIRED, *keep], what)
    bad = [c for c in keep if c in PER_VARIABLE]
    if bad:
        raise InputError(f"{what}: cannot group by {', '.join(bad)}: shares are computed across "
                         f"groups and variables")
    keys = [*POINT, *[c for c in dict.fromkeys(keep) if c not in POINT]]
    attributions = attributions.with_columns(pl.col("group").cast(pl.String))
    points = attributions.select(keys).unique()
    if points.height != attributions.select(POINT).unique().height:
        raise InputError(f"{what}: column(s) {', '.join(k for k in keys if k not in POINT)} vary "
                         f"within a (window, step); group by per-window columns only")
    order = [c for c in (*POINT, "group", "variable", "attribution") if c in attributions.columns]
    sums = (attributions.sort(order, nulls_last=True)
            .group_by(*POINT, "group", maintain_order=True)
            .agg(pl.col("attribution").sum().alias("a")))
    groups = attributions.select("group").unique()
    # Sorted so that every float sum below adds in one order: a rerun gives identical bits.
    full = (points.join(groups, how="cross").join(sums, on=[*POINT, "group"], how="left")
            .with_columns(pl.col("a").fill_null(0.0).abs()).sort(*POINT, "group"))
    total = pl.col("a").sum().over(POINT)
    return (full.filter(total > 0).with_columns((pl.col("a") / total).alias("share"))
            .drop("a"))


def modality_shares(attributions: pl.DataFrame, by: Sequence[str], level: float = 0.95,
                    cluster: str = "item_id") -> pl.DataFrame:
    """Mean share of each group per cell of ``by`` (e.g. ``["age"]``, ``["segment", "age"]``,
    ``["step"]``; empty for overall): ``*by, group, share, share_lo, share_hi, n`` with ``n``
    the points averaged and a ``level`` interval (normal approximation, standard error
    clustered by ``cluster``; see the module docstring). Shares in a cell sum to 1."""
    if not 0 < level < 1:
        raise InputError(f"modality_shares: level must be in (0, 1); got {level}")
    by = list(by)
    points = _point_shares(attributions, [*by, cluster], "modality_shares")
    cell = by or ["_all"]
    if not by:
        points = points.with_columns(pl.lit(0).alias("_all"))
    per_cluster = points.group_by(*dict.fromkeys([*cell, "group", cluster]),
                                  maintain_order=True).agg(
        pl.col("share").sum().alias("s"), pl.len().alias("m"))
    n, mean = pl.col("m").sum(), pl.col("s").sum() / pl.col("m").sum()
    stats = per_cluster.with_columns(mean.over(*cell, "group").alias("share")).group_by(
        *cell, "group", maintain_order=True).agg(
        pl.col("share").first(), n.alias("n"), pl.len().alias("clusters"),
        ((pl.col("s") - pl.col("m") * pl.col("share")) ** 2).sum().alias("ss"))
    # CR1: sum over clusters of squared residual totals, / n^2, times G / (G - 1).
    se = (pl.col("ss") / pl.col("n") ** 2 * pl.col("clusters")
          / (pl.col("clusters") - 1)).sqrt()
    z = float(norm.ppf(0.5 + level / 2))
    half = pl.when(pl.col("clusters") > 1).then(z * se)
    out = stats.with_columns(
        (pl.col("share") - half).clip(0.0, 1.0).alias("share_lo"),
        (pl.col("share") + half).clip(0.0, 1.0).alias("share_hi"),
        pl.col("n").cast(pl.Int64))
    return out.select(*by, "group", "share", "share_lo", "share_hi", "n").sort(*by, "group")


@dataclass
class InvertedU:
    """Quadratic fit of a combined share on ``x``: ``curvature`` (coefficient of x^2, share per
    unit of x squared) and the ``vertex`` ``-b / 2c`` (x of the turning point) with ``level``
    bootstrap intervals; ``n_points`` (window-steps), ``n_windows``, ``n_clusters``, the
    observed range ``x_min..x_max``; ``verdict``; ``curve``: x, share (fitted), lo, hi."""

    groups: tuple[str, ...]
    x: str
    curvature: float
    curvature_lo: float
    curvature_hi: float
    vertex: float | None
    vertex_lo: float | None
    vertex_hi: float | None
    x_min: float
    x_max: float
    n_points: int
    n_windows: int
    n_clusters: int
    verdict: str
    curve: pl.DataFrame
    level: float
    bootstrap: int
    seed: int

    def summary(self) -> dict:
        """Every field but ``curve``, JSON-ready (NaN -> None)."""
        out = {k: v for k, v in self.__dict__.items() if k != "curve"}
        out["groups"] = list(self.groups)
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in out.items()}


def _design(u: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones_like(u), u, u * u])


def _verdict(lo: float, hi: float, vertex: float | None, x_min: float, x_max: float) -> str:
    inside = vertex is not None and x_min <= vertex <= x_max
    if lo <= 0 <= hi or not (np.isfinite(lo) and np.isfinite(hi)):
        return "not significant"
    if inside:
        return "inverted U" if hi < 0 else "U"
    return "monotone or flat (no turning point inside the range)"


def inverted_u(attributions: pl.DataFrame, groups: Sequence[str] = ("text", "image", "static"),
               x: str = "age", bootstrap: int = 500, seed: int = 0, level: float = 0.95,
               cluster: str = "item_id", max_x: float | None = None) -> InvertedU:
    """Does the combined share of ``groups`` rise then fall along ``x``?

    Per point (window, step) the combined share ``sum_{g in groups} share_g`` is regressed on
    ``1, x, x^2`` by least squares, x in its own units (periods for ``age``; centred internally
    for numerical stability, which leaves the curvature and vertex unchanged). ``max_x`` drops
    points with ``x > max_x`` (a long tail of old series would otherwise steer the parabola).
    The bootstrap draws ``cluster`` values (items) with replacement, ``bootstrap`` times, from
    ``numpy.random.default_rng(seed)``; intervals are percentiles, the vertex's over the draws
    whose curvature is not 0. Verdict: "inverted U" when the curvature interval lies below 0
    and the vertex inside the observed x range, "U" when above 0 and inside, "monotone or flat
    (no turning point inside the range)" when the curvature is significant but the vertex
    lies outside, "not significant" when the curvature interval contains 0.
    """
    if bootstrap < 1 or not 0 < level < 1:
        raise InputError(f"inverted_u: need bootstrap >= 1 and 0 < level < 1; got "
                         f"bootstrap={bootstrap}, level={level}")
    groups = tuple(groups)
    points = _point_shares(attributions, [x, cluster], "inverted_u")
    present = set(points["group"].unique().to_list())
    if not present & set(groups):
        raise InputError(f"inverted_u: none of the groups {', '.join(groups)} is in the table "
                         f"(groups: {', '.join(sorted(present))})")
    if not points.schema[x].is_numeric():
        raise InputError(f"inverted_u: x column '{x}' must be numeric; it is {points.schema[x]}")
    combined = (points.group_by(*dict.fromkeys([*POINT, x, cluster]))
                .agg(pl.col("share").filter(pl.col("group").is_in(groups)).sum().alias("y"))
                .drop_nulls(x))
    if max_x is not None:
        combined = combined.filter(pl.col(x) <= max_x)
    combined = combined.sort(cluster, *POINT)  # the bootstrap draws clusters by position
    xs = combined[x].cast(pl.Float64).to_numpy()
    if np.unique(xs).size < 3 or combined[cluster].n_unique() < 2:
        raise InputError(f"inverted_u: need at least 3 distinct values of '{x}' and 2 values "
                         f"of '{cluster}'; got {np.unique(xs).size} and "
                         f"{combined[cluster].n_unique()}")
    ys = combined["y"].to_numpy()
    centre = float(xs.mean())
    design = _design(xs - centre)
    ids = np.unique(combined[cluster].cast(pl.String).to_numpy(), return_inverse=True)[1]
    n_clusters = int(ids.max()) + 1
    xtx = np.zeros((n_clusters, 3, 3))
    xty = np.zeros((n_clusters, 3))
    np.add.at(xtx, ids, design[:, :, None] * design[:, None, :])
    np.add.at(xty, ids, design * ys[:, None])
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), bootstrap)
    weights = np.vstack([np.ones(n_clusters), counts])  # row 0: the data itself
    a = np.einsum("bg,gij->bij", weights, xtx)
    rhs = np.einsum("bg,gi->bi", weights, xty)
    # A draw of too few distinct x values cannot fit a parabola: left out (NaN).
    solvable = np.linalg.matrix_rank(a) == 3
    beta = np.full((len(weights), 3), np.nan)
    beta[solvable] = np.linalg.solve(a[solvable], rhs[solvable][:, :, None])[:, :, 0]
    curv = beta[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        vertices = np.where(curv != 0, centre - beta[:, 1] / (2 * curv), np.nan)
    c_lo, c_hi = percentile_interval(curv[1:], level)
    v_lo, v_hi = percentile_interval(vertices[1:], level)
    x_min, x_max = float(xs.min()), float(xs.max())
    grid = (np.arange(x_min, x_max + 1) if np.allclose(xs, np.round(xs)) and x_max - x_min <= 200
            else np.linspace(x_min, x_max, 101))
    fitted = _design(grid - centre) @ beta.T  # (grid, draws)
    f_lo, f_hi = percentile_interval(fitted[:, 1:].T, level)
    vertex = float(vertices[0]) if np.isfinite(vertices[0]) else None
    curve = pl.DataFrame({"x": grid.astype(float), "share": fitted[:, 0], "lo": f_lo,
                          "hi": f_hi})
    return InvertedU(
        groups=groups, x=x, curvature=float(curv[0]), curvature_lo=float(c_lo),
        curvature_hi=float(c_hi), vertex=vertex,
        vertex_lo=float(v_lo) if np.isfinite(v_lo) else None,
        vertex_hi=float(v_hi) if np.isfinite(v_hi) else None, x_min=x_min, x_max=x_max,
        n_points=combined.height,
        n_windows=combined.select("item_id", "market", "origin").unique().height,
        n_clusters=n_clusters, verdict=_verdict(float(c_lo), float(c_hi), vertex, x_min, x_max),
        curve=curve, level=level, bootstrap=bootstrap, seed=seed)
