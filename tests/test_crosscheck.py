"""`salesfusion data validate` checks the tables against each other: one test per problem."""

from pathlib import Path

import numpy as np
import polars as pl
import yaml
from typer.testing import CliRunner

from salesfusion.cli import app
from tests.conftest import make_shop

runner = CliRunner()


def _validate(spec: Path, *args: str):
    return runner.invoke(app, ["data", "validate", str(spec), *args])


def _build(spec: Path, out: Path):
    return runner.invoke(app, ["data", "build", str(spec), "--out", str(out)])


def _edit_csv(path: Path, edit) -> None:
    edit(pl.read_csv(path, infer_schema=False)).write_csv(path)


def _edit_spec(spec: Path, edit) -> None:
    raw = yaml.safe_load(spec.read_text())
    edit(raw)
    spec.write_text(yaml.safe_dump(raw))


def test_clean_shop_has_only_the_unlaunched_item(shop_spec, tmp_path):
    result = _validate(shop_spec)
    assert result.exit_code == 0, result.output
    assert "Cross-table check: 0 error(s), 1 warning(s)" in result.stderr
    assert "1 item(s) of the items table have no sales (first: P012)" in result.stderr


def test_items_without_sales_are_a_warning(tmp_path):
    spec = make_shop(tmp_path)
    extra = pl.DataFrame({"sku": ["P100", "P101"], "title": ["NEW MUG", "NEW LAMP"],
                          "weight": ["1.0", "2.0"]})
    _edit_csv(tmp_path / "items.csv", lambda f: pl.concat([f, extra]))
    result = _validate(spec)
    assert result.exit_code == 0, result.output
    assert "3 item(s) of the items table have no sales (first: P012, P100, P101)" in result.stderr


def test_sales_without_items(tmp_path):
    spec = make_shop(tmp_path)
    _edit_csv(tmp_path / "items.csv", lambda f: f.filter(~pl.col("sku").is_in(["P000", "P001"])))
    result = _validate(spec)
    assert result.exit_code == 0, result.output
    assert "2 sold item(s) are not in the items table (first: P000, P001)" in result.stderr


def test_items_table_matching_no_sale_is_an_error(tmp_path):
    spec = make_shop(tmp_path)
    _edit_csv(tmp_path / "items.csv", lambda f: f.with_columns(("X-" + pl.col("sku")).alias("sku")))
    result = _validate(spec)
    assert result.exit_code == 2
    assert "none of the 12 sold item(s) is in the items table" in result.stderr
    built = _build(spec, tmp_path / "out" / "panel.parquet")
    assert built.exit_code == 2 and not (tmp_path / "out").exists()


def _with_images(folder: Path, present: int, image_root: str | None = None) -> Path:
    folder.mkdir()
    spec = make_shop(folder)
    (folder / "img").mkdir()
    (folder.parent / "outside.png").write_bytes(b"png")
    items = pl.read_csv(folder / "items.csv", infer_schema=False)
    paths = [f"img/{sku}.png" for sku in items["sku"]]
    paths[-1] = "../outside.png"  # exists, but outside the image root
    for path in paths[:present]:
        (folder / path).write_bytes(b"png")
    items.with_columns(pl.Series("photo", paths)).write_csv(folder / "items.csv")

    def edit(raw: dict) -> None:
        raw["items"]["columns"]["image"] = "photo"
        if image_root:
            raw["image_root"] = image_root
    _edit_spec(spec, edit)
    return spec


def test_missing_image_paths_are_counted(tmp_path):
    spec = _with_images(tmp_path / "shop", present=10)
    result = _validate(spec)
    assert result.exit_code == 0, result.output
    assert "3 of 13 image path(s) do not exist" in result.stderr
    assert "img/P010.png, img/P011.png, ../outside.png" in result.stderr


def test_no_image_found_is_an_error(tmp_path):
    spec = _with_images(tmp_path / "shop", present=13, image_root="pictures")
    (tmp_path / "shop" / "pictures").mkdir()
    result = _validate(spec)
    assert result.exit_code == 2
    assert "13 of 13 image path(s) do not exist" in result.stderr


def test_market_currency_without_rates_is_a_warning(tmp_path):
    """Its prices cannot be converted (price_local is missing there), but the run is right."""
    spec = make_shop(tmp_path)
    _edit_csv(tmp_path / "markets.csv", lambda f: f.with_columns(
        pl.when(pl.col("country") == "DE").then(pl.lit("CHF")).otherwise("ccy").alias("ccy")))
    result = _validate(spec)
    assert result.exit_code == 0, result.output
    assert "1 market currenc(y/ies) have no exchange rate in any sales period (first: CHF)" \
        in result.stderr
    assert "price_local is missing in those markets" in result.stderr
    built = _build(spec, tmp_path / "out" / "panel.parquet")
    assert built.exit_code == 0 and (tmp_path / "out" / "panel.parquet").is_file()


def test_fx_gaps_are_a_warning(tmp_path):
    spec = make_shop(tmp_path)
    _edit_csv(tmp_path / "markets.csv", lambda f: f.with_columns(
        pl.when(pl.col("country") == "DE").then(pl.lit("USD")).otherwise("ccy").alias("ccy")))
    start = np.datetime64("2021-01-04")
    gap = [str(start + np.timedelta64(d, "D")) for d in range(7 * 5, 7 * 10)]  # weeks 5-9
    _edit_csv(tmp_path / "fx.csv", lambda f: f.with_columns(
        pl.when(pl.col("Date").is_in(gap)).then(None).otherwise("USD").alias("USD")))
    result = _validate(spec)
    assert result.exit_code == 0, result.output
    # weeks 5 and 6 take week 4's rate (10 days of staleness allowed); 7, 8 and 9 have none
    assert "3 (currency, period) pair(s) of the sales have no exchange rate within 10 days " \
           "(first: USD 2021-02-22, USD 2021-03-01, USD 2021-03-08)" in result.stderr


def test_future_known_columns_must_cover_the_horizon(tmp_path):
    spec = make_shop(tmp_path)
    longer = _validate(spec, "--horizon", "12")
    assert longer.exit_code == 2  # the table runs 8 weeks past the sales: 4 of 12 missing
    assert "'search_trend' has no value for 8 of the 24 (period, market) cell(s)" \
        in longer.stderr

    last_weeks = [str(np.datetime64("2021-01-04") + np.timedelta64(7 * w, "D"))
                  for w in range(32, 38)]
    _edit_csv(tmp_path / "exogenous.csv", lambda f: f.filter(~pl.col("week").is_in(last_weeks)))
    assert _validate(spec).exit_code == 2
    built = _build(spec, tmp_path / "out" / "panel.parquet")  # not a forecast: a warning
    assert built.exit_code == 0, built.output
    assert "warning: future-known column 'search_trend' has no value for 4 of the 8" \
        in built.stderr


def test_events_naming_unknown_items_or_markets(tmp_path):
    spec = make_shop(tmp_path)
    extra = pl.DataFrame({"country": ["GB", "FR", "FR"], "aired": ["2021-02-01"] * 3,
                          "sku": ["P999", "P001", "P002"], "viewers": ["10"] * 3})
    _edit_csv(tmp_path / "events.csv", lambda f: pl.concat([f, extra]))
    result = _validate(spec)
    assert result.exit_code == 0, result.output
    assert "1 event(s) name an unknown item (first: P999)" in result.stderr
    assert "2 event(s) name an unknown market (first: FR)" in result.stderr


def test_events_matching_no_item_are_an_error(tmp_path):
    spec = make_shop(tmp_path)
    _edit_csv(tmp_path / "events.csv",
              lambda f: f.with_columns(("kol-" + pl.col("sku")).alias("sku")))
    result = _validate(spec)
    assert result.exit_code == 2
    assert "4 event(s) name an unknown item" in result.stderr


def test_every_spec_command_prints_the_summary(tmp_path):
    spec = make_shop(tmp_path)
    _edit_csv(tmp_path / "items.csv", lambda f: f.filter(pl.col("sku") != "P003"))
    line = "1 sold item(s) are not in the items table (first: P003)"
    encoded = runner.invoke(app, ["encode", "--spec", str(spec), "--modality", "text",
                                  "--encoder", "tfidf", "--cache", str(tmp_path / "cache")])
    backtest = runner.invoke(app, ["backtest", "--spec", str(spec), "--models", "naive",
                                   "--horizon", "1", "--windows", "1", "--out",
                                   str(tmp_path / "bt")])
    for result in (encoded, backtest):
        assert result.exit_code == 0, result.output
        assert line in result.stderr
