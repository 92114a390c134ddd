"""The forecast API: keys, the KServe-shaped forecast route against ``predict``, limits and
422s naming the field, new items from content (photo through the safe loader), explanations,
a tampered model refused at startup, and the OpenAPI schema fuzzed by schemathesis."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import numpy as np
import polars as pl
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from PIL import Image
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from salesfusion.errors import InputError
from salesfusion.models.base import Forecaster
from salesfusion.models.multimodal.new_items import new_item_content
from salesfusion.serving.api import create_app
from salesfusion.serving.responses import quantile_column
from salesfusion.serving.security import Limits
from salesfusion.serving.store import ModelStore
from tests.serving_fixtures import API_KEY, train_shop

pytestmark = pytest.mark.xdist_group("serving")
AUTH = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    return train_shop(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def client(served):
    store = ModelStore.load(list(served.folders.values()))
    app = create_app(store, [API_KEY.encode()], Limits(max_batch=50, max_body_bytes=64 * 1024,
                                                        max_image_bytes=32 * 1024))
    with TestClient(app) as test_client:
        yield test_client


def _keys(served, count):
    return served.panel.data.select("item_id", "market").unique(maintain_order=True).head(count)


def test_keys_are_required_except_for_health(client):
    assert client.get("/v1/health").json() == {"status": "ok", "models": 2}
    refused = client.get("/v1/models")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["error"]["code"] == "unauthorized"
    assert client.get("/v1/models", headers={"X-API-Key": API_KEY + "x"}).status_code == 401
    assert client.get("/v1/models", headers={"Authorization": "Bearer " + API_KEY}
                      ).status_code == 200
    assert client.get("/v1/models", headers=AUTH).status_code == 200


def test_models_describe_what_they_forecast(client, served):
    models = {m["name"]: m for m in client.get("/v1/models", headers=AUTH).json()}
    assert set(models) == {"mm", "gbm"}
    assert models["mm"]["quantiles"] == [0.1, 0.5, 0.9] and models["mm"]["horizon"] == 4
    assert models["mm"]["explains"] and not models["gbm"]["explains"]
    assert models["gbm"]["n_series"] == served.panel.n_series
    assert models["mm"]["history_end"].startswith(f"{served.panel.periods[-1]:%Y-%m-%d}")
    assert client.get("/v1/models/nope", headers=AUTH).status_code == 404
    page = client.get("/v1/models/gbm/series", params={"offset": 2, "limit": 3},
                      headers=AUTH).json()
    assert page["total"] == served.panel.n_series and len(page["series"]) == 3
    assert [(s["item_id"], s["market"]) for s in page["series"]] == _keys(served, 5).rows()[2:]


@pytest.mark.parametrize("name", ["mm", "gbm"])
def test_batch_forecast_is_what_predict_gives(client, served, name):
    keys = _keys(served, 5)
    body = {"model": name, "options": {"horizon": 3},
            "inputs": [{"item_id": i, "market": m, "frequency": "W"} for i, m in keys.rows()]}
    response = client.post("/v1/timeseries/forecast", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "completed" and answer["model"] == name
    expected = Forecaster.load(served.folders[name]).predict(3)
    first = served.panel.periods[-1] + timedelta(weeks=1)
    for output, (item, market) in zip(answer["outputs"], keys.rows(), strict=True):
        content = output["content"][0]
        rows = expected.filter((pl.col("item_id") == item) & (pl.col("market") == market))
        assert content["name"] == f"{item}@{market}"
        np.testing.assert_allclose(content["mean_forecast"], rows["y_pred"].to_list(), rtol=1e-6)
        assert content["start_timestamp"] == f"{first:%Y-%m-%dT%H:%M:%S}"
        if name == "mm":
            np.testing.assert_allclose(content["quantiles"]["0.9"], rows["q0.9"].to_list(),
                                       rtol=1e-6)
            # The model's point forecast is the mean; its 0.5 quantile is the median, not it.
            np.testing.assert_allclose(content["quantiles"]["0.5"], rows["q0.5"].to_list(),
                                       rtol=1e-6)
            assert content["quantiles"]["0.5"] != content["mean_forecast"]


def test_requested_quantiles_and_unknown_series(client, served):
    item, market = _keys(served, 1).row(0)
    body = {"model": "mm", "options": {"horizon": 2, "quantiles": [0.1]},
            "inputs": [{"item_id": item, "market": market},
                       {"item_id": "no-such-item", "market": market}]}
    answer = client.post("/v1/timeseries/forecast", json=body, headers=AUTH).json()
    assert answer["status"] == "partial"
    assert list(answer["outputs"][0]["content"][0]["quantiles"]) == ["0.1"]
    assert answer["outputs"][1]["status"] == "error"
    assert "no-such-item" in answer["outputs"][1]["error"]["message"]


@pytest.mark.parametrize(("change", "param"), [
    ({"options": {"horizon": 5}}, "options.horizon"),           # past the model's horizon
    ({"options": {"horizon": 0}}, "options.horizon"),
    ({"options": {"horizon": 2, "quantiles": [0.3]}}, "options.quantiles"),
    ({"inputs": []}, "inputs"),
    ({"colour": "red"}, "colour"),
    ({"inputs": [{"item_id": "a", "market": "UK", "frequency": "D"}]}, "inputs.0.frequency"),
    ({"inputs": [{"item_id": "a", "market": "UK"}] * 2}, "inputs.1.name"),
    ({"inputs": [{"item_id": str(i), "market": "UK"} for i in range(51)]}, "inputs"),
])
def test_bad_requests_are_422_naming_the_field(client, change, param):
    body = {"model": "mm", "options": {"horizon": 2},
            "inputs": [{"item_id": "a", "market": "UK"}], **change}
    response = client.post("/v1/timeseries/forecast", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == param


def test_unknown_model_and_oversized_body(client):
    body = {"model": "nope", "options": {"horizon": 1}, "inputs": [{"item_id": "a",
                                                                     "market": "UK"}]}
    response = client.post("/v1/timeseries/forecast", json=body, headers=AUTH)
    assert response.status_code == 404 and response.json()["error"]["param"] == "model"
    huge = client.post("/v1/timeseries/forecast", content=b"x" * (65 * 1024),
                       headers={**AUTH, "content-type": "application/json"})
    assert huge.status_code == 413


def _photo(colour, size=16, kind="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, kind)
    return buffer.getvalue()


def _new_item(client, photo=None, **fields):
    data = {"horizon": "3", "title": "linen summer dress", "description": "light and airy",
            **fields}
    files = {"image": ("dress.png", photo, "image/png")} if photo is not None else None
    return client.post("/v1/models/mm/new-items", data=data, files=files, headers=AUTH)


def test_new_item_is_forecast_from_its_content(client, served):
    markets = sorted(served.panel.data["market"].unique().to_list())
    red = _new_item(client, _photo((220, 20, 20)))
    assert red.status_code == 200, red.text
    answer = red.json()
    assert sorted(o["content"][0]["market"] for o in answer["outputs"]) == markets
    assert "image" in answer["metadata"]["notes"][0] and "text" in answer["metadata"]["notes"][0]
    again = _new_item(client, _photo((220, 20, 20))).json()
    blue = _new_item(client, _photo((20, 20, 220))).json()
    forecast = {o["content"][0]["market"]: o["content"][0]["mean_forecast"]
                for o in answer["outputs"]}
    assert forecast == {o["content"][0]["market"]: o["content"][0]["mean_forecast"]
                        for o in again["outputs"]}
    assert forecast != {o["content"][0]["market"]: o["content"][0]["mean_forecast"]
                        for o in blue["outputs"]}, "the photo is not read"
    first = served.panel.periods[-1] + timedelta(weeks=1)
    assert answer["outputs"][0]["content"][0]["start_timestamp"].startswith(f"{first:%Y-%m-%d}")


def test_new_item_content_matches_the_fitted_encoding(served):
    """An item described exactly as a fitted one gets the same content rows the model holds."""
    model = Forecaster.load(served.folders["mm"])
    items = served.panel.items
    fitted = items.row(0, named=True)
    clone = items.head(1).with_columns(pl.lit("clone").alias("item_id"))
    blocks, used = new_item_content(model.network, model.inputs, model.history, clone,
                                    served.panel.image_root)
    row = model.inputs.item_rows[fitted["item_id"]]
    assert set(used) == {"text", "image", "static"}
    for name, block in blocks.items():
        stored = getattr(model.network, name)[row]
        np.testing.assert_allclose(block[0].numpy().astype(float), stored.numpy().astype(float),
                                   atol=1e-5, err_msg=name)


@pytest.mark.parametrize(("photo", "status"), [
    (b"not an image at all", 422),
    (_photo((1, 2, 3), size=120, kind="BMP"), 413),  # 43 KB: over max_image_bytes
])
def test_bad_uploads_are_refused(client, photo, status):
    response = _new_item(client, photo)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == "image"


def test_decompression_bomb_is_refused(client, monkeypatch):
    from salesfusion.encoders.image import loading

    monkeypatch.setattr(loading, "MAX_IMAGE_PIXELS", 100)
    response = _new_item(client, _photo((5, 5, 5), size=16))
    assert response.status_code == 422 and "pixels" in response.json()["error"]["message"]


@pytest.mark.parametrize(("fields", "param"), [
    ({"attributes": json.dumps({"no_such_attribute": "x"})}, "attributes.no_such_attribute"),
    ({"attributes": "{not json"}, "attributes"),
    ({"markets": "Atlantis"}, "markets"),
    ({"launch_date": "2020-13-40"}, "launch_date"),
    ({"horizon": "9"}, "horizon"),
])
def test_bad_new_item_fields(client, fields, param):
    response = _new_item(client, **fields)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == param


def test_explanations_by_group(client, served):
    keys = _keys(served, 2)
    body = {"inputs": [{"item_id": i, "market": m} for i, m in keys.rows()]}
    answer = client.post("/v1/models/mm/explain", json=body, headers=AUTH).json()
    assert len(answer["outputs"]) == 2
    for output in answer["outputs"]:
        assert sum(g["share"] for g in output["groups"]) == pytest.approx(1.0)
        assert {"history", "text", "image"} <= {g["group"] for g in output["groups"]}
    refused = client.post("/v1/models/gbm/explain", json=body, headers=AUTH)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "not_explainable"


def test_a_tampered_model_is_refused_at_startup(served, tmp_path):
    import shutil

    copy = shutil.copytree(served.folders["gbm"], tmp_path / "gbm")
    history = copy / "history.parquet"
    history.write_bytes(history.read_bytes()[:-8] + b"tampered")
    with pytest.raises(InputError, match=r"cannot serve .*gbm.*history.parquet"):
        ModelStore.load([copy])


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_fuzzed_requests_never_fail_the_server(client, mode):
    """Schemathesis requests built from the OpenAPI schema (valid bodies, and bodies that break
    it), with the key, to every operation: none gets a 5xx."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6
    seen = []
    for operation in operations:

        @given(case=operation.as_strategy(GenerationMode(mode), headers=dict(AUTH)))
        @settings(max_examples=15, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call()
            seen.append(response.status_code)
            case.validate_response(response, checks=[not_a_server_error])

        try:
            check()
        except Unsatisfiable:
            # An operation with nothing to break (no parameters, or only free text) has no
            # negative case.
            assert mode == "negative"
    assert seen and max(seen) < 500
    if mode == "negative":
        assert 422 in seen


def test_the_median_is_the_point_forecast_only_of_a_median_model():
    # A median model writes no q0.5 (its y_pred is the median); a mean model writes q0.5.
    assert quantile_column(0.5, ["y_pred", "q0.1", "q0.9"]) == "y_pred"
    assert quantile_column(0.5, ["y_pred", "q0.1", "q0.5", "q0.9"]) == "q0.5"
    assert quantile_column(0.9, ["y_pred", "q0.9"]) == "q0.9"
