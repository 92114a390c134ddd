"""The dashboard shows an item's content by registered modality: a ``swatch`` modality that only
this file registers (an items column of hex colours, with its encoder) appears in the series
search and the series view, through the routes and in Chromium, for a multimodal model trained
on it, with no edit to the dashboard."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

from salesfusion.components import ENCODERS, MODALITIES
from salesfusion.encoders.base import Encoder
from salesfusion.encoders.inputs import Catalogue
from salesfusion.encoders.modalities import ContentModality
from salesfusion.models.registry import create_model
from salesfusion.serving.api import create_app
from salesfusion.serving.store import ModelStore
from tests.services import chromium_path

pytestmark = pytest.mark.xdist_group("browser")
KEY = "content-test-key-0123456789"
AUTH = {"X-API-Key": KEY}
SWATCHES = ["#ff0000", "#00ff00", None]  # by item, in turn: every third item has none
WAIT_MS = 20_000


class SwatchEncoder(Encoder):
    """A swatch '#rrggbb' as its red, green and blue shares."""

    name = "toy_swatch_rgb"
    modality: ClassVar[str] = "swatch"

    @property
    def dim(self) -> int:
        return 3

    def encode_batch(self, inputs: list[Any]) -> np.ndarray:
        return np.array([[int(text[i:i + 2], 16) / 255 for i in (1, 3, 5)] for text in inputs],
                        dtype=np.float32)


class SwatchModality(ContentModality):
    """The colour swatch of the item's fabric."""

    name = "swatch"
    columns = ("swatch",)
    needs = "a 'swatch' column"
    default_encoder = "toy_swatch_rgb"

    @classmethod
    def inputs(cls, catalogue: Catalogue) -> tuple[list[Any], dict[str, Any]]:
        return catalogue.items["swatch"].to_list(), {}


@pytest.fixture(scope="module")
def served(tmp_path_factory, module_shop_panel) -> dict[str, Any]:
    """A multimodal model that reads the swatch, fitted on a shop whose items have one (but
    every third), saved and served; the swatch modality is registered meanwhile."""
    root = tmp_path_factory.mktemp("swatch")
    ENCODERS.register(SwatchEncoder)
    MODALITIES.register(SwatchModality)
    try:
        panel = module_shop_panel
        swatch = [SWATCHES[i % len(SWATCHES)] for i in range(panel.items.height)]
        panel = replace(panel, items=panel.items.with_columns(
            pl.Series("swatch", swatch, dtype=pl.String)))
        folder = create_model("multimodal", modalities=["swatch", "static"], epochs=1,
                              lookback=8, hidden=8, fusion_dim=8, horizon=3, accelerator="cpu",
                              cache_dir=str(root / "cache")).fit(panel).save(root / "swatched")
        store = ModelStore.load([folder], warm=False)
        expected = dict(zip(panel.items["item_id"], swatch, strict=True))
        titles = dict(panel.items.select("item_id", "title").iter_rows())
        yield {"store": store, "swatch": expected, "title": titles,
               "market": panel.data["market"][0]}
    finally:
        MODALITIES.unregister(SwatchModality.name)
        ENCODERS.unregister(SwatchEncoder.name)


def _get(client: TestClient, path: str, **params: object) -> dict:
    response = client.get(path, params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_series_view_and_search_show_a_plugin_modality(served):
    client = TestClient(create_app(served["store"], [KEY.encode()]))
    listed = _get(client, "/v1/dashboard/series", market=served["market"], limit=500)["series"]
    assert {s["item_id"] for s in listed} == set(served["swatch"])
    for series in listed:
        has_swatch = served["swatch"][series["item_id"]] is not None
        assert series["content"] == ["text", "swatch"] if has_swatch else ["text"]
        assert not series["has_image"]
    for item_id, swatch in served["swatch"].items():
        view = _get(client, "/v1/dashboard/view", item_id=item_id, market=served["market"])
        expected = [{"modality": "text", "about": "Titles and descriptions, joined per item.",
                     "value": served["title"][item_id], "photo": None}]
        if swatch is not None:
            expected.append({"modality": "swatch", "value": swatch, "photo": None,
                             "about": "The colour swatch of the item's fabric."})
        assert view["content"] == expected
        assert view["photo"] is None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_page_lists_a_plugin_modality_among_the_item_content(served):
    chromium = chromium_path()
    import uvicorn
    from playwright.sync_api import sync_playwright

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(served["store"], [KEY.encode()]),
                                           host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    item_id = next(i for i, s in served["swatch"].items() if s is not None)
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium,
                                                 args=["--headless", "--no-sandbox",
                                                       "--disable-gpu"])
            try:
                page = browser.new_page()
                problems: list[str] = []
                page.on("pageerror", lambda error: problems.append(str(error)))
                page.goto(f"http://127.0.0.1:{port}/dashboard")
                page.fill("#api-key", KEY)
                page.click("#key-form button")
                page.fill("#search", item_id)
                page.press("#search", "Enter")
                button = (f"#results button[data-item='{item_id}']"
                          f"[data-market='{served['market']}']")
                page.wait_for_selector(button + " .badge.content >> text=swatch",
                                       timeout=WAIT_MS)
                page.click(button)
                page.wait_for_selector("#series-content dt >> text=swatch", timeout=WAIT_MS)
                rows = page.evaluate("""[...document.querySelectorAll('#series-content dt')]
                    .map(term => [term.textContent, term.nextElementSibling.textContent])""")
                assert rows == [["text", served["title"][item_id]],
                                ["swatch", served["swatch"][item_id]]]
                assert page.is_hidden("#photos") and problems == []
            finally:
                browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=15)
