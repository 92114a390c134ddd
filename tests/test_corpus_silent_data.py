"""The bad-input corpus, silent wrong data (issue 26, section 5): inputs that used to give a
wrong panel without a word. Each is now either read right (ids that upper-casing would merge,
an order export with the market on its first line only, a per-market category calendar) or
refused with exit 2 and one ``error:`` line naming the file, the column and the count, with
nothing written; what cannot be refused is counted as a warning (images a model would mask)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.data.panel import build_panel
from salesfusion.data.spec import load_spec
from salesfusion.data.validate import load_tables, normalize_id
from salesfusion.features.covariates import covariate_cube, fit_exogenous_scale
from tests.conftest import edit_spec, make_shop

runner = CliRunner()


def _shop(folder: Path, covariates: bool = False, weeks: int = 10) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return make_shop(folder, n_items=4, weeks=weeks, covariates=covariates)


def _csv(spec: Path, name: str) -> pl.DataFrame:
    return pl.read_csv(spec.parent / name, infer_schema=False)


def _write(frame: pl.DataFrame, spec: Path, name: str) -> None:
    frame.write_csv(spec.parent / name)


def _refused(result, fragments: tuple[str, ...], out: Path | None = None) -> str:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert "Traceback" not in result.output
    if out is not None:
        assert not out.exists() and not out.parent.exists()
    return errors[0]


def _build(spec: Path, out: Path):
    return runner.invoke(app, ["data", "build", str(spec), "--out", str(out)])


# --- ids: the normalisation never merges two different ids ---------------------------------

# Pairs that full Unicode upper-casing turns into one id: German sharp s, Turkish dotless i,
# Greek final sigma, the micro sign and Greek mu.
MERGED_BY_UPPER = [("straße", "STRASSE"), ("kıl", "kil"), ("ας1", "ασ1"), ("µ1", "μ1")]


@pytest.mark.parametrize(("first", "second"), MERGED_BY_UPPER,
                         ids=["sharp_s", "dotless_i", "final_sigma", "micro_sign"])
def test_ids_differing_beyond_letter_case_stay_two_items(tmp_path: Path, first: str,
                                                         second: str) -> None:
    spec = _shop(tmp_path)
    # P000 and P001 take the two ids; P002 is lower-cased in the sales only, so the rule still
    # joins ids that differ in letter case only (the reason it exists).
    names = {"P000": first, "P001": second}
    sales = _csv(spec, "sales.csv").with_columns(
        pl.col("sku").replace({**names, "P002": "p002"}))
    _write(sales, spec, "sales.csv")
    _write(_csv(spec, "items.csv").with_columns(pl.col("sku").replace(names)), spec, "items.csv")
    out = tmp_path / "panel.parquet"
    result = _build(spec, out)
    assert result.exit_code == 0, result.output
    ids = set(pl.read_parquet(out)["item_id"].unique())
    assert ids == {normalize_id(first), normalize_id(second), "P002", "P003"}
    assert normalize_id(first) != normalize_id(second)
    assert "sales_without_items" not in result.stderr and "not in the items table" \
        not in result.stderr


def test_normalize_id_folds_reversible_case_only() -> None:
    assert [normalize_id(v) for v in (" p001 ", "müsli-1", "ǆ", "straße", "ς")] == \
        ["P001", "MÜSLI-1", "Ǆ", "STRAßE", "ς"]


# --- blank key cells: counted and refused, with the fill option where it applies ------------

def _blank(name: str, column: str, rows: list[int], value: str | None = None):
    def make(spec: Path) -> None:
        frame = _csv(spec, name).with_columns(
            pl.when(pl.int_range(pl.len()).is_in([r - 1 for r in rows])).then(pl.lit(value))
            .otherwise(pl.col(column)).alias(column))
        _write(frame, spec, name)
    return make


BLANK = [
    ("sales_market_empty", _blank("sales.csv", "country", [2, 5]),
     ("sales.csv", "column 'country' (role market) is blank in 2 of", "data row(s) 2, 5",
      "sales.fill_order_fields: [market]")),
    ("sales_market_spaces", _blank("sales.csv", "country", [3], "   "),
     ("sales.csv", "column 'country' (role market) is blank in 1 of", "fill_order_fields")),
    ("events_market_empty", _blank("events.csv", "country", [2]),
     ("events.csv", "column 'country' (role market) is blank in 1 of 4 row(s)")),
    ("exogenous_market_empty", _blank("exogenous.csv", "country", [3, 4]),
     ("exogenous.csv", "column 'country' (role market) is blank in 2 of")),
]


@pytest.mark.parametrize(("case", "breaker", "fragments"), BLANK, ids=[c[0] for c in BLANK])
def test_blank_key_cells_are_counted_and_refused(tmp_path: Path, case: str,
                                                 breaker: Callable[[Path], None],
                                                 fragments: tuple[str, ...]) -> None:
    spec = _shop(tmp_path, covariates=True)
    breaker(spec)
    out = tmp_path / "out" / "panel.parquet"
    message = _refused(_build(spec, out), fragments, out)
    assert "None" not in message
    if not case.startswith("sales"):
        assert "fill_order_fields" not in message  # only sales lines belong to an order


def _order_export(spec: Path) -> pl.DataFrame:
    """The shop's sales as an order export: three lines per order (one market each)."""
    sales = _csv(spec, "sales.csv").with_row_index("line")
    sales = sales.with_columns(
        (pl.col("country") + "-" + (pl.col("line") // 3).cast(pl.Utf8)).alias("invoice"))
    return sales.drop("line")


def _market_on_first_line_only(sales: pl.DataFrame) -> pl.DataFrame:
    first = pl.int_range(pl.len()).over("invoice") == 0
    return sales.with_columns(pl.when(first).then(pl.col("country")).alias("country"))


def test_fill_order_fields_reads_the_market_from_the_orders_first_line(tmp_path: Path) -> None:
    full, blanked = _shop(tmp_path / "full"), _shop(tmp_path / "blanked")
    _write(_order_export(full), full, "sales.csv")
    export = _market_on_first_line_only(_order_export(blanked))
    assert export["country"].null_count() > export.height // 2
    _write(export, blanked, "sales.csv")
    edit_spec(blanked, **{"sales.fill_order_fields": ["market"]})
    for spec in (full, blanked):
        assert _build(spec, spec.parent / "panel.parquet").exit_code == 0
    expected = pl.read_parquet(full.parent / "panel.parquet")
    assert pl.read_parquet(blanked.parent / "panel.parquet").equals(expected)
    assert set(expected["market"].unique()) == {"GB", "DE"}


def _spec_change(**changes: object) -> Callable[[Path], None]:
    def make(spec: Path) -> None:
        raw = yaml.safe_load(spec.read_text())
        for dotted, value in changes.items():
            table, key = dotted.split(".", 1)
            if value is None:
                raw[table]["columns"].pop(key)
            else:
                raw[table][key] = value
        spec.write_text(yaml.safe_dump(raw))
    return make


def _first_line_blank(spec: Path) -> None:
    """The first order's first line has no market, so none of its three lines gets one."""
    export = _market_on_first_line_only(_order_export(spec))
    _write(export.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(None)
                               .otherwise(pl.col("country")).alias("country")), spec, "sales.csv")
    edit_spec(spec, **{"sales.fill_order_fields": ["market"]})


FILL_REFUSED = [
    ("fill_without_invoice_role",
     _spec_change(**{"sales.fill_order_fields": ["market"], "sales.invoice": None}),
     ("fill_order_fields", "map the 'invoice' role")),
    ("fill_unmapped_role", _spec_change(**{"sales.fill_order_fields": ["channel"]}),
     ("fill_order_fields", "['channel']", "not roles the sales table maps")),
    ("fill_line_level_role", _spec_change(**{"sales.fill_order_fields": ["quantity"]}),
     ("fill_order_fields", "['quantity']", "differ line by line")),
    ("fill_on_items_table", _spec_change(**{"items.fill_order_fields": ["title"]}),
     ("'items'", "'fill_order_fields' is for the sales table")),
    ("fill_first_line_blank", _first_line_blank,
     ("sales.csv", "column 'country' (role market) is blank in 3 of", "data row(s) 1, 2, 3",
      "blank even after filling within each invoice")),
]


@pytest.mark.parametrize(("case", "breaker", "fragments"), FILL_REFUSED,
                         ids=[c[0] for c in FILL_REFUSED])
def test_fill_order_fields_refusals(tmp_path: Path, case: str, breaker: Callable[[Path], None],
                                    fragments: tuple[str, ...]) -> None:
    spec = _shop(tmp_path)
    breaker(spec)
    out = tmp_path / "out" / "panel.parquet"
    _refused(_build(spec, out), fragments, out)


# --- ids holding control characters are shown escaped ----------------------------------------

CONTROLS = ["\x1b[31m", "\x07", "\x1f", "\n", "\x85", "\u200b", "\u2028"]


@pytest.mark.parametrize("control", CONTROLS, ids=[repr(c)[1:-1] for c in CONTROLS])
def test_ids_with_control_characters_are_shown_escaped(tmp_path: Path, control: str) -> None:
    def shown(raw: str) -> str:
        return repr(normalize_id(raw))[1:-1]

    # A warning: an item of the items table that never sold.
    spec = _shop(tmp_path / "warning")
    items = _csv(spec, "items.csv")
    _write(items.with_columns(pl.when(pl.col("sku") == "P004").then(pl.lit(f"P0{control}4"))
                              .otherwise(pl.col("sku")).alias("sku")), spec, "items.csv")
    warned = runner.invoke(app, ["data", "validate", str(spec)])
    assert warned.exit_code == 0, warned.output
    # On its line, in place: not a line break, a terminal escape or an invisible character.
    assert f"have no sales (first: {shown(f'P0{control}4')}); not launched yet" in warned.stderr
    assert control == "\n" or control not in warned.stderr
    # An error: no sold item is in the items table.
    spec = _shop(tmp_path / "error")
    sales = _csv(spec, "sales.csv")
    _write(sales.with_columns(pl.col("sku") + pl.lit(f"{control}X")), spec, "sales.csv")
    out = tmp_path / "out" / "panel.parquet"
    result = _build(spec, out)
    message = _refused(result, ("none of the 4 sold item(s)", shown(f"P000{control}X")), out)
    assert control not in message


# --- images a model would mask are counted ---------------------------------------------------

def _png(size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_validate_counts_empty_and_unreadable_images(tmp_path: Path) -> None:
    spec = _shop(tmp_path)
    good = _png()
    (tmp_path / "P000.png").write_bytes(good)
    (tmp_path / "P002.png").write_bytes(good[: len(good) // 2])  # truncated
    (tmp_path / "P003.png").write_text("not an image")
    (tmp_path / "P004.png").write_bytes(_png(16))
    photos = ["P000.png", None, "P002.png", "P003.png", "P004.png"]
    _write(_csv(spec, "items.csv").with_columns(pl.Series("photo", photos)), spec, "items.csv")
    edit_spec(spec, **{"items.columns.image": "photo"})
    result = runner.invoke(app, ["data", "validate", str(spec)])
    assert result.exit_code == 0, result.output
    assert "no problems found" not in result.stderr
    assert "1 of 5 item(s) have an empty image cell in column 'photo' (first: P001)" \
        in result.stderr
    assert "2 of 4 image(s) cannot be decoded (first: P002.png (" in result.stderr
    assert "P003.png (" in result.stderr


# --- an exogenous table keyed by market and an item attribute --------------------------------

SALES_WEEKS = 20  # enough for lightgbm's lags in a backtest window
CALENDAR_WEEKS = SALES_WEEKS + 4  # and the 4 weeks a forecast reads


def _category_calendar(folder: Path, drop: tuple[str, str] | None = None) -> Path:
    """The shop with a ``Type`` per item (MUG or LAMP) and a per-market category promotion
    calendar (``promo_share`` per week, market and Type); ``drop`` leaves out a (market, Type)
    pair's weeks after the sales end."""
    spec = _shop(folder, weeks=SALES_WEEKS)
    items = _csv(spec, "items.csv")
    _write(items.with_columns(pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.lit("MUG"))
                              .otherwise(pl.lit("LAMP")).alias("Type")), spec, "items.csv")
    weeks = np.datetime64("2021-01-04") + np.arange(CALENDAR_WEEKS) * np.timedelta64(7, "D")
    rows = [{"week": str(w), "country": m, "category": t,
             "promo_share": round(0.1 * i + {"GB": 0, "DE": 5}[m] + {"MUG": 0, "LAMP": 2}[t], 2)}
            for i, w in enumerate(weeks) for m in ("GB", "DE") for t in ("MUG", "LAMP")
            if not (drop == (m, t) and i >= SALES_WEEKS)]
    pl.DataFrame(rows).write_csv(folder / "calendar.csv")
    raw = yaml.safe_load(spec.read_text())
    raw["items"]["static_categorical"] = ["Type"]
    raw["exogenous"] = {"path": "calendar.csv", "columns": {
        "timestamp": "week", "market": "country", "attribute": "category"},
        "attribute_of": ["Type"], "future_known": ["promo_share"]}
    spec.write_text(yaml.safe_dump(raw))
    return spec


def test_market_attribute_calendar_end_to_end(tmp_path: Path) -> None:
    spec = _category_calendar(tmp_path / "shop")
    checked = runner.invoke(app, ["data", "validate", str(spec)])
    assert checked.exit_code == 0, checked.output
    assert "OK: panel" in checked.stderr
    out = tmp_path / "panel.parquet"
    assert _build(spec, out).exit_code == 0
    # Each series reads its own market's values for its item's Type.
    tables = load_tables(load_spec(spec))
    panel = build_panel(tables)
    assert "promo_share_by_Type" in panel.future_known
    keys = panel.data.select("item_id", "market").unique(maintain_order=True)
    scale = fit_exogenous_scale(panel)
    cube = covariate_cube(panel, keys, panel.periods.to_numpy(), scale)
    channel = cube.values[..., cube.names.index("promo_share_by_Type")]
    types = dict(tables.items.select("item_id", "Type").iter_rows())
    calendar = pl.read_csv(spec.parent / "calendar.csv")
    mean, std = scale["promo_share_by_Type"]
    for row, (item, market) in enumerate(keys.iter_rows()):
        expected = (calendar.filter((pl.col("country") == market)
                                    & (pl.col("category") == types[item]))
                    .sort("week")["promo_share"].head(len(panel.periods)).to_numpy())
        assert np.allclose(channel[row], (expected - mean) / std, atol=1e-5), (item, market)
    # A model that reads covariates backtests on it.
    backtest = runner.invoke(app, ["backtest", "--spec", str(spec), "--models", "lightgbm",
                                   "--windows", "1", "--out", str(tmp_path / "bt")])
    assert backtest.exit_code == 0, backtest.output
    forecasts = pl.read_parquet(tmp_path / "bt" / "forecasts.parquet")
    assert forecasts.height > 0 and forecasts["y_pred"].is_finite().all()


def test_market_attribute_calendar_gap_is_named(tmp_path: Path) -> None:
    spec = _category_calendar(tmp_path, drop=("DE", "LAMP"))
    result = runner.invoke(app, ["data", "validate", str(spec)])
    _refused(result, ("future-known column 'promo_share_by_Type'",
                      "(period, market, Type) cell(s)", "DE LAMP"))
