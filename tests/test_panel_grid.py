"""The panel rows built on integer codes (``data.panel_grid``) and the coded duplicate check."""

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from salesfusion.data.panel import build_panel
from salesfusion.data.panel_grid import aggregate_periods
from salesfusion.data.spec import load_spec
from salesfusion.data.validate import _any_duplicated, load_tables
from salesfusion.errors import InputError

MONDAY = datetime(2022, 1, 3)


def _period_table(folder: Path, rows: pl.DataFrame, items: pl.DataFrame | None = None) -> Path:
    rows.write_parquet(folder / "sales.parquet")
    spec = {"name": "p", "freq": "W", "sales_grain": "period",
            "sales": {"path": "sales.parquet", "columns": {
                "item_id": "item", "market": "market", "timestamp": "week", "quantity": "q",
                "price": "p"}, "past_only": ["promo"]},
            "cleaning": {"drop_partial_periods": False, "require_positive_price": False,
                         "returns": "net"}}
    if items is not None:
        items.write_csv(folder / "items.csv")
        spec["items"] = {"path": "items.csv", "columns": {
            c: c for c in items.columns}}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    return folder / "spec.yaml"


def _random_rows(n_series: int, weeks: int, seed: int = 0) -> pl.DataFrame:
    """Shuffled period rows: holes, late launches, missing prices and promos, returns."""
    rng = np.random.default_rng(seed)
    rows = [(f"i{s // 3:03d}", ("UK", "DE", "FR")[s % 3], MONDAY + timedelta(weeks=w))
            for s in range(n_series) for w in range(rng.integers(0, weeks // 2), weeks)
            if rng.random() < 0.8]
    n = len(rows)
    frame = pl.DataFrame(rows, schema=["item", "market", "week"], orient="row").with_columns(
        q=pl.Series(rng.integers(-1, 6, n)),
        p=pl.Series(np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0.5, 3.0, n))).fill_nan(
            None),
        promo=pl.Series(np.where(rng.random(n) < 0.3, np.nan, rng.random(n))).fill_nan(None))
    return frame.sample(fraction=1.0, shuffle=True, seed=seed)


def test_rows_sorted_by_series_and_time_and_every_period_after_launch(tmp_path):
    rows = _random_rows(60, 12)
    panel = build_panel(load_tables(load_spec(_period_table(tmp_path, rows))))
    data = panel.data
    assert data.equals(data.sort("item_id", "market", "timestamp"))
    spans = panel.series()
    first = rows.group_by(item_id=pl.col("item").str.to_uppercase(), market="market").agg(
        pl.col("week").min().cast(pl.Datetime("us")).alias("first"))
    joined = spans.join(first, on=["item_id", "market"])
    assert joined.height == spans.height == first.height
    assert (joined["start"] == joined["first"]).all()  # launch: the first row
    assert (spans["end"] == MONDAY + timedelta(weeks=11)).all()
    assert (spans["length"] == ((spans["end"] - spans["start"]).dt.total_days() // 7 + 1)).all()
    assert panel.log["series"] == spans.height and panel.log["rows"] == data.height


def test_one_row_per_period_equals_the_group_by(tmp_path):
    """Row-wise aggregates equal the group-by's: a missing quantity or revenue sums to 0, a
    missing price or promo stays missing, and the frames match bit for bit."""
    rows = _random_rows(40, 10, seed=1).rename({"item": "item_id", "week": "period"})
    rows = rows.with_columns(pl.col("period").cast(pl.Datetime("us")),
                             pl.col("q").cast(pl.Float64))
    rows = rows.with_columns(pl.when(pl.int_range(pl.len()) % 7 == 0).then(None)
                             .otherwise(pl.col("q")).alias("q"))
    sums = {"y": pl.col("q"), "revenue": pl.col("p") * pl.col("q")}
    means = {"listed_price": pl.col("p"), "promo": pl.col("promo")}
    keys = ["item_id", "market", "period"]

    def as_text(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(pl.col("item_id", "market").cast(pl.String)).sort(keys)

    rowwise = as_text(aggregate_periods(rows, sums, means, one_row_per_period=True))
    grouped = as_text(aggregate_periods(rows, sums, means, one_row_per_period=False))
    assert rowwise.equals(grouped)
    assert rowwise["y"].null_count() == 0 and rowwise["listed_price"].null_count() > 0


def test_period_rows_that_are_not_period_starts_are_summed(tmp_path):
    """A daily period-grain table read at weekly frequency: its days are added up."""
    rows = pl.DataFrame({"item": ["A", "A", "A"], "market": ["UK"] * 3,
                         "week": [MONDAY, MONDAY + timedelta(days=2),
                                  MONDAY + timedelta(days=7)],
                         "q": [1, 2, 4], "p": [1.0, 2.0, 1.0], "promo": [0.0, 1.0, 0.0]})
    data = build_panel(load_tables(load_spec(_period_table(tmp_path, rows)))).data
    assert data["y"].to_list() == [3.0, 4.0]
    assert data["price"][0] == pytest.approx((1 * 1.0 + 2 * 2.0) / 3)
    assert data["promo"].to_list() == [0.5, 0.0]


def test_declared_end_before_launch_leaves_no_rows(tmp_path):
    rows = pl.DataFrame({"item": ["A", "A", "B"], "market": ["UK"] * 3,
                         "week": [MONDAY, MONDAY + timedelta(weeks=3), MONDAY],
                         "q": [0, 0, 1], "p": [1.0] * 3, "promo": [0.0] * 3})
    items = pl.DataFrame({"item_id": ["A", "B"], "end_date": ["2021-06-07", "2022-01-10"]})
    panel = build_panel(load_tables(load_spec(_period_table(tmp_path, rows, items))))
    assert panel.data["item_id"].to_list() == ["B", "B"]  # A ended before it launched
    assert panel.log["series"] == 1
    assert panel.log["series_ended_before_last_period"] == 2


@pytest.mark.parametrize(("frame", "expected"), [
    (pl.DataFrame({"a": ["x", "y", "x"], "t": [1, 1, 2]}), False),
    (pl.DataFrame({"a": ["x", "y", "x"], "t": [1, 1, 1]}), True),
    (pl.DataFrame({"a": ["x", None, None], "t": [1, 1, 1]}), True),  # missing keys pair up
    (pl.DataFrame({"a": ["x", None, "x"], "t": [1, 1, 2]}), False),
    (pl.DataFrame({"a": ["x", "y"], "t": [MONDAY, MONDAY]}), False),
])
def test_any_duplicated_matches_polars(frame, expected):
    assert _any_duplicated(frame, ("a", "t")) is expected
    assert bool(frame.is_duplicated().any()) is expected


def test_duplicated_period_rows_are_refused_with_their_rows(tmp_path):
    rows = _random_rows(6, 4, seed=2)
    spec = _period_table(tmp_path, pl.concat([rows, rows.head(1)]))
    with pytest.raises(InputError, match=r"duplicated key .*2 rows share a key"):
        load_tables(load_spec(spec))
