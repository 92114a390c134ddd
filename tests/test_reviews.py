"""Reviews over time as past-only covariates: what the spec's reviews table becomes
(``data.reviews``), how every model reads it, and the bad review data that is refused."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from salesfusion.data.crosscheck import crosscheck
from salesfusion.data.panel import build_panel
from salesfusion.data.spec import load_spec
from salesfusion.data.validate import load_tables
from salesfusion.errors import InputError
from salesfusion.features.covariates import covariate_cube, fit_exogenous_scale
from salesfusion.features.lags import to_wide
from salesfusion.models.base import Forecaster
from salesfusion.models.registry import create_model
from tests.conftest import make_shop

WEEK_10, WEEK_11, WEEK_13 = datetime(2021, 3, 15), datetime(2021, 3, 22), datetime(2021, 4, 5)
COLUMNS = {"item_id": "sku", "market": "country", "timestamp": "written", "text": "body",
           "rating": "stars"}
REVIEWS = [  # make_shop's weeks start on Mondays from 2021-01-04; week 10 is 2021-03-15
    {"sku": "P001", "country": "GB", "written": "2021-03-17T09:00", "body": "Great", "stars": 5},
    {"sku": "P001", "country": "GB", "written": "2021-03-21T23:00", "body": "Meh", "stars": 2},
    {"sku": "p001", "country": "GB", "written": "2021-04-06", "body": "Good", "stars": 4},
    {"sku": "P001", "country": "GB", "written": "2021-04-07", "body": "No stars", "stars": None},
    {"sku": "P001", "country": "DE", "written": "2021-03-16", "body": "Broke", "stars": 1},
    {"sku": "P999", "country": "GB", "written": "2021-03-16", "body": "Unknown item",
     "stars": 5},
    {"sku": "P002", "country": "FR", "written": "2021-03-16", "body": "Unknown market",
     "stars": 5},
    {"sku": "P001", "country": "GB", "written": "2030-01-01", "body": "After the data",
     "stars": 1},
]


def _shop(folder: Path, rows: list[dict], columns: dict | None = None, **options) -> Path:
    """make_shop's transaction log (no other covariates) with a reviews table."""
    spec_path = make_shop(folder, covariates=False)
    columns = columns or COLUMNS
    # Every cell as text (as an export gives it), so a bad value can sit beside good ones.
    cells = [{k: None if v is None else str(v) for k, v in row.items()} for row in rows]
    pl.DataFrame(cells).select(list(columns.values())).write_csv(folder / "reviews.csv")
    spec = yaml.safe_load(spec_path.read_text())
    spec["reviews"] = {"path": "reviews.csv", "columns": columns, **options}
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return spec_path


def _panel(spec_path: Path):
    return build_panel(load_tables(load_spec(spec_path)))


def _reviews_table(panel):
    return next(t for t in panel.covariate_tables if t.source.startswith("reviews"))


def test_reviews_become_past_only_count_and_mean_rating_per_period(tmp_path):
    panel = _panel(_shop(tmp_path, REVIEWS, rating_range=[1, 5]))
    table = _reviews_table(panel)
    assert table.keys == ("item_id", "market", "timestamp")
    assert table.channels == ("review_count", "review_rating")
    assert str(tmp_path / "reviews.csv") in table.source
    assert panel.past_only == ["price", "price_local", "review_count", "review_rating"]
    assert panel.future_known == []
    # Dense over the panel's rows, and nothing else: the unknown item and market and the review
    # after the data reach no row.
    keys = ["item_id", "market", "timestamp"]
    assert table.frame.select(keys).equals(panel.data.select(keys).sort(keys))
    assert table.frame["review_count"].sum() == 5
    series = table.frame.filter((pl.col("item_id") == "P001") & (pl.col("market") == "GB"))
    week = {row["timestamp"]: row for row in series.iter_rows(named=True)}
    # Timestamps are truncated to the week; the lower-case id is the same item; an unrated
    # review counts but has no say in the mean.
    assert (week[WEEK_10]["review_count"], week[WEEK_10]["review_rating"]) == (2.0, 3.5)
    assert (week[WEEK_13]["review_count"], week[WEEK_13]["review_rating"]) == (2.0, 4.0)
    assert (week[WEEK_11]["review_count"], week[WEEK_11]["review_rating"]) == (0.0, None)
    germany = table.frame.filter((pl.col("item_id") == "P001") & (pl.col("market") == "DE")
                                 & (pl.col("timestamp") == WEEK_10))
    assert germany.select("review_count", "review_rating").row(0) == (1.0, 1.0)


def test_models_read_the_latest_mean_rating_and_a_real_zero_count(tmp_path):
    """A week without reviews reads the last known mean rating (carried forward, as a price is)
    and 0 reviews; before the first review the rating reads the channel's average."""
    panel = _panel(_shop(tmp_path, REVIEWS))
    wide = to_wide(panel)
    scale = fit_exogenous_scale(panel)
    cube = covariate_cube(panel, wide.keys, wide.periods, scale)
    row = wide.keys.with_row_index().filter((pl.col("item_id") == "P001")
                                            & (pl.col("market") == "GB"))["index"].item()
    column = {period: i for i, period in enumerate(wide.periods.astype("datetime64[us]")
                                                   .tolist())}
    rating = cube.values[row, :, cube.names.index("review_rating")]
    count = cube.values[row, :, cube.names.index("review_count")]
    mean, std = scale["review_rating"]
    standardised = [(3.5 - mean) / std, (4.0 - mean) / std]
    assert rating[column[WEEK_10] - 1] == 0.0  # before the first review: the average
    np.testing.assert_allclose(rating[column[WEEK_10]:column[WEEK_13]], standardised[0],
                               rtol=1e-5)
    np.testing.assert_allclose(rating[column[WEEK_13]:], standardised[1], rtol=1e-5)
    count_mean, count_std = scale["review_count"]
    assert count[column[WEEK_11]] == pytest.approx(-count_mean / count_std)
    assert count[column[WEEK_10]] == pytest.approx((2 - count_mean) / count_std)
    assert not cube.future_known[cube.names.index("review_rating")]


def test_without_market_and_rating_reviews_reach_every_market_of_the_item(tmp_path):
    columns = {"item_id": "sku", "timestamp": "written", "text": "body"}
    panel = _panel(_shop(tmp_path, REVIEWS, columns=columns))
    table = _reviews_table(panel)
    assert table.keys == ("item_id", "timestamp") and table.channels == ("review_count",)
    assert "review_rating" not in panel.past_only
    wide = to_wide(panel)
    cube = covariate_cube(panel, wide.keys, wide.periods, fit_exogenous_scale(panel))
    index = {(k["item_id"], k["market"]): i for i, k in enumerate(wide.keys.iter_rows(named=True))}
    count = cube.values[:, :, cube.names.index("review_count")]
    # P001's GB and DE reviews (and the unknown market's P002 one) count for both its markets.
    np.testing.assert_array_equal(count[index[("P001", "GB")]], count[index[("P001", "DE")]])
    week_10 = list(wide.periods.astype("datetime64[us]").tolist()).index(WEEK_10)
    p001 = table.frame.filter((pl.col("item_id") == "P001") & (pl.col("timestamp") == WEEK_10))
    assert p001["review_count"].to_list() == [3.0]
    assert count[index[("P001", "GB")], week_10] > count[index[("P000", "GB")], week_10]


def test_a_saved_model_keeps_the_reviews_and_forecasts_the_same(tmp_path):
    panel = _panel(_shop(tmp_path, REVIEWS))
    model = create_model("lightgbm", horizon=2, max_rounds=20).fit(panel)
    assert {"cov_review_count", "cov_review_rating"} <= set(model.feature_names)
    # Past-only: read at the origin only, never at the target period.
    assert "cov_review_rating_at_target" not in model.feature_names
    loaded = Forecaster.load(model.save(tmp_path / "model"))
    assert loaded._history.past_only == panel.past_only
    assert loaded.predict(2).equals(model.predict(2))


def test_crosscheck_counts_reviews_naming_unknown_items_and_markets(tmp_path):
    spec = load_spec(_shop(tmp_path, REVIEWS))
    tables = load_tables(spec)
    findings = {f.check: f for f in crosscheck(tables, build_panel(tables)).findings}
    assert findings["reviews_unknown_items"].level == "warning"
    assert findings["reviews_unknown_items"].count == 1
    assert findings["reviews_unknown_markets"].level == "warning"
    unknown = [dict(row, sku="X" + row["sku"]) for row in REVIEWS]
    (tmp_path / "none").mkdir()
    tables = load_tables(load_spec(_shop(tmp_path / "none", unknown)))
    check = crosscheck(tables, build_panel(tables))
    assert [f.check for f in check.errors] == ["reviews_unknown_items"]
    with pytest.raises(InputError, match="no review matches a known item"):
        check.raise_for_errors()


def _bad(row: dict) -> list[dict]:
    return [REVIEWS[0], REVIEWS[1], row]


@pytest.mark.parametrize(("row", "options", "fragments"), [
    (dict(REVIEWS[0], stars=6), {"rating_range": [1, 5]},
     ["column 'stars' (role rating) is outside the declared rating_range [1, 5]",
      "data row 3 (6"]),
    (dict(REVIEWS[0], stars="five"), {}, ["column 'stars' (role rating) is not numeric",
                                          "data row 3 ('five')"]),
    (dict(REVIEWS[0], written="17/03/2021"), {}, ["column 'written' (role timestamp)",
                                                  "17/03/2021"]),
    (dict(REVIEWS[0], country=" "), {}, ["column 'country' (role market) is blank",
                                         "data row(s) 3"]),
    (dict(REVIEWS[0], body=None), {}, ["column 'body' (role text) has empty values",
                                       "data row 3"]),
])
def test_bad_review_data_is_one_error_naming_file_column_and_row(tmp_path, row, options,
                                                                 fragments):
    with pytest.raises(InputError) as error:
        load_tables(load_spec(_shop(tmp_path, _bad(row), **options)))
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "reviews.csv") in message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(("options", "columns", "fragment"), [
    ({"rating_range": [1, 5]}, {k: v for k, v in COLUMNS.items() if k != "rating"},
     "'rating_range' needs the 'rating' role"),
    ({"rating_range": [5, 1]}, COLUMNS, "lowest < highest"),
    ({"past_only": ["helpful_votes"]}, COLUMNS, "declares no covariate columns (past_only)"),
])
def test_spec_refuses_a_reviews_table_declared_inconsistently(tmp_path, options, columns,
                                                              fragment):
    with pytest.raises(InputError, match="spec") as error:
        load_spec(_shop(tmp_path, REVIEWS, columns=columns, **options))
    assert fragment in str(error.value)
