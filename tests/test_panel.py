from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
import yaml

from salesfusion.data.panel import build_panel
from salesfusion.data.spec import load_spec
from salesfusion.data.splits import chronological_split
from salesfusion.data.validate import load_tables


def _spec(folder: Path, rows: list[dict], **cleaning) -> Path:
    pl.DataFrame(rows).write_csv(folder / "tx.csv")
    pl.DataFrame({"market": ["UK", "FR"], "currency": ["GBP", "EUR"]}).write_csv(
        folder / "m.csv")
    pl.DataFrame({"Date": ["2021-01-04", "2021-01-11", "2021-01-18", "2021-01-25"],
                  "GBP": [0.9, 0.9, 0.8, 0.8]}).write_csv(folder / "fx.csv")
    spec = {"name": "t", "freq": "W", "currency": "GBP",
            "sales": {"path": "tx.csv", "columns": {"item_id": "item", "market": "market",
                                                      "timestamp": "ts", "quantity": "q",
                                                      "price": "p", "invoice": "inv"}},
            "markets": {"path": "m.csv", "columns": {"market": "market", "currency": "currency"}},
            "fx": {"path": "fx.csv"},
            "cleaning": {"cancelled_invoice_prefix": "C", **cleaning}}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


ROWS = [  # weeks start on Monday 2021-01-04, 01-11, 01-18, 01-25 (the data covers them fully)
    {"item": " a1 ", "market": "UK", "ts": "2021-01-04 09:00", "q": 2, "p": 1.0, "inv": "1"},
    {"item": "A1", "market": "UK", "ts": "2021-01-05 09:00", "q": 2, "p": 2.0, "inv": "2"},
    {"item": "A1", "market": "UK", "ts": "2021-01-19 09:00", "q": 3, "p": 1.0, "inv": "3"},
    {"item": "A1", "market": "UK", "ts": "2021-01-20 09:00", "q": -1, "p": 1.0, "inv": "C4"},
    {"item": "B2", "market": "FR", "ts": "2021-01-12 09:00", "q": 5, "p": 1.0, "inv": "5"},
    {"item": "B2", "market": "FR", "ts": "2021-01-13 09:00", "q": 1, "p": 0.0, "inv": "6"},
    {"item": "POST", "market": "FR", "ts": "2021-01-13 09:00", "q": 1, "p": 9.0, "inv": "7"},
    {"item": "B2", "market": "FR", "ts": "2021-01-31 23:00", "q": 1, "p": 1.0, "inv": "8"},
]


def test_rules_zero_after_launch_masked_before(tmp_path):
    panel = build_panel(load_tables(load_spec(_spec(tmp_path, ROWS,
                                                     item_id_pattern="[A-Z]\\d"))))
    data = panel.data
    a1 = data.filter(pl.col("item_id") == "A1")
    assert a1["y"].to_list() == [4.0, 0.0, 3.0, 0.0]  # cancellation dropped, zeros after launch
    assert a1["price"][0] == pytest.approx((2 * 1.0 + 2 * 2.0) / 4)  # units-weighted
    assert a1["price"][1] is None  # no sale, no price
    b2 = data.filter(pl.col("item_id") == "B2")
    assert b2["timestamp"][0] == datetime(2021, 1, 11)  # launched in week 2: week 1 masked
    assert b2["y"].to_list() == [5.0, 0.0, 1.0]  # zero-price row dropped
    assert "POST" not in data["item_id"].to_list()
    assert panel.log["dropped_not_a_product"] == 1
    # FR buys in EUR: 1 GBP = 1/0.9 EUR in week 2
    assert b2["price_local"][0] == pytest.approx(1.0 / 0.9)
    assert a1["fx_rate"].to_list() == [1.0] * 4


def test_net_returns_subtract_and_clip(tmp_path):
    rows = [*ROWS, {"item": "A1", "market": "UK", "ts": "2021-01-26 09:00", "q": -7, "p": 1.0,
                    "inv": "C9"}]
    panel = build_panel(load_tables(load_spec(_spec(tmp_path, rows, returns="net"))))
    a1 = panel.data.filter(pl.col("item_id") == "A1")
    assert a1["y"].to_list() == [4.0, 0.0, 2.0, 0.0]  # 3 - 1 returned; -7 clipped at 0
    assert panel.log["periods_clipped_negative"] == 1


def test_partial_periods_are_dropped(tmp_path):
    rows = [{**r, "ts": r["ts"].replace("2021-01-04", "2021-01-06")} for r in ROWS]
    rows = [{**r, "ts": "2021-01-27 09:00"} if r["inv"] == "8" else r for r in rows]
    panel = build_panel(load_tables(load_spec(_spec(tmp_path, rows))))
    assert panel.periods.to_list() == [datetime(2021, 1, 11), datetime(2021, 1, 18)]
    assert panel.log["dropped_partial_first_period"] == 1
    assert panel.log["dropped_partial_last_period"] == 1


def test_monthly_and_daily_frequencies(shop_panel, shop_spec):
    tables = load_tables(load_spec(shop_spec))
    monthly = build_panel(tables, "M")
    assert all(ts.day == 1 for ts in monthly.periods.to_list())
    assert monthly.data["y"].sum() <= shop_panel.data["y"].sum() + tables.sales["quantity"].sum()
    daily = build_panel(tables, "D")
    assert daily.data["y"].sum() == tables.sales["quantity"].sum()


def test_chronological_split_is_7_2_1(shop_panel):
    split = chronological_split(shop_panel)
    n = len(shop_panel.periods)
    parts = [len(split.train.periods), len(split.validation.periods), len(split.test.periods)]
    assert sum(parts) == n
    assert parts == [n - round(0.2 * n) - round(0.1 * n), round(0.2 * n), round(0.1 * n)]
    assert split.train.data["timestamp"].max() < split.validation.data["timestamp"].min()
    assert split.validation.data["timestamp"].max() < split.test.data["timestamp"].min()


def test_exogenous_covariates_join_per_period_and_market(tmp_path):
    spec_path = _spec(tmp_path, ROWS)
    pl.DataFrame({"day": ["2021-01-04", "2021-01-06", "2021-01-11", "2021-01-12"],
                  "market": ["UK", "UK", "FR", "FR"], "promo": [1.0, 0.0, 1.0, 1.0]}).write_csv(
        tmp_path / "exo.csv")
    spec = yaml.safe_load(spec_path.read_text())
    spec["exogenous"] = {"path": "exo.csv", "columns": {"timestamp": "day", "market": "market"},
                         "future_known": ["promo"]}
    spec_path.write_text(yaml.safe_dump(spec))
    panel = build_panel(load_tables(load_spec(spec_path)))
    assert "promo" in panel.future_known
    (table,) = [t for t in panel.covariate_tables if t.source.startswith("exogenous")]
    assert table.keys == ("market", "timestamp")
    uk = table.frame.filter(pl.col("market") == "UK")
    assert uk["promo"].to_list() == [pytest.approx(0.5)]  # mean of the week's two days
    fr = table.frame.filter(pl.col("market") == "FR")
    assert fr["promo"].to_list() == [pytest.approx(1.0)]
    assert uk["timestamp"][0] < fr["timestamp"][0]  # no UK value in week 2
