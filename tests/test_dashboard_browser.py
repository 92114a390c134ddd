"""The dashboard end to end in headless Chromium: the real app under uvicorn on a loopback port,
over models, a backtest and an explanation made here from a small synthetic shop; Playwright
enters the key, searches, opens series and exports a table, and a screenshot is checked for
drawn charts (saved to ``$SALESFUSION_SCREENSHOTS`` when set)."""

from __future__ import annotations

import csv
import io
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest
from PIL import Image
from typer.testing import CliRunner

from salesfusion.cli import app as cli
from salesfusion.data.splits import BacktestProtocol
from salesfusion.datasets.synthetic import synthetic
from salesfusion.evaluation.runner import backtest_models
from salesfusion.models.registry import create_model, model_class
from salesfusion.serving.api import create_app
from salesfusion.serving.store import Insights, ModelStore
from tests.services import chromium_path

pytestmark = pytest.mark.xdist_group("browser")
KEY = "browser-test-key-0123456789"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update",
                 "--disable-sync"]
WAIT_MS = 20_000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app serving a seasonal naive and a kNN analogue fitted on a shop cut 4 weeks before
    its end (so late launches are cold starts), their backtest, and ``salesfusion explain`` of
    a small TFT; yields the base URL."""
    chromium = chromium_path()  # skips (or fails under make test) before any work
    import uvicorn

    root = tmp_path_factory.mktemp("browser")
    shop = synthetic(root / "shop", n_items=24, n_weeks=40, image_size=48, seed=0)
    panel = shop.panel()
    cut = panel.until(panel.periods[-5])
    models = [create_model("seasonal_naive").fit(cut).save(root / "snaive"),
              create_model("knn_analogue").fit(cut).save(root / "knn")]
    run = backtest_models(cut, ["seasonal_naive", "knn_analogue"],
                          BacktestProtocol(horizon=4, windows=2))
    (root / "backtest").mkdir()
    run.write(root / "backtest")
    tft = create_model("tft_multimodal", horizon=4, **model_class("tft_multimodal").test_params(),
                       modalities=["static"]).fit(panel).save(root / "tft")
    explained = CliRunner().invoke(cli, [
        "explain", "--model", str(tft), "--spec", str(root / "shop" / "spec.yaml"),
        "--out", str(root / "explain"), "--segment", "maturity", "--origins", "1",
        "--max-windows", "24"])
    assert explained.exit_code == 0, explained.output
    store = ModelStore.load(models, insights=Insights(root / "backtest", root / "explain",
                                                      root / "shop"))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store, [KEY.encode()]), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield {"url": f"http://127.0.0.1:{port}", "chromium": chromium, "panel": panel}
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="module")
def browser(served):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=served["chromium"],
                                              args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _api(served, path: str, **params: object) -> dict:
    response = httpx.get(f"{served['url']}/v1/dashboard/{path}", params=params,
                         headers={"X-API-Key": KEY}, timeout=30)
    response.raise_for_status()
    return response.json()


def _chart_colours(png: bytes, box: dict) -> int:
    """Distinct colours inside ``box`` (CSS pixels of a device-scale-1 screenshot)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    region = image.crop((int(box["x"]), int(box["y"]), int(box["x"] + box["width"]),
                         int(box["y"] + box["height"])))
    pixels = np.asarray(region).reshape(-1, 3)
    return len(np.unique(pixels, axis=0))


def test_dashboard_in_chromium(served, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: problems.append(message.text)
            if message.type == "error" and "401" not in message.text else None)
    page.goto(served["url"] + "/dashboard")

    # A wrong key shows the 401 message and no data.
    page.fill("#api-key", "not-the-key-at-all")
    page.click("#key-form button")
    page.wait_for_function("() => document.getElementById('status').textContent.includes('401')",
                           timeout=WAIT_MS)
    assert "valid API key is required" in page.text_content("#status")
    assert page.is_hidden("#app")

    page.fill("#api-key", KEY)
    page.click("#key-form button")
    page.wait_for_selector("#results li", timeout=WAIT_MS)
    assert page.evaluate("sessionStorage.getItem('salesfusion-api-key')") == KEY

    # Search by a title's word, open the item.
    items = served["panel"].items
    title = items.filter(pl.col("item_id") == "S00004")["title"][0]
    page.fill("#search", title.lower())
    page.press("#search", "Enter")
    target = "#results button[data-item='S00004'][data-market='UK']"
    # The list before the search may hold the target too: wait for the search's own answer,
    # one row per market.
    page.wait_for_function("() => document.querySelectorAll('#results li').length === 4",
                           timeout=WAIT_MS)
    page.wait_for_selector(target, timeout=WAIT_MS)
    page.click(target)
    page.wait_for_function("() => (document.getElementById('series-chart').data || []).length >= 5",
                           timeout=WAIT_MS)
    assert page.text_content("#series-title") == title
    traces = page.evaluate("""document.getElementById('series-chart').data.map(
        t => [t.meta.kind, t.meta.model || null, t.x.length,
              t.y.filter(v => v !== null).length])""")
    kinds = {(kind, model) for kind, model, _, _ in traces}
    assert {("history", None), ("forecast", "snaive"), ("forecast", "knn"), ("band", "snaive"),
            ("backtest", "snaive"), ("backtest", "knn")} <= kinds
    assert all(x > 0 and y == x for _, _, x, y in traces), traces
    # The photo is the item's image, loaded.
    page.wait_for_function("() => document.getElementById('photo').complete && "
                           "document.getElementById('photo').naturalWidth > 0", timeout=WAIT_MS)
    assert page.evaluate("document.getElementById('photo').naturalWidth") == 48
    assert page.is_hidden("#series-cold")

    # Metrics tables have a row per model and step / market; explanations are shown.
    page.wait_for_selector("#metrics-step tbody tr", timeout=WAIT_MS)
    assert page.locator("#metrics-step tbody tr").count() == 2 * 4
    assert page.locator("#metrics-market tbody tr").count() == 2 * 4
    assert page.is_visible("#explain")
    page.wait_for_selector(".explain-table[data-table='shares_by_step'] tbody tr",
                           timeout=WAIT_MS)
    shares = page.evaluate("""document.getElementById('explain-chart-shares_by_step').data
        .map(t => t.y.length)""")
    assert shares and all(n > 0 for n in shares)

    # Export CSV downloads what the table shows: the metrics by step.
    with page.expect_download(timeout=WAIT_MS) as download:
        page.click("#metrics-step .export-csv")
    assert download.value.suggested_filename == "metrics_by_step.csv"
    exported = list(csv.reader(io.StringIO(Path(download.value.path()).read_text())))
    table = _api(served, "metrics", by="step")
    assert exported[0] == table["columns"] and len(exported) == len(table["rows"]) + 1
    for row, line in zip(table["rows"], exported[1:], strict=True):
        assert line[0] == row[0] and [float(c) for c in line[1:]] == pytest.approx(row[1:])

    # The screenshot: the series chart region is drawn in many colours, not blank.
    page.locator("#series").scroll_into_view_if_needed()
    png = page.screenshot(full_page=True)
    box = page.evaluate("""(() => { const r = document.getElementById('series-chart')
        .getBoundingClientRect(); return {x: r.x + scrollX, y: r.y + scrollY,
        width: r.width, height: r.height}; })()""")
    assert _chart_colours(png, box) > 50
    folder = os.environ.get("SALESFUSION_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "dashboard.png").write_bytes(png)

    # A cold-start item carries its badge in the list and in the view.
    cold = next(s for s in _api(served, "series", limit=500)["series"] if s["cold_start"])
    page.fill("#search", cold["item_id"])
    page.press("#search", "Enter")
    cold_button = f"#results button[data-item='{cold['item_id']}'][data-market='{cold['market']}']"
    page.wait_for_selector(cold_button + " .badge.cold", timeout=WAIT_MS)
    page.click(cold_button)
    page.wait_for_selector("#series-cold", timeout=WAIT_MS)
    cold_traces = page.evaluate("""document.getElementById('series-chart').data.map(
        t => [t.meta.kind, t.meta.model || null, t.x.length])""")
    assert [t[:2] for t in cold_traces] == [["forecast", "knn"]] and cold_traces[0][2] == 8
    assert "cannot forecast cold starts" in page.text_content("#series-notes")
    assert problems == []
    page.close()
