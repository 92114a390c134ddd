"""The dashboard's routes against ``create_app``: the key, series search (cold starts flagged),
one series' view (history, forecasts with their band, backtest overlay, photo through the safe
loader), WAPE and bias checked by hand on a small backtest, explanation tables, CSV exports
equal to the JSON, and the 422/404 answers."""

from __future__ import annotations

import base64
import csv
import io
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from salesfusion.datasets.synthetic import synthetic
from salesfusion.encoders.image.loading import read_rgb
from salesfusion.models.registry import create_model
from salesfusion.serving import dashboard_data
from salesfusion.serving.api import create_app
from salesfusion.serving.store import Insights, ModelStore

pytestmark = pytest.mark.xdist_group("dashboard")
KEY = "dashboard-test-key-0123456789"
AUTH = {"X-API-Key": KEY}
DATA_ROUTES = ["/v1/dashboard/meta", "/v1/dashboard/series",
               "/v1/dashboard/view?item_id=S00001&market=UK", "/v1/dashboard/metrics",
               "/v1/dashboard/explain/shares_by_step"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> dict:
    """A synthetic shop cut 4 weeks before its end (items launched since are cold starts),
    a seasonal naive (quantile band) and a kNN analogue (cold starts) fitted on it, a small
    hand-made backtest and explain folder."""
    root = tmp_path_factory.mktemp("dashboard")
    dataset = synthetic(root / "shop", n_items=24, n_weeks=40, image_size=16, seed=0)
    panel = dataset.panel()
    cut = panel.until(panel.periods[-5])
    models = [create_model("seasonal_naive").fit(cut).save(root / "snaive"),
              create_model("knn_analogue").fit(cut).save(root / "knn")]
    last = cut.periods[-4:].to_list()
    backtest = root / "backtest"
    backtest.mkdir()
    pl.DataFrame({
        "item_id": ["S00001"] * 4 + ["S00002"] * 4 + ["S00001"] * 4,
        "market": ["UK"] * 4 + ["DE"] * 4 + ["UK"] * 4,
        "timestamp": last * 3,
        "model": ["seasonal_naive"] * 8 + ["knn_analogue"] * 4,
        "window": [0, 0, 1, 1] * 3,
        "y_true": [10.0, 20, 0, 5, 4, 6, 8, 2, 10, 20, 0, 5],
        "y_pred": [12.0, 15, 1, 5, 4, 9, 6, 2, 10, 10, 0, 5],
    }).write_parquet(backtest / "forecasts.parquet")
    explain = root / "explain"
    explain.mkdir()
    pl.DataFrame({"step": [1, 1, 2, 2], "group": ["history", "text"] * 2,
                  "share": [0.7, 0.3, 0.6, 0.4], "share_lo": [0.6, None, 0.5, 0.3],
                  "share_hi": [0.8, float("nan"), 0.7, 0.5], "n": [40] * 4}).write_parquet(
        explain / "shares_by_step.parquet")
    pl.DataFrame({"model": ["tft"] * 2, "segment": ["mature", "emerging, new"],
                  "wape": [40.5, 61.25], "bias": [-3.0, 12.0]}).write_parquet(
        explain / "errors_by_segment.parquet")
    pl.DataFrame({"x": [1]}).write_parquet(explain / "attributions.parquet")  # not shown
    store = ModelStore.load(models, insights=Insights(backtest, explain, root / "shop"))
    return {"root": root, "panel": panel, "cut": cut, "store": store, "last": last}


def client_for(shop: dict, **insights: Path | None) -> TestClient:
    """A client of the app over the shop's models with other insights (default: all)."""
    base = shop["store"].insights
    chosen = {"backtest": base.backtest, "explain": base.explain, "image_root": base.image_root,
              **insights}
    store = ModelStore(shop["store"].models, Insights(**chosen))
    return TestClient(create_app(store, [KEY.encode()]))


@pytest.fixture(scope="module")
def client(shop):
    return client_for(shop)


def _get(client: TestClient, path: str, **params: object) -> dict:
    response = client.get(path, params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def _error(client: TestClient, path: str, status: int, **params: object) -> dict:
    response = client.get(path, params=params, headers=AUTH)
    assert response.status_code == status, response.text
    return response.json()["error"]


def test_page_loads_without_a_key_and_data_routes_need_one(client):
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'src="/dashboard/static/plotly.min.js"' in page.text and "http" not in page.text
    plotly = client.get("/dashboard/static/plotly.min.js")
    assert plotly.status_code == 200 and len(plotly.content) > 1_000_000
    assert client.get("/dashboard/static/dashboard.js").status_code == 200
    assert client.get("/dashboard/static/..%2Fapi.py").status_code == 404
    for path in DATA_ROUTES:
        for headers in ({}, {"X-API-Key": KEY + "x"}):
            refused = client.get(path, headers=headers)
            assert refused.status_code == 401, path
            assert refused.json()["error"]["code"] == "unauthorized"
        assert client.get(path, headers=AUTH).status_code == 200, path
        assert client.get(path, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_meta_lists_models_markets_backtest_and_explanations(client):
    meta = _get(client, "/v1/dashboard/meta")
    assert [m["name"] for m in meta["models"]] == ["knn", "snaive"]
    assert {m["name"]: m["supports_cold_start"] for m in meta["models"]} == {
        "knn": True, "snaive": False}
    assert meta["markets"] == ["BR", "DE", "TH", "UK"]
    assert meta["backtest"] == {"models": ["knn_analogue", "seasonal_naive"], "error": None}
    assert [t["name"] for t in meta["explain"]] == ["shares_by_step", "errors_by_segment"]


def test_search_by_id_and_by_title(shop, client):
    items = shop["panel"].items
    found = _get(client, "/v1/dashboard/series", q="s00003")
    assert found["total"] == 4 and {s["market"] for s in found["series"]} == {
        "BR", "DE", "TH", "UK"}
    assert {s["item_id"] for s in found["series"]} == {"S00003"}
    title = items.filter(pl.col("item_id") == "S00005")["title"][0]
    word = title.split()[1].upper()  # the material, in another case than the title's
    by_title = _get(client, "/v1/dashboard/series", q=word, market="DE", limit=500)
    expected = items.filter(pl.col("title").str.to_lowercase().str.contains(word.lower()))
    assert {s["item_id"] for s in by_title["series"]} == set(expected["item_id"])
    assert {s["market"] for s in by_title["series"]} == {"DE"}
    assert all(word.lower() in s["title"].lower() for s in by_title["series"])
    limited = _get(client, "/v1/dashboard/series", limit=3)
    assert len(limited["series"]) == 3 and limited["total"] == 24 * 4
    assert all(s["has_image"] for s in limited["series"])
    assert _get(client, "/v1/dashboard/series", q="no such thing") == {"total": 0, "series": []}


def test_cold_start_items_are_listed_and_flagged(shop, client):
    warm = set(shop["cut"].data.select("item_id", "market").unique().iter_rows())
    every = _get(client, "/v1/dashboard/series", limit=500)["series"]
    cold = {(s["item_id"], s["market"]) for s in every if s["cold_start"]}
    assert cold and not cold & warm
    assert {(s["item_id"], s["market"]) for s in every} == warm | cold
    # Without a cold-start model, there are none to list.
    only_naive = ModelStore({"snaive": shop["store"].models["snaive"]})
    naive_client = TestClient(create_app(only_naive, [KEY.encode()]))
    listed = _get(naive_client, "/v1/dashboard/series", limit=500)["series"]
    assert not any(s["cold_start"] for s in listed) and len(listed) == len(warm)
    item_id, market = sorted(cold)[0]
    view = _get(client, "/v1/dashboard/view", item_id=item_id, market=market)
    assert view["cold_start"] and view["history"]["timestamps"] == []
    assert [f["model"] for f in view["forecasts"]] == ["knn"] and view["forecasts"][0]["cold_start"]
    assert view["notes"] == [f"snaive: item {item_id!r} has no history in {market!r} and model "
                             f"'seasonal_naive' cannot forecast cold starts"]


def test_series_view_history_forecasts_band_overlay_and_photo(shop, client):
    view = _get(client, "/v1/dashboard/view", item_id="S00001", market="UK", horizon=6)
    history = shop["cut"].data.filter((pl.col("item_id") == "S00001")
                                      & (pl.col("market") == "UK")).sort("timestamp")
    assert view["history"]["y"] == history["y"].to_list()
    assert view["title"] == shop["panel"].items.filter(pl.col("item_id") == "S00001")["title"][0]
    keys = pl.DataFrame({"item_id": ["S00001"], "market": ["UK"]})
    forecasts = {f["model"]: f for f in view["forecasts"]}
    assert set(forecasts) == {"knn", "snaive"}
    expected = shop["store"].models["snaive"].forecast(6, keys).sort("timestamp")
    naive = forecasts["snaive"]
    assert naive["band"] == "q0.1-q0.9" and len(naive["timestamps"]) == 6
    assert naive["y_pred"] == pytest.approx(expected["y_pred"].to_list())
    assert naive["lower"] == pytest.approx(expected["q0.1"].to_list())
    assert naive["upper"] == pytest.approx(expected["q0.9"].to_list())
    assert forecasts["knn"]["band"] is None and not forecasts["knn"]["cold_start"]
    # The overlay: each model's backtest rows, matched by the model's kind, one per window.
    overlay = {(o["model"], o["window"]): o for o in view["backtest"]}
    assert set(overlay) == {("snaive", 0), ("snaive", 1), ("knn", 0), ("knn", 1)}
    assert overlay[("snaive", 0)]["y_pred"] == [12.0, 15.0]
    assert overlay[("knn", 1)]["y_pred"] == [0.0, 5.0]
    assert overlay[("snaive", 1)]["source"] == "seasonal_naive"
    # The photo: the item's image decoded by the safe loader, as a PNG data URI.
    assert view["photo"].startswith("data:image/png;base64,")
    photo = Image.open(io.BytesIO(base64.b64decode(view["photo"].split(",", 1)[1])))
    original = read_rgb(shop["root"] / "shop" / "images" / "S00001.png")
    assert np.array_equal(np.asarray(photo.convert("RGB")), np.asarray(original))
    one = _get(client, "/v1/dashboard/view", item_id="S00001", market="UK", models="snaive")
    assert [f["model"] for f in one["forecasts"]] == ["snaive"]
    assert {o["model"] for o in one["backtest"]} == {"snaive"}


def test_missing_or_unreadable_photo_is_no_photo(shop, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(shop["root"] / "shop" / "images", images)
    (images / "S00001.png").write_bytes(b"not a png at all")
    (images / "S00002.png").unlink()
    other = client_for(shop, image_root=tmp_path)
    broken = _get(other, "/v1/dashboard/view", item_id="S00001", market="UK")
    assert broken["photo"] is None and broken["forecasts"]
    assert _get(other, "/v1/dashboard/view", item_id="S00002", market="DE")["photo"] is None
    listed = {s["item_id"]: s["has_image"] for s in
              _get(other, "/v1/dashboard/series", market="UK", limit=500)["series"]}
    assert listed["S00001"] and not listed["S00002"] and listed["S00003"]
    assert dashboard_data.resolve_image(images, "../images/S00003.png") is not None
    assert dashboard_data.resolve_image(images, "../../etc/passwd") is None
    no_root = client_for(shop, image_root=None)
    assert _get(no_root, "/v1/dashboard/view", item_id="S00003", market="UK")["photo"] is None


def _rows(table: dict) -> dict[tuple, dict]:
    named = [dict(zip(table["columns"], row, strict=True)) for row in table["rows"]]
    return {(r["model"], r[table["columns"][1]]): r for r in named}


def test_wape_and_bias_match_a_hand_computation(client):
    by_step = _get(client, "/v1/dashboard/metrics", by="step")
    assert by_step["columns"][:4] == ["model", "step", "wape", "bias"]
    rows = _rows(by_step)
    # seasonal_naive, step 1: (y, yhat) = (10, 12), (0, 1), (4, 4), (8, 6).
    assert rows[("seasonal_naive", 1)]["wape"] == pytest.approx(100 * 5 / 22)
    assert rows[("seasonal_naive", 1)]["bias"] == pytest.approx(100 * 1 / 22)
    # step 2: (20, 15), (5, 5), (6, 9), (2, 2).
    assert rows[("seasonal_naive", 2)]["wape"] == pytest.approx(100 * 8 / 33)
    assert rows[("seasonal_naive", 2)]["bias"] == pytest.approx(100 * -2 / 33)
    assert rows[("knn_analogue", 2)]["wape"] == pytest.approx(100 * 10 / 25)
    assert rows[("knn_analogue", 2)]["bias"] == pytest.approx(-100 * 10 / 25)
    by_market = _rows(_get(client, "/v1/dashboard/metrics", by="market"))
    assert set(by_market) == {("seasonal_naive", "UK"), ("seasonal_naive", "DE"),
                              ("knn_analogue", "UK")}
    assert by_market[("seasonal_naive", "UK")]["wape"] == pytest.approx(100 * 8 / 35)
    assert by_market[("seasonal_naive", "UK")]["bias"] == pytest.approx(100 * -2 / 35)
    assert by_market[("seasonal_naive", "DE")]["wape"] == pytest.approx(100 * 5 / 20)
    assert by_market[("seasonal_naive", "DE")]["bias"] == pytest.approx(100 * 1 / 20)
    # Restricted to one market and one model.
    uk = _rows(_get(client, "/v1/dashboard/metrics", by="step", market="DE",
                    models="seasonal_naive"))
    assert set(uk) == {("seasonal_naive", 1), ("seasonal_naive", 2)}
    assert uk[("seasonal_naive", 2)]["wape"] == pytest.approx(100 * 3 / 8)
    nowhere = _get(client, "/v1/dashboard/metrics", market="FR")
    assert nowhere["rows"] == [] and nowhere["columns"][:2] == ["model", "step"]


def _same(table: dict, text: str) -> None:
    """The CSV holds the table's header and every cell (None as empty, numbers equal)."""
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == table["columns"] and len(parsed) == len(table["rows"]) + 1
    for row, line in zip(table["rows"], parsed[1:], strict=True):
        for value, cell in zip(row, line, strict=True):
            if value is None:
                assert cell == ""
            elif isinstance(value, (bool, str)):
                assert cell == str(value)
            else:
                assert float(cell) == value


def test_csv_export_equals_the_json(client):
    for path, params in (("/v1/dashboard/metrics", {"by": "step"}),
                         ("/v1/dashboard/metrics", {"by": "market"}),
                         ("/v1/dashboard/view", {"item_id": "S00001", "market": "UK"}),
                         ("/v1/dashboard/explain/shares_by_step", {}),
                         ("/v1/dashboard/explain/errors_by_segment", {})):
        shown = _get(client, path, **params)
        table = shown.get("table", shown)
        exported = client.get(path, params={**params, "format": "csv"}, headers=AUTH)
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        assert "attachment" in exported.headers["content-disposition"]
        _same(table, exported.text)
    view = _get(client, "/v1/dashboard/view", item_id="S00001", market="UK")
    kinds = {row[0] for row in view["table"]["rows"]}
    assert kinds == {"history", "forecast", "backtest"}


def test_explanation_tables(client):
    shares = _get(client, "/v1/dashboard/explain/shares_by_step")
    assert shares["columns"] == ["step", "group", "share", "share_lo", "share_hi", "n"]
    assert shares["rows"][1] == [1, "text", 0.3, None, None, 40]  # NaN and null: no value
    segments = _get(client, "/v1/dashboard/explain/errors_by_segment")
    assert [r[1] for r in segments["rows"]] == ["mature", "emerging, new"]
    error = _error(client, "/v1/dashboard/explain/attributions", 404)
    assert error["param"] == "table" and "shares_by_step, errors_by_segment" in error["message"]


def test_bad_parameters_are_422_and_unknown_things_404(shop, client):
    for path, params, param in (
            ("series", {"limit": 0}, "limit"), ("series", {"limit": 501}, "limit"),
            ("series", {"q": "x" * 201}, "q"), ("series", {"market": ""}, "market"),
            ("metrics", {"by": "week"}, "by"), ("metrics", {"format": "xml"}, "format"),
            ("view", {"market": "UK"}, "item_id"),
            ("view", {"item_id": "S00001", "market": "UK", "horizon": 0}, "horizon"),
            ("view", {"item_id": "S00001", "market": "UK", "horizon": "soon"}, "horizon"),
            ("view", {"item_id": "S00001", "market": "UK", "horizon": 500}, "horizon"),
            ("view", {"item_id": "S00001", "market": "UK", "models": ["knn"] * 21}, "models")):
        error = _error(client, f"/v1/dashboard/{path}", 422, **params)
        assert error["param"] == param, (path, params, error)
        assert error["message"].startswith(f"{param}:")
    unknown = _error(client, "/v1/dashboard/view", 404, item_id="S00001", market="UK",
                     models=["snaive", "nope"])
    assert unknown["code"] == "model_not_found" and "'nope'" in unknown["message"]
    assert _error(client, "/v1/dashboard/metrics", 404, models="nope")["param"] == "models"
    series = _error(client, "/v1/dashboard/view", 404, item_id="S99999", market="UK")
    assert series["code"] == "unknown_series" and "'S99999'" in series["message"]
    bare = client_for(shop, backtest=None, explain=None)
    assert _error(bare, "/v1/dashboard/metrics", 404)["code"] == "no_backtest"
    assert _error(bare, "/v1/dashboard/explain/shares_by_step", 404)["code"] == "no_explanation"
    meta = _get(bare, "/v1/dashboard/meta")
    assert meta["backtest"] is None and meta["explain"] == []
    assert _get(bare, "/v1/dashboard/view", item_id="S00001", market="UK")["backtest"] == []
    not_backtest = client_for(shop, backtest=shop["root"] / "explain")
    assert "no forecasts.parquet" in _get(not_backtest, "/v1/dashboard/meta")["backtest"]["error"]
    assert _error(not_backtest, "/v1/dashboard/metrics", 404)["code"] == "no_backtest"


def test_unreadable_backtest_and_explain_files_are_404_not_500(shop, tmp_path):
    (tmp_path / "forecasts.parquet").write_bytes(b"PAR1 but not really parquet")
    (tmp_path / "shares_by_step.parquet").write_bytes(b"garbage")
    broken = client_for(shop, backtest=tmp_path, explain=tmp_path)
    meta = _get(broken, "/v1/dashboard/meta")
    assert "cannot read it" in meta["backtest"]["error"] and meta["backtest"]["models"] == []
    assert _error(broken, "/v1/dashboard/metrics", 404)["code"] == "no_backtest"
    error = _error(broken, "/v1/dashboard/explain/shares_by_step", 404)
    assert error["code"] == "no_explanation" and "cannot read it" in error["message"]
    # The series view still answers, without the overlay.
    view = _get(broken, "/v1/dashboard/view", item_id="S00001", market="UK")
    assert view["forecasts"] and view["backtest"] == []
    note = view["notes"][0]
    assert note.startswith("backtest overlay: ") and "cannot read it" in note
