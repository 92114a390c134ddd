"""The bundled data and the standard OR-weekly benchmark panel, exactly as the docs define it
(docs/benchmarks.md)."""

from datetime import datetime

import polars as pl
import pytest

from salesfusion.data.splits import BacktestProtocol
from salesfusion.datasets import online_retail, or_weekly
from salesfusion.datasets.online_retail import OR_WEEKLY

OR_WEEKLY_PROTOCOL = BacktestProtocol.from_benchmark(OR_WEEKLY)


@pytest.fixture(scope="module")
def dataset():
    return online_retail()


@pytest.fixture(scope="module")
def panel(dataset):
    return or_weekly(dataset)


def test_bundled_tables(dataset):
    assert dataset.tables.sales.height == 541_909
    assert dataset.spec.items.columns["description"] == "description"
    assert dataset.tables.markets.height == 38
    items = dataset.tables.items
    assert items.filter(pl.col("item_id") == "85123A")["description"][0].startswith("WHITE HANGING")


def test_or_weekly_definition(panel):
    periods = panel.periods.to_list()
    assert len(periods) == 52
    assert periods[0] == datetime(2010, 12, 6) and periods[-1] == datetime(2011, 11, 28)
    assert all(p.weekday() == 0 for p in periods)
    assert panel.n_series == 1645
    assert panel.data.height == 84_188
    # the shop was closed the week of 2010-12-27: a real zero for every series alive then
    closed = panel.data.filter(pl.col("timestamp") == datetime(2010, 12, 27))
    assert closed.height > 0 and closed["y"].sum() == 0
    assert panel.data["item_id"].str.contains(r"^\d{5}[A-Z]{0,2}$").all()
    assert set(panel.data["market"].unique()) == {"United Kingdom", "France", "Germany", "EIRE",
                                                  "Belgium"}


def test_or_weekly_selection_uses_only_the_40_weeks_before_test(panel):
    test_start = OR_WEEKLY_PROTOCOL.test_start(panel.periods)
    assert test_start == datetime(2011, 9, 12)  # week 41
    nonzero = (panel.data.filter(pl.col("timestamp") < test_start)
               .group_by("item_id", "market").agg((pl.col("y") > 0).sum()))
    assert nonzero["y"].min() >= 20
    origins = OR_WEEKLY_PROTOCOL.origins(panel.periods)
    assert [panel.periods.to_list().index(o) + 1 for o in origins] == [40, 44, 48]


def test_prices_converted_into_buyer_currency(panel):
    germany = panel.data.filter((pl.col("market") == "Germany") & pl.col("price").is_not_null())
    assert (germany["currency"] == "EUR").all()
    # GBP->EUR stayed between 1.10 and 1.22 over 2010-2011
    assert germany["fx_rate"].min() > 1.10 and germany["fx_rate"].max() < 1.22
    ratio = germany["price_local"] / germany["price"]
    assert (ratio - germany["fx_rate"]).abs().max() < 1e-9
