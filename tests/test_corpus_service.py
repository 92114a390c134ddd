"""Corpus of hostile and malformed client input to the forecast service (issue 26, section 3,
and the serving items of sections 4 and 5): every case is a 4xx whose ``error.param`` names the
field, never a 500; ``salesfusion serve`` refuses a model it cannot serve with exit 2 and one
``error:`` line."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import zlib

import polars as pl
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from salesfusion.errors import InputError
from salesfusion.models.registry import create_model
from salesfusion.serving.api import create_app
from salesfusion.serving.guard import MAX_JSON_DEPTH, KeyCheck
from salesfusion.serving.security import Limits, key_matches
from salesfusion.serving.store import ModelStore
from tests.serving_fixtures import API_KEY, train_shop

pytestmark = pytest.mark.xdist_group("serving")
AUTH = {"X-API-Key": API_KEY}
FORECAST = "/v1/timeseries/forecast"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    return train_shop(tmp_path_factory.mktemp("corpus_served"))


@pytest.fixture(scope="module")
def store(served):
    return ModelStore.load(list(served.folders.values()))


def _client(store, **limits) -> TestClient:
    # A 500 is answered, not raised, so that a test sees the status a client would.
    return TestClient(create_app(store, [API_KEY.encode()], Limits(**limits)),
                      raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(store):
    with _client(store) as test_client:  # the default limits: 10 MiB bodies, 8 MiB images
        yield test_client


def _refused(response, status: int, param: str | None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param, error
    return error


def _forecast_body(**change) -> dict:
    return {"model": "mm", "options": {"horizon": 2},
            "inputs": [{"item_id": "S00000", "market": "BR"}], **change}


def _png(size: int = 64) -> bytes:
    """A photo of noise (which PNG cannot compress much, so that half of it is a real cut)."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (size, size), random.Random(3).randbytes(size * size * 3)).save(
        buffer, "PNG")
    return buffer.getvalue()


def _bomb_png(side: int = 20_000) -> bytes:
    """The audit's decompression bomb: a valid 20000x20000 grey PNG of zeros, ~389 KB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    packer, row = zlib.compressobj(9), bytes(side + 1)  # filter byte + one row of pixels
    pixels = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0,
                                                               0, 0))
            + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


def _new_item(client, photo: bytes | None = None, **fields):
    data = {"horizon": "3", "title": "linen summer dress", **fields}
    files = {"image": ("dress.png", photo, "image/png")} if photo is not None else None
    return client.post("/v1/models/mm/new-items", data=data, files=files, headers=AUTH)


def _nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


# --- section 3: 4xx naming the field, never a 500 ---------------------------------------------

@pytest.mark.parametrize("photo", [
    pytest.param(_bomb_png(), id="decompression-bomb-20000x20000"),
    pytest.param(_png()[:len(_png()) // 2], id="truncated-png"),
])
def test_undecodable_upload_is_422_on_image(client, photo):
    error = _refused(_new_item(client, photo), 422, "image")
    assert error["code"] == "invalid_image"


@pytest.mark.parametrize("attributes", [
    pytest.param('{"price": "heavy"}', id="text-for-numeric"),
    pytest.param('{"price": NaN}', id="nan-for-numeric"),
    pytest.param('{"price": ' + "9" * 400 + "}", id="int-past-float-range"),
    pytest.param('{"category": 5}', id="number-for-text"),
])
def test_attribute_of_the_wrong_type_is_422_naming_it(client, attributes):
    key = next(iter(json.loads(attributes.replace("NaN", "0"))))
    _refused(_new_item(client, attributes=attributes), 422, f"attributes.{key}")


@pytest.mark.parametrize("launch_date", ["9999-12-31", "0001-01-01"])
def test_launch_date_out_of_range_is_422(client, launch_date):
    error = _refused(_new_item(client, launch_date=launch_date), 422, "launch_date")
    assert launch_date in error["message"]


def test_metadata_nested_900_deep_is_422_on_metadata(client):
    response = client.post(FORECAST, json=_forecast_body(metadata=_nested(900)), headers=AUTH)
    error = _refused(response, 422, "metadata")
    assert str(MAX_JSON_DEPTH) in error["message"]


def test_body_past_the_recursion_limit_is_422_on_body(client):
    deep = b"[" * 5000 + b"]" * 5000
    response = client.post(FORECAST, content=deep, headers={**AUTH,
                                                            "content-type": "application/json"})
    _refused(response, 422, "body")


def test_attributes_past_the_recursion_limit_are_422(client):
    _refused(_new_item(client, attributes="[" * 19_000), 422, "attributes")


def test_series_offset_past_any_integer_type_is_422(client):
    response = client.get("/v1/models/gbm/series", params={"offset": "1" + "0" * 20},
                          headers=AUTH)
    _refused(response, 422, "offset")


def test_key_is_checked_before_the_body_is_parsed(client):
    response = client.post(FORECAST, content=b"{not json",
                           headers={"content-type": "application/json"})
    error = _refused(response, 401, None)
    assert error["code"] == "unauthorized"


def test_oversized_chunked_body_is_413(store):
    def chunks():  # no Content-Length: the limit is found while the body streams in
        for _ in range(4):
            yield b"x" * 32 * 1024

    with _client(store, max_body_bytes=64 * 1024) as small:
        response = small.post(FORECAST, content=chunks(),
                              headers={**AUTH, "content-type": "application/json"})
    assert "content-length" not in response.request.headers
    _refused(response, 413, "body")


@pytest.mark.parametrize("options", [
    pytest.param({"horizon": True}, id="bool-horizon"),
    pytest.param({"horizon": "2"}, id="text-horizon"),
    pytest.param({"horizon": 2, "quantiles": ["0.1"]}, id="text-quantile"),
])
def test_request_types_are_strict(client, options):
    response = client.post(FORECAST, json=_forecast_body(options=options), headers=AUTH)
    assert response.json()["error"]["param"].startswith("options.")
    assert response.status_code == 422


def test_keys_are_compared_as_fixed_length_digests():
    check = KeyCheck([API_KEY.encode(), b"another-key-0123456789"])
    assert all(len(digest) == 32 for digest in check.digests)
    assert API_KEY.encode() not in check.digests
    assert key_matches(API_KEY.encode(), check.digests)
    assert not key_matches(API_KEY.encode()[:-1], check.digests)
    assert not key_matches(API_KEY.encode() * 1000, check.digests)


@pytest.mark.parametrize("path", ["/v1/nothing-here", "/v1/models/mm/forecast"])
def test_unrouted_requests_answer_the_error_shape(client, path):
    response = client.get(path, headers=AUTH)
    assert response.status_code in (404, 405) and "error" in response.json(), response.text


# --- section 5: posted ids normalised like the data's -----------------------------------------

def test_posted_ids_are_normalised_like_the_data(client):
    asked = _forecast_body(inputs=[{"item_id": " s00000 ", "market": "BR"}])
    stored = client.post(FORECAST, json=_forecast_body(), headers=AUTH).json()
    answer = client.post(FORECAST, json=asked, headers=AUTH).json()
    assert answer["status"] == "completed", answer
    content = answer["outputs"][0]["content"][0]
    assert content["item_id"] == "S00000" and content["name"] == "S00000@BR"
    assert content["mean_forecast"] == stored["outputs"][0]["content"][0]["mean_forecast"]


def test_unknown_series_message_has_no_doubled_quote(client):
    body = _forecast_body(inputs=[{"item_id": "no-such-item", "market": "BR"},
                                  {"item_id": "S00000", "market": "Atlantis"}])
    answer = client.post(FORECAST, json=body, headers=AUTH).json()
    messages = [output["error"]["message"] for output in answer["outputs"]]
    assert all("''" not in message and "'mm'" in message for message in messages), messages


def test_new_item_id_is_normalised_like_the_data(client):
    error = _refused(_new_item(client, item_id="s00000"), 422, "item_id")
    assert error["code"] == "item_exists" and "''" not in error["message"]


def _serve(args: list[str], **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "SALESFUSION_API_KEYS": API_KEY, **env}
    return subprocess.run([sys.executable, "-m", "salesfusion.cli", "serve", *args, "--port",
                           "0"], capture_output=True, text=True, env=environment, timeout=120)


def _one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_short_signing_key_is_refused_at_serve(served):
    result = _serve(["--model", str(served.folders["gbm"])],
                    SALESFUSION_SIGNING_KEY="short secret")
    _one_error_line(result, "SALESFUSION_SIGNING_KEY", "12 bytes", "at least 32")


def test_short_signing_key_is_refused_at_load_and_save(served, tmp_path, monkeypatch):
    monkeypatch.setenv("SALESFUSION_SIGNING_KEY", "x" * 31)
    with pytest.raises(InputError, match="SALESFUSION_SIGNING_KEY is 31 bytes long"):
        ModelStore.load([served.folders["gbm"]], warm=False)
    with pytest.raises(InputError, match="SALESFUSION_SIGNING_KEY is 31 bytes long"):
        create_model("naive").fit(served.panel).save(tmp_path / "naive")


# --- section 4: a saved history that does not fit the manifest --------------------------------

def _forged_history(folder, change) -> None:
    """Rewrite ``folder``'s history and reseal its manifest, as a forger without a signing key
    (or a careless hand) could."""
    history = folder / "history.parquet"
    change(pl.read_parquet(history)).write_parquet(history)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["history.parquet"] = hashlib.sha256(history.read_bytes()).hexdigest()
    body = {k: v for k, v in manifest.items() if k not in ("checksum", "signature")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    (folder / "manifest.json").write_text(json.dumps(
        {**body, "checksum": hashlib.sha256(canonical.encode()).hexdigest()}))


HISTORY_CHANGES = {
    "no-target": lambda frame: frame.drop("y"),
    "no-market": lambda frame: frame.drop("market"),
    "text-timestamps": lambda frame: frame.with_columns(pl.col("timestamp").cast(pl.String)),
    "no-rows": lambda frame: frame.clear(),
    "text-target": lambda frame: frame.with_columns(pl.col("y").cast(pl.String)),
}


@pytest.mark.parametrize("change", list(HISTORY_CHANGES))
@pytest.mark.parametrize("model", ["gbm", "mm"])
def test_history_not_fitting_the_manifest_is_refused(served, tmp_path, model, change):
    folder = shutil.copytree(served.folders[model], tmp_path / model)
    _forged_history(folder, HISTORY_CHANGES[change])
    with pytest.raises(InputError, match=rf"cannot serve .*{model}.*history\.parquet") as caught:
        ModelStore.load([folder])
    assert "\n" not in str(caught.value)


def test_serve_refuses_a_history_not_fitting_the_manifest(served, tmp_path):
    folder = shutil.copytree(served.folders["gbm"], tmp_path / "gbm")
    _forged_history(folder, HISTORY_CHANGES["no-rows"])
    _one_error_line(_serve(["--model", str(folder)]), f"cannot serve {folder}",
                    "history.parquet")
