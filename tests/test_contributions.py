"""Modality shares and the life-cycle inverted U, on attribution tables with planted structure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from salesfusion.errors import InputError
from salesfusion.explain.contributions import (
    age_buckets,
    inverted_u,
    modality_shares,
    with_segments,
)
from salesfusion.explain.segments import Segments

START = datetime(2024, 1, 1)


def planted(share: Callable[[np.ndarray], np.ndarray], items: int = 60, ages: int = 21,
            steps: int = 2, seed: int = 1) -> pl.DataFrame:
    """An attribution table whose content share (text + image + static) at each point is
    ``share(age)`` plus an item effect and point noise (both sd 0.03). Attributions are signed
    at random, and static is split into two variables of opposite signs, so only the SIGNED sum
    per group gives the planted share."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {c: [] for c in ("item_id", "market", "origin", "step", "age",
                                             "group", "variable", "attribution")}
    for item in range(items):
        effect = rng.normal(0, 0.03)
        for age in range(ages):
            for step in range(1, steps + 1):
                s = float(np.clip(share(np.array(age)) + effect + rng.normal(0, 0.03),
                                  0.01, 0.99))
                total = rng.uniform(5, 15)
                content = rng.dirichlet([2, 2, 2]) * s * total
                other = rng.dirichlet([2, 2]) * (1 - s) * total
                signs = rng.choice([-1.0, 1.0], 5)
                cancel = rng.uniform(0, 5)
                parts = [("text", "text", content[0] * signs[0]),
                         ("image", "image", content[1] * signs[1]),
                         ("static", "static:category", content[2] * signs[2] + cancel),
                         ("static", "static:brand", -cancel),
                         ("history", "history", other[0] * signs[3]),
                         ("calendar", "calendar:week", other[1] * signs[4])]
                for group, variable, value in parts:
                    for key, v in (("item_id", f"i{item}"), ("market", "UK"),
                                   ("origin", START + timedelta(weeks=age)), ("step", step),
                                   ("age", age), ("group", group), ("variable", variable),
                                   ("attribution", value)):
                        rows[key].append(v)
    return pl.DataFrame(rows)


@pytest.fixture(scope="module")
def humped() -> pl.DataFrame:
    return planted(lambda a: 0.2 + 0.04 * a - 0.002 * a**2)


def test_planted_inverted_u_is_found_with_its_vertex_and_curvature(humped):
    found = inverted_u(humped, bootstrap=300, seed=0)
    assert found.verdict == "inverted U"
    assert found.vertex_lo < 10 < found.vertex_hi
    assert abs(found.vertex - 10) < 1.0
    assert found.curvature_lo < -0.002 < found.curvature_hi
    assert (found.n_windows, found.n_points, found.n_clusters) == (60 * 21, 60 * 21 * 2, 60)
    assert (found.x_min, found.x_max) == (0.0, 20.0)
    # The fitted curve peaks near the planted 0.2 + 0.04 * 10 - 0.002 * 100 = 0.4.
    peak = found.curve.filter(pl.col("x") == 10.0)
    assert abs(peak["share"][0] - 0.4) < 0.02
    assert (found.curve["lo"] <= found.curve["share"]).all()
    assert (found.curve["share"] <= found.curve["hi"]).all()
    summary = found.summary()
    assert summary["verdict"] == "inverted U" and summary["groups"] == ["text", "image", "static"]
    assert "curve" not in summary


def test_same_seed_same_result_and_another_seed_moves_only_the_intervals(humped):
    first = inverted_u(humped, bootstrap=100, seed=3)
    again = inverted_u(humped, bootstrap=100, seed=3)
    other = inverted_u(humped, bootstrap=100, seed=4)
    assert first.summary() == again.summary()
    assert first.curve.equals(again.curve)
    assert other.curvature == first.curvature and other.vertex == first.vertex
    assert other.curvature_lo != first.curvature_lo


def test_a_linear_share_is_not_an_inverted_u():
    found = inverted_u(planted(lambda a: 0.2 + 0.01 * a), bootstrap=200, seed=0)
    assert found.verdict != "inverted U"
    assert found.curvature_lo < 0 < found.curvature_hi
    assert found.verdict == "not significant"


def test_a_turning_point_beyond_the_range_is_monotone():
    """Concave but still rising at the oldest age seen: the vertex (30) is outside 0..20."""
    found = inverted_u(planted(lambda a: 0.1 + 0.03 * a - 0.0005 * a**2), bootstrap=200, seed=0)
    assert found.curvature_hi < 0
    assert found.vertex > 20
    assert found.verdict == "monotone or flat (no turning point inside the range)"


def test_max_x_drops_the_tail_and_a_convex_share_is_a_u(humped):
    convex = planted(lambda a: 0.6 - 0.04 * a + 0.002 * a**2, items=30)
    assert inverted_u(convex, bootstrap=100).verdict == "U"
    cut = inverted_u(humped, bootstrap=50, max_x=12)
    assert cut.x_max == 12.0 and cut.n_points == 60 * 13 * 2


def small() -> pl.DataFrame:
    """Two items, hand-checkable: at (a, step 1) history = +3, static = +2 - 1 = 1 (signed sum),
    text = -4 so |A| = 3, 1, 4 of 8; at (a, step 2) only history = -2 (static and text absent:
    shares 1, 0, 0); at (b, step 1) history 1, static 1, text 2 -> 1/4, 1/4, 2/4; (b, step 2)
    sums to zero everywhere and is dropped."""
    rows = [("a", 1, "history", "history", 3.0), ("a", 1, "static", "static:cat", 2.0),
            ("a", 1, "static", "static:brand", -1.0), ("a", 1, "text", "text", -4.0),
            ("a", 2, "history", "history", -2.0),
            ("b", 1, "history", "history", 1.0), ("b", 1, "static", "static:cat", -1.0),
            ("b", 1, "text", "text", 2.0),
            ("b", 2, "history", "history", 0.0), ("b", 2, "text", "text", 0.0)]
    return pl.DataFrame(
        {"item_id": [r[0] for r in rows], "market": ["UK" if r[0] == "a" else "DE" for r in rows],
         "origin": [START] * len(rows), "step": [r[1] for r in rows],
         "age": [0 if r[0] == "a" else 30 for r in rows], "group": [r[2] for r in rows],
         "variable": [r[3] for r in rows], "attribution": [r[4] for r in rows]})


def test_shares_by_step_are_the_hand_computed_means():
    out = modality_shares(small(), by=["step"])
    got = {(r["step"], r["group"]): (r["share"], r["n"]) for r in out.iter_rows(named=True)}
    assert got[(1, "history")] == pytest.approx((np.mean([3 / 8, 1 / 4]), 2))
    assert got[(1, "static")] == pytest.approx((np.mean([1 / 8, 1 / 4]), 2))
    assert got[(1, "text")] == pytest.approx((np.mean([4 / 8, 2 / 4]), 2))
    assert got[(2, "history")] == pytest.approx((1.0, 1))  # b's zero step is dropped
    assert got[(2, "text")] == pytest.approx((0.0, 1))
    # One item per cell at step 2: no clustered interval can be formed.
    assert out.filter(pl.col("step") == 2)["share_lo"].is_null().all()
    step1 = out.filter(pl.col("step") == 1)
    assert (step1["share_lo"] <= step1["share"]).all()
    assert (step1["share"] <= step1["share_hi"]).all()


def test_shares_sum_to_one_in_every_cell_and_intervals_cover_the_planted_share(humped):
    out = modality_shares(humped, by=["age"])
    sums = out.group_by("age").agg(pl.col("share").sum())
    assert np.allclose(sums["share"].to_numpy(), 1.0)
    assert set(out["n"].to_list()) == {120}
    content = (out.filter(pl.col("group").is_in(["text", "image", "static"]))
               .group_by("age").agg(pl.col("share").sum()).sort("age"))
    ages = content["age"].to_numpy()
    truth = 0.2 + 0.04 * ages - 0.002 * ages**2
    assert np.abs(content["share"].to_numpy() - truth).max() < 0.03
    overall = modality_shares(humped, by=[])
    assert overall.height == 5 and abs(overall["share"].sum() - 1) < 1e-9
    hist = overall.filter(pl.col("group") == "history")
    assert hist["share_lo"][0] < hist["share"][0] < hist["share_hi"][0]


def test_segments_and_age_buckets():
    segments = Segments(pl.DataFrame({"market": ["UK"], "segment": ["mature"]}), 1, None, None,
                        "declared")
    table = with_segments(small(), segments)
    assert dict(table.select("market", "segment").unique().iter_rows()) == {
        "UK": "mature", "DE": "unknown"}
    out = modality_shares(table, by=["segment"])
    assert set(out["segment"]) == {"mature", "unknown"}
    bucketed = age_buckets(pl.DataFrame({"age": [0, 3, 4, 7, 8, 25, 400]}), max_age=8, width=4)
    assert bucketed["age_bucket"].to_list() == [0, 0, 4, 4, 8, 8, 8]


def test_bad_inputs_name_the_offending_value():
    with pytest.raises(InputError, match="column\\(s\\) segment, colour not in"):
        modality_shares(small(), by=["segment", "colour"])
    with pytest.raises(InputError, match="variable"):
        modality_shares(small(), by=["variable"])
    with pytest.raises(InputError, match="column\\(s\\) attribution not in"):
        modality_shares(small().drop("attribution"), by=["age"])
    with pytest.raises(InputError, match="none of the groups events, kol"):
        inverted_u(small(), groups=("events", "kol"))
    with pytest.raises(InputError, match="at least 3 distinct values of 'age'"):
        inverted_u(small())
    with pytest.raises(InputError, match="max_age=-1"):
        age_buckets(small(), max_age=-1)
