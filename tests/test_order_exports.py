"""Real shop order exports (issue 27, section 4): a per-row ``currency`` role converted through the
FX table, a ``cancelled_at`` role whose orders are not demand, and promotion calendars given as
date ranges expanded to the panel's periods. Every number below is planted and worked out by
hand in the comments."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.data.covariate_tables import exogenous_tables
from salesfusion.data.panel import Panel, build_panel
from salesfusion.data.spec import load_spec
from salesfusion.data.validate import Tables, load_tables
from salesfusion.errors import InputError

runner = CliRunner()

# A Shopify-like export: the order's country, date, currency and cancellation date are on its
# first line only (sales.fill_order_fields). 17 units in all; order O4 (rows 5-6, 4 + 1 units)
# is cancelled, so the panel holds 12.
SALES = [
    # order, sku, country, created, qty, unit_price, ccy, cancelled
    ("O1", "A1", "US", "2024-01-01 09:00", "2", "11.0", "USD", ""),  # 11 / 1.10 = 10 EUR
    ("O2", "A1", "GB", "2024-01-03 10:00", "1", "17.0", "GBP", ""),  # 17 / 0.85 = 20 EUR
    ("O3", "A1", "DE", "2024-01-04 10:00", "3", "10.0", "EUR", ""),
    ("O3", "A2", "", "", "1", "5.0", "", ""),
    ("O4", "A1", "US", "2024-01-13 15:00", "4", "12.5", "USD", "2024-01-14 08:00"),
    ("O4", "A2", "", "", "1", "6.0", "", ""),
    ("O5", "A1", "US", "2024-01-13 16:00", "1", "12.5", "USD", ""),  # Saturday: Friday's 1.25
    ("O6", "A2", "DE", "2024-01-17 11:00", "2", "10.0", "EUR", ""),
    ("O7", "A1", "GB", "2024-01-22 12:00", "1", "8.5", "GBP", ""),  # 8.5 / 0.85 = 10 EUR
    ("O8", "A1", "DE", "2024-01-28 18:00", "1", "10.0", "EUR", ""),
]
HEADER = ("order_no", "sku", "country", "created", "qty", "unit_price", "ccy", "cancelled")


def _rates() -> pl.DataFrame:
    """Weekday quotes, EUR base: USD 1.10 up to 2024-01-09 and 1.25 after; GBP 0.85."""
    days = [date(2023, 12, 25) + timedelta(days=i) for i in range(38)]
    days = [d for d in days if d.weekday() < 5]
    return pl.DataFrame({"Date": [d.isoformat() for d in days],
                         "USD": [1.10 if d <= date(2024, 1, 9) else 1.25 for d in days],
                         "GBP": [0.85] * len(days)})


def _shop(folder: Path, rows: list[tuple[str, ...]] | None = None,
          promos: list[tuple[str, str, str]] | None = None, **spec_changes: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows or SALES, schema=list(HEADER), orient="row").write_csv(
        folder / "sales.csv")
    pl.DataFrame({"country": ["US", "GB", "DE"], "ccy": ["USD", "GBP", "EUR"]}).write_csv(
        folder / "markets.csv")
    _rates().write_csv(folder / "rates.csv")
    spec: dict = {
        "name": "shop", "freq": "W", "currency": "EUR",
        "sales": {"path": "sales.csv",
                  "columns": {"invoice": "order_no", "item_id": "sku", "market": "country",
                              "timestamp": "created", "quantity": "qty", "price": "unit_price",
                              "currency": "ccy", "cancelled_at": "cancelled"},
                  "fill_order_fields": ["market", "timestamp", "currency", "cancelled_at"]},
        "markets": {"path": "markets.csv", "columns": {"market": "country", "currency": "ccy"}},
        "fx": {"path": "rates.csv", "base_currency": "EUR"},
    }
    if promos is not None:
        pl.DataFrame(promos, schema=["country", "from", "to"], orient="row").write_csv(
            folder / "promos.csv")
        spec["promotions"] = [{"path": "promos.csv",
                               "columns": {"market": "country", "start": "from", "end": "to"}}]
    spec.update(spec_changes)
    path = folder / "shop.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _load(spec: Path, freq: str | None = None) -> tuple[Tables, Panel]:
    tables = load_tables(load_spec(spec))
    return tables, build_panel(tables, freq)


def _first_line_prices(tables: Tables) -> dict[str, float]:
    """Each order's first line's price, in the reporting currency."""
    first = tables.sales.unique("invoice", keep="first", maintain_order=True)
    return dict(zip(first["invoice"], first["price"], strict=True))


def _refused(spec: Path, tmp_path: Path) -> str:
    """The one `error:` line of `data build` on ``spec`` (exit 2, nothing written)."""
    out = tmp_path / "out" / "panel.parquet"
    result = runner.invoke(app, ["data", "build", str(spec), "--out", str(out)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    assert not out.exists()
    return errors[0]


def test_row_currencies_convert_at_the_order_dates_rate(tmp_path: Path) -> None:
    tables, panel = _load(_shop(tmp_path))
    prices = _first_line_prices(tables)
    assert prices["O1"] == pytest.approx(10.0)  # 11 USD at 1.10
    assert prices["O2"] == pytest.approx(20.0)  # 17 GBP at 0.85
    assert prices["O5"] == pytest.approx(10.0)  # 12.5 USD at Friday's 1.25 (no weekend quote)
    assert prices["O7"] == pytest.approx(10.0)
    assert prices["O3"] == pytest.approx(10.0)  # EUR rows are left as they are
    # The panel's price is the units-weighted mean of the converted prices; price_local is in
    # the market's currency again: GB's 20 EUR is 17 GBP.
    rows = {(r["item_id"], r["market"], r["timestamp"].date()): r
            for r in panel.data.iter_rows(named=True)}
    assert rows[("A1", "US", date(2024, 1, 1))]["price"] == pytest.approx(10.0)
    assert rows[("A1", "GB", date(2024, 1, 1))]["price"] == pytest.approx(20.0)
    assert rows[("A1", "GB", date(2024, 1, 1))]["price_local"] == pytest.approx(17.0)
    assert rows[("A1", "DE", date(2024, 1, 1))]["price"] == pytest.approx(10.0)


def test_reporting_currency_other_than_the_fx_base(tmp_path: Path) -> None:
    # Reporting in GBP with EUR-based rates: 11 USD = 10 EUR = 8.5 GBP; 10 EUR = 8.5 GBP.
    tables, _ = _load(_shop(tmp_path, currency="GBP"))
    prices = _first_line_prices(tables)
    assert prices["O1"] == pytest.approx(8.5)
    assert prices["O3"] == pytest.approx(8.5)
    assert prices["O2"] == pytest.approx(17.0)


def test_unknown_currency_is_one_error_naming_file_column_row_value(tmp_path: Path) -> None:
    rows = [list(r) for r in SALES]
    rows[6][6] = "XYZ"
    line = _refused(_shop(tmp_path, [tuple(r) for r in rows]), tmp_path)
    assert "sales.csv" in line and "column 'ccy' (role currency)" in line, line
    assert "data row 7 ('XYZ' on 2024-01-13, a currency the FX table lacks)" in line, line


def test_no_rate_on_the_rows_date_is_one_error(tmp_path: Path) -> None:
    # Without stale quotes, Saturday's order (data row 7) has no USD rate on its date; the
    # cancelled Saturday order (row 5) needs none.
    spec = _shop(tmp_path, fx={"path": "rates.csv", "base_currency": "EUR",
                               "max_staleness_days": 0})
    line = _refused(spec, tmp_path)
    assert "1 row(s), first: data row 7 ('USD' on 2024-01-13)" in line, line
    assert "rates.csv" in line, line
    with pytest.raises(InputError, match="within 0 days"):
        load_tables(load_spec(spec))


def test_blank_currency_is_refused_with_the_fill_hint(tmp_path: Path) -> None:
    rows = [list(r) for r in SALES]
    rows[0][6] = ""
    spec = _shop(tmp_path, [tuple(r) for r in rows])
    line = _refused(spec, tmp_path)
    assert "column 'ccy' (role currency) is blank in 1 of 10 row(s)" in line, line


def test_currency_role_needs_fx_and_a_reporting_currency(tmp_path: Path) -> None:
    assert "maps 'currency'" in _refused(_shop(tmp_path, fx=None), tmp_path)


def test_cancelled_orders_drop_exactly_their_units(tmp_path: Path) -> None:
    spec = _shop(tmp_path)
    tables, panel = _load(spec)
    assert panel.data["y"].sum() == pytest.approx(12.0)  # 17 planted - 5 cancelled (O4)
    assert "O4" not in tables.sales["invoice"].to_list()
    (finding,) = tables.findings
    assert (finding.check, finding.count, finding.first) == ("cancelled_orders", 2, ("O4",))
    result = runner.invoke(app, ["data", "build", str(spec), "--out",
                                 str(tmp_path / "panel.parquet")])
    assert result.exit_code == 0, result.output
    assert result.output.count("warning: 2 sales row(s) (5 units) are cancelled orders") == 1
    # Every command's cross-check (backtest, train, predict, encode) carries it too.
    from salesfusion.data.crosscheck import crosscheck

    assert "cancelled_orders" in [f.check for f in crosscheck(tables, panel).findings]
    # Week of 2024-01-08 in the US: O4's 5 units are gone, O5's 1 unit stays.
    us = panel.data.filter((pl.col("market") == "US") & (pl.col("item_id") == "A1"))
    assert dict(zip(us["timestamp"].dt.date(), us["y"], strict=True))[date(2024, 1, 8)] == 1.0


def test_unparsable_cancellation_date_is_refused(tmp_path: Path) -> None:
    rows = [list(r) for r in SALES]
    rows[1][7] = "yes"
    line = _refused(_shop(tmp_path, [tuple(r) for r in rows]), tmp_path)
    assert "column 'cancelled' (role cancelled_at)" in line and "data row 2 ('yes')" in line


# A DE promotion from Friday 2024-01-12 to Tuesday 2024-01-16, with an overlapping range
# (Sunday to Monday) that adds no day: each day counts once.
PROMOS = [("DE", "2024-01-12", "2024-01-16"), ("DE", "2024-01-14", "2024-01-15")]


def _promo(panel: Panel, market: str) -> dict[date, float]:
    (table,) = [t for t in panel.covariate_tables if "promo_share" in t.channels]
    frame = table.frame.filter(pl.col("market") == market)
    return dict(zip(frame["timestamp"].dt.date(), frame["promo_share"], strict=True))


def test_promotion_range_across_a_week_boundary_weekly(tmp_path: Path) -> None:
    _, panel = _load(_shop(tmp_path, promos=PROMOS))
    assert "promo_share" in panel.future_known
    de = _promo(panel, "DE")
    assert de[date(2024, 1, 1)] == 0.0
    assert de[date(2024, 1, 8)] == pytest.approx(3 / 7)  # Friday, Saturday, Sunday
    assert de[date(2024, 1, 15)] == pytest.approx(2 / 7)  # Monday, Tuesday
    assert de[date(2024, 1, 22)] == 0.0
    # The calendar says "no promotion" ahead too, and for markets without any range.
    assert de[date(2024, 12, 30)] == 0.0
    assert set(_promo(panel, "US").values()) == {0.0}


def test_promotion_range_daily_panel(tmp_path: Path) -> None:
    _, panel = _load(_shop(tmp_path, promos=PROMOS), freq="D")
    de = _promo(panel, "DE")
    on = {d for d, share in de.items() if share}
    assert on == {date(2024, 1, 12) + timedelta(days=i) for i in range(5)}
    assert {de[d] for d in on} == {1.0}
    assert de[date(2024, 1, 11)] == 0.0 and de[date(2024, 1, 17)] == 0.0


def test_promotion_monthly_share(tmp_path: Path) -> None:
    # 5 promotion days of January's 31 (the data cover no whole month: the expansion itself).
    tables = load_tables(load_spec(_shop(tmp_path, promos=PROMOS)))
    ((table, past, future),) = exogenous_tables(tables.spec, tables.exogenous, "M")
    assert (past, future) == ([], ["promo_share"])
    frame = table.frame.filter(pl.col("market") == "DE")
    shares = dict(zip(frame["timestamp"], frame["promo_share"], strict=True))
    assert shares[datetime(2024, 1, 1)] == pytest.approx(5 / 31)
    assert shares[datetime(2024, 2, 1)] == 0.0


@pytest.mark.parametrize(("promos", "fragments"), [
    ([("DE", "2024-01-16", "2024-01-12")],
     ("column 'to' (role end) is before column 'from' (role start)",
      "data row 1 ('2024-01-16 to 2024-01-12')")),
    ([("DE", "2024-01-12", "2024-01-16"), ("UK", "2024-01-12", "2024-01-16")],
     ("column 'country' (role market) names an unknown market", "data row 2 ('UK')",
      "known: DE, GB, US")),
    ([("DE", "2024-01-12", "")], ("column 'to' (role end) has empty values",)),
    ([("DE", "12/01/2024", "2024-01-16")], ("column 'from' (role start)", "not ISO 8601")),
], ids=["end_before_start", "unknown_market", "blank_end", "ambiguous_date"])
def test_bad_promotion_calendars(tmp_path: Path, promos: list, fragments: tuple[str, ...]) -> None:
    line = _refused(_shop(tmp_path, promos=promos), tmp_path)
    assert "promos.csv" in line, line
    for fragment in fragments:
        assert fragment in line, line


def test_promotion_calendar_declares_no_covariate_columns(tmp_path: Path) -> None:
    spec = _shop(tmp_path, promos=PROMOS)
    raw = yaml.safe_load(spec.read_text())
    raw["promotions"][0]["future_known"] = ["discount"]
    spec.write_text(yaml.safe_dump(raw))
    assert "a promotion calendar declares no covariate columns" in _refused(spec, tmp_path)


def test_revenue_converts_like_price(tmp_path: Path) -> None:
    # The same column read as a line total (role revenue): 17 GBP is 20 EUR again.
    spec = _shop(tmp_path)
    raw = yaml.safe_load(spec.read_text())
    columns = raw["sales"]["columns"]
    columns["revenue"] = columns.pop("price")
    spec.write_text(yaml.safe_dump(raw))
    tables, _ = _load(spec)
    first = tables.sales.unique("invoice", keep="first", maintain_order=True)
    revenue = dict(zip(first["invoice"], first["revenue"], strict=True))
    assert revenue["O2"] == pytest.approx(20.0) and revenue["O1"] == pytest.approx(10.0)


def test_attribute_and_site_wide_calendars(tmp_path: Path) -> None:
    # Shoes (A1) on promotion in DE on Saturday 2024-01-20 and Sunday 2024-01-21 (2/7 of the
    # week of 15 January); a site-wide sale on Monday 2024-01-22 (1/7 of the next week).
    spec = _shop(tmp_path)
    pl.DataFrame({"sku": ["a1", "A2"], "cat": ["shoes", "hats"]}).write_csv(
        tmp_path / "items.csv")
    pl.DataFrame({"country": ["DE"], "c": ["shoes"], "from": ["2024-01-20"],
                  "to": ["2024-01-21 23:59"]}).write_csv(tmp_path / "by_cat.csv")
    pl.DataFrame({"from": ["2024-01-22"], "to": ["2024-01-22"]}).write_csv(
        tmp_path / "site.csv")
    raw = yaml.safe_load(spec.read_text())
    raw["items"] = {"path": "items.csv", "columns": {"item_id": "sku"},
                    "static_categorical": ["cat"]}
    raw["promotions"] = [
        {"path": "by_cat.csv", "attribute_of": ["cat"], "name": "sale",
         "columns": {"market": "country", "attribute": "c", "start": "from", "end": "to"}},
        {"path": "site.csv", "columns": {"start": "from", "end": "to"}, "name": "site_sale"}]
    spec.write_text(yaml.safe_dump(raw))
    _, panel = _load(spec)
    assert {"sale_by_cat", "site_sale"} <= set(panel.future_known)
    by_name = {t.channels[0]: t.frame for t in panel.covariate_tables if t.source != "sales"}
    week = pl.col("timestamp") == datetime(2024, 1, 15)
    shares = by_name["sale_by_cat"].filter(week).select("market", "cat", "sale_by_cat")
    assert sorted(shares.rows()) == [("DE", "hats", 0.0), ("DE", "shoes", pytest.approx(2 / 7)),
                                     ("GB", "hats", 0.0), ("GB", "shoes", 0.0),
                                     ("US", "hats", 0.0), ("US", "shoes", 0.0)]
    site = by_name["site_sale"]
    assert site.columns == ["timestamp", "site_sale"]
    assert site.filter(pl.col("timestamp") == datetime(2024, 1, 22))["site_sale"].item() == \
        pytest.approx(1 / 7)


def test_reporting_currency_without_rates_is_one_error(tmp_path: Path) -> None:
    line = _refused(_shop(tmp_path, currency="CHF"), tmp_path)
    assert "rates.csv: no rates for CHF, the spec's 'currency'" in line, line
