"""The planner's reports: the backtest report.html (bands, coverage, titles and thumbnails, cold
start, cold-start-only models apart, which model to trust per market) and the forecast report
of ``predict --report``. Figures are read back from the plotly JSON embedded in the page."""

import base64
import io
import json
import re
from datetime import date

import numpy as np
import polars as pl
import pytest
from PIL import Image

from salesfusion.data.panel import SERIES_KEY
from salesfusion.data.splits import BacktestProtocol
from salesfusion.datasets.synthetic import synthetic
from salesfusion.errors import InputError
from salesfusion.evaluation.forecast_report import write_forecast_report
from salesfusion.evaluation.report import write_report
from salesfusion.evaluation.runner import backtest_models
from salesfusion.models.registry import create_model

PROTOCOL = BacktestProtocol(horizon=3, windows=2)


@pytest.fixture(scope="module")
def backtest(tmp_path_factory):
    root = tmp_path_factory.mktemp("planner")
    panel = synthetic(root / "shop", n_items=16, n_weeks=20, seed=3).panel()
    run = backtest_models(panel, ["seasonal_naive", "moving_average", "knn_analogue"], PROTOCOL)
    write_report(run, root / "report.html", title="planner")
    return run, (root / "report.html").read_text()


def _figures(page: str) -> list[dict]:
    """Every figure of the page as ``{"data": [...], "layout": {...}}``."""
    decoder, figures = json.JSONDecoder(), []
    for match in re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*', page):
        data, end = decoder.raw_decode(page, match.end())
        layout, _ = decoder.raw_decode(page, re.compile(r",\s*").match(page, end).end())
        figures.append({"data": data, "layout": layout})
    return figures


def _values(encoded: object) -> np.ndarray:
    """A trace's numbers, plain or in plotly's typed-array encoding."""
    if isinstance(encoded, dict):
        return np.frombuffer(base64.b64decode(encoded["bdata"]), dtype=encoded["dtype"])
    return np.asarray(encoded, dtype=float)


def _section(page: str, anchor: str) -> str:
    found = re.search(rf'<section id="{anchor}">(.*?)</section>', page, re.S)
    assert found, f"no section {anchor}"
    return found[1]


def _rows(table_html: str) -> list[list[str]]:
    """The first table's rows as cell texts (tags stripped)."""
    table = re.search(r"<table>(.*?)</table>", table_html, re.S)[1]
    return [[" ".join(re.sub(r"<[^>]+>", " ", cell).split())
             for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)]


def _by_header(table_html: str) -> list[dict[str, str]]:
    head, *rows = _rows(table_html)
    return [dict(zip(head, row, strict=True)) for row in rows]


def _title_of(run, item: str) -> str:
    return run.panel.items.filter(pl.col("item_id") == item)["title"][0]


def test_every_series_plot_has_a_filled_quantile_band(backtest):
    _, page = backtest
    series = [f for f in _figures(page) if any(t.get("name") == "actual" for t in f["data"])]
    assert len(series) >= 6
    for figure in series:
        bands = [t for t in figure["data"] if t.get("fill") == "tonexty"]
        assert bands and all("seasonal_naive 80% band" in t["name"] for t in bands)
        for lower in bands:
            upper = figure["data"][figure["data"].index(lower) - 1]
            assert np.all(_values(lower["y"]) <= _values(upper["y"]) + 1e-9)


def test_accuracy_tables_have_coverage_and_nominal_level(backtest):
    run, page = backtest
    rows = {r["model"]: r for r in _by_header(_section(page, "accuracy-history"))}
    expected = run.metrics.filter((pl.col("model") == "seasonal_naive") & (pl.col("window") ==
                                  "all") & (pl.col("segment") == "all")
                                  & (pl.col("metric") == "coverage"))["value"][0]
    coverage = float(rows["seasonal_naive"]["coverage"])
    assert 0 <= coverage <= 1 and coverage == pytest.approx(expected, abs=1e-3)
    assert float(rows["seasonal_naive"]["nominal"]) == pytest.approx(0.8)
    assert rows["moving_average"]["coverage"] == ""  # no band, no coverage


def test_cold_start_only_models_are_apart(backtest):
    _, page = backtest
    history = [r["model"] for r in _by_header(_section(page, "accuracy-history"))]
    cold_only = [r["model"] for r in _by_header(_section(page, "accuracy-cold-only"))]
    assert cold_only == ["knn_analogue"]
    assert sorted(history) == ["moving_average", "seasonal_naive"]


def test_titles_and_thumbnails_next_to_ids(backtest):
    run, page = backtest
    heads = re.findall(r'<div class="series-head"><span class="item">(.*?)</span></span>', page)
    assert len(heads) >= 6
    for head in heads:
        item = re.search(r"<b>(\w+)</b>", head)[1]
        assert f"<b>{item}</b> {_title_of(run, item)}" in head
        assert 'src="data:image/jpeg;base64,' in head
    titles = [f["layout"]["title"]["text"] for f in _figures(page)
              if any(t.get("name") == "actual" for t in f["data"])]
    for text in titles:
        item = text.split(":")[0]
        assert text.startswith(f"{item}: {_title_of(run, item)} in ")
    thumbnail = re.search(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", page)[1]
    image = Image.open(io.BytesIO(base64.b64decode(thumbnail)))
    assert image.format == "JPEG" and max(image.size) <= 64


def test_cold_start_section_lists_series_without_history_at_an_origin(backtest):
    run, page = backtest
    panel = run.panel
    first = panel.data.group_by(SERIES_KEY).agg(pl.col("timestamp").min().alias("first"))
    periods = panel.periods
    expected = set()
    for origin in PROTOCOL.origins(periods):
        end = periods.filter(periods > origin).head(PROTOCOL.horizon).max()
        seen = panel.data.filter((pl.col("timestamp") > origin) & (pl.col("timestamp") <= end))
        new = seen.select(SERIES_KEY).unique().join(first, on=SERIES_KEY).filter(
            pl.col("first") > origin)
        expected |= set(new.select(SERIES_KEY).iter_rows())
    assert expected, "the shop should launch items inside the test windows"
    section = _section(page, "cold-start")
    listed = {(r["item"].split()[0], r["market"]) for r in _by_header(section)}
    assert listed == expected
    for item, _ in expected:
        assert f"<b>{item}</b> {_title_of(run, item)}" in section


def test_trust_per_market_names_the_lowest_rmsse_and_its_margin(backtest):
    # The report's default choice is by RMSSE (issue 27: the planner's loss, not WAPE).
    run, page = backtest
    by_market = run.metrics.filter((pl.col("window") == "all") & (pl.col("metric") == "RMSSE")
                                   & (pl.col("segment") != "all"))
    section = _section(page, "trust")
    assert "chosen by metric <b>rmsse</b>" in section
    rows = _by_header(section)
    assert sorted(r["market"] for r in rows) == sorted(by_market["segment"].unique())
    for row in rows:
        ranked = by_market.filter(pl.col("segment") == row["market"]).sort("value", "model")
        best, runner = ranked.row(0, named=True), ranked.row(1, named=True)
        assert row["best"] == best["model"] and row["runner-up"] == runner["model"]
        assert float(row["best RMSSE"]) == pytest.approx(best["value"], abs=1e-3)
        margin = runner["value"] - best["value"]
        assert float(row["margin"]) == pytest.approx(margin, abs=1e-3)
        assert float(row["margin (%)"]) == pytest.approx(100 * margin / runner["value"],
                                                         abs=1e-3)
        if 100 * margin / runner["value"] < 2:  # within noise: 2 % of the runner-up's RMSSE
            assert f"<b>{row['market']}</b>, " in section


def test_forecast_report_has_bands_and_the_cold_start_series(tmp_path, backtest):
    run, _ = backtest
    panel = run.panel
    history = panel.until(panel.periods[-4])
    model = create_model("multimodal", epochs=1, lookback=8, hidden=8, fusion_dim=8, horizon=3,
                         accelerator="cpu", cache_dir=str(tmp_path / "cache")).fit(history)
    forecast = model.predict(3, history=history, series=panel.data.select(SERIES_KEY).unique())
    cold = set(forecast.filter(pl.col("cold_start")).select(SERIES_KEY).unique().iter_rows())
    assert cold
    path = tmp_path / "forecast.html"
    write_forecast_report(forecast, history, path, title="next weeks", model_name="multimodal",
                          max_series=4)
    page = path.read_text()
    assert len(re.findall(r"plotly\.js v\d", page)) == 1  # inlined once, no CDN
    assert "<script src=" not in page
    figures = _figures(page)
    series = [f for f in figures if any(t.get("name") == "forecast" for t in f["data"])]
    assert len(series) >= 4
    for figure in [*series, figures[0]]:  # every series plot and the market totals
        assert any(t.get("fill") == "tonexty" for t in figure["data"])
    section = _section(page, "cold-start")
    listed = {(r["item"].split()[0], r["market"]) for r in _by_header(section)}
    assert listed == cold
    totals = {r["market"]: float(r["forecast units"].replace(",", ""))
              for r in _by_header(_section(page, "markets"))}
    expected = forecast.group_by("market").agg(pl.col("y_pred").clip(0).sum())
    for market, units in expected.iter_rows():
        assert totals[market] == pytest.approx(units, abs=1e-2)


def test_forecast_report_shows_the_backtest_record(tmp_path, backtest):
    run, _ = backtest
    model = create_model("seasonal_naive").fit(run.panel)
    path = tmp_path / "forecast.html"
    write_forecast_report(model.predict(3), run.panel, path, title="t",
                          model_name="seasonal_naive", backtest=run.metrics)
    record = _by_header(_section(path.read_text(), "backtest"))
    mine = run.metrics.filter((pl.col("model") == "seasonal_naive") & (pl.col("window") == "all")
                              & (pl.col("segment") != "all"))
    # Compared by RMSSE by default, with the model's bias beside it.
    for metric, column in (("RMSSE", "this model RMSSE"), ("bias_pct", "bias_pct")):
        own = mine.filter(pl.col("metric") == metric)
        assert {r["market"] for r in record} == set(own["segment"])
        for market, value in own.select("segment", "value").iter_rows():
            row = next(r for r in record if r["market"] == market)
            assert float(row[column]) == pytest.approx(value, abs=1e-3)
    with pytest.raises(InputError, match="have no RMSSE rows"):
        write_forecast_report(model.predict(3), run.panel, path, title="t",
                              model_name="seasonal_naive",
                              backtest=run.metrics.filter(pl.col("metric") != "RMSSE"))
    with pytest.raises(InputError, match="'y_pred'"):
        write_forecast_report(model.predict(3).drop("y_pred"), run.panel, path, title="t",
                              model_name="x")


def test_an_unreadable_or_escaping_image_is_simply_no_thumbnail(tmp_path):
    from salesfusion.evaluation.report_media import ItemCatalogue

    (tmp_path / "images").mkdir()
    Image.new("RGB", (300, 120), (200, 30, 30)).save(tmp_path / "images" / "good.png")
    (tmp_path / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    Image.new("RGB", (8, 8)).save(tmp_path / "outside.png")
    items = pl.DataFrame({"item_id": ["good", "corrupt", "missing", "escape", "bare"],
                          "title": ["Red mug", "Blue mug", None, "Lamp", "Scarf"],
                          "image": ["good.png", "corrupt.png", "none.png", "../outside.png",
                                    None]})
    catalogue = ItemCatalogue(items, tmp_path / "images")
    picture = catalogue.thumbnail("good")
    image = Image.open(io.BytesIO(base64.b64decode(picture.split(",", 1)[1])))
    assert image.size == (64, 26)  # the longer side at 64 px, aspect kept
    for item in ("corrupt", "missing", "escape", "bare", "unknown"):
        assert catalogue.thumbnail(item) is None
    assert "<img" not in catalogue.cell("escape") and "<b>escape</b> Lamp" in \
        catalogue.cell("escape")
    assert catalogue.label("missing") == "missing" and catalogue.label("good") == "good: Red mug"
    assert ItemCatalogue(items, None).thumbnail("good") is None  # no root, no reads


def test_predict_report_from_the_cli(tmp_path, backtest):
    """``salesfusion predict --report`` writes the forecast report beside the forecasts, with
    the backtest record of ``--report-backtest``; a report name that is not .html is exit 2
    and writes nothing."""
    from typer.testing import CliRunner

    from salesfusion.cli import app

    run, _ = backtest
    shop = synthetic(tmp_path / "shop", n_items=16, n_weeks=20, seed=3)
    model = create_model("seasonal_naive").fit(shop.panel()).save(tmp_path / "model")
    (tmp_path / "bt").mkdir()
    run.write(tmp_path / "bt")
    runner = CliRunner()
    spec_file = str(shop.spec.base_dir / "spec.yaml")
    refused = runner.invoke(app, ["predict", "--model", str(model), "--spec", spec_file,
                                  "--out", str(tmp_path / "f.parquet"), "--report",
                                  str(tmp_path / "r.txt")])
    assert refused.exit_code == 2 and not (tmp_path / "f.parquet").exists()
    done = runner.invoke(app, ["predict", "--model", str(model), "--spec", spec_file,
                               "--out", str(tmp_path / "f.parquet"), "--report",
                               str(tmp_path / "r.html"), "--report-backtest",
                               str(tmp_path / "bt")])
    assert done.exit_code == 0, done.output
    page = (tmp_path / "r.html").read_text()
    assert any(t.get("fill") == "tonexty" for f in _figures(page) for t in f["data"])
    record = _by_header(_section(page, "backtest"))
    assert {r["market"] for r in record} == set(run.panel.data["market"].unique())
    # Compared by RMSSE unless --metric says otherwise, with the model's bias beside it.
    assert {"this model RMSSE", "best RMSSE", "bias_pct"} <= set(record[0])
    by_wape = runner.invoke(app, ["predict", "--model", str(model), "--spec", spec_file,
                                  "--out", str(tmp_path / "g.parquet"), "--report",
                                  str(tmp_path / "w.html"), "--report-backtest",
                                  str(tmp_path / "bt"), "--metric", "wape"])
    assert by_wape.exit_code == 0, by_wape.output
    record = _by_header(_section((tmp_path / "w.html").read_text(), "backtest"))
    assert {"this model WAPE", "best WAPE"} <= set(record[0])


def test_bias_rmsse_and_horizon_steps_are_reported(backtest):
    run, page = backtest
    assert {"bias_pct", "RMSSE", "WRMSSE"} <= set(run.summary().columns)  # the shop has prices
    for metric in ("bias_pct", "RMSSE"):
        values = run.metrics.filter((pl.col("metric") == metric) & (pl.col("window") == "all"))
        assert values.height and values["value"].is_not_null().any(), metric
    header = _rows(_section(page, "accuracy-history"))[0]
    assert {"WAPE", "bias_pct", "RMSSE"} <= set(header)
    steps = _by_header(_section(page, "steps"))
    assert {r["step"] for r in steps} == {str(s) for s in range(1, PROTOCOL.horizon + 1)}
    assert "Bias is 100 x (total forecast / total actual - 1)" in _section(page, "bias")


def test_a_biased_market_is_flagged_in_a_planners_sentence():
    from salesfusion.evaluation.backtest import metrics_table
    from salesfusion.evaluation.report_bias import bias_flags, bias_section

    actual = [10.0, 20.0, 30.0, 40.0]
    forecasts = pl.DataFrame({
        "item_id": ["a"] * 8, "market": ["SE"] * 4 + ["DE"] * 4,
        "timestamp": [date(2024, 1, d) for d in (1, 8, 15, 22)] * 2,
        "model": ["lightgbm"] * 8, "window": [0] * 8, "y_true": actual * 2,
        "y_pred": [v * 0.54 for v in actual] + [v * 1.05 for v in actual]})
    metrics = metrics_table(forecasts)
    flags = bias_flags(metrics)
    assert flags.select("market").to_series().to_list() == ["SE"]
    assert "lightgbm forecasts 46 % below actual demand in SE over the backtest" in \
        bias_section(metrics, ["lightgbm"])
