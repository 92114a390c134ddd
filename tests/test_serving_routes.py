"""How the service is put together, checked without a trained model: the OpenAPI document
declares the key's two security schemes on every route that needs it (and only there), every
such route refuses a request without a key before reading its body, two apps in one process
keep their own keys and stores, and the serving modules import no route module's app (only
``serving.api`` builds it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from salesfusion.serving.api import create_app
from salesfusion.serving.store import ModelStore

SERVING = Path(__file__).resolve().parents[1] / "src" / "salesfusion" / "serving"
KEY = "routes-test-key-0123456789"
SCHEMES = [{"bearerKey": []}, {"apiKeyHeader": []}]
OPEN = {("get", "/v1/health")}


def _client(key: str = KEY, models: dict | None = None) -> TestClient:
    return TestClient(create_app(ModelStore(models or {}), [key.encode()]))


@pytest.fixture(scope="module")
def openapi() -> dict:
    return _client().get("/openapi.json").json()


def _operations(openapi: dict) -> list[tuple[str, str, dict]]:
    return [(method, path, operation) for path, methods in openapi["paths"].items()
            for method, operation in methods.items()]


def test_openapi_declares_the_key_schemes(openapi):
    schemes = openapi["components"]["securitySchemes"]
    assert schemes["bearerKey"] == {"type": "http", "scheme": "bearer",
                                    "description": schemes["bearerKey"]["description"]}
    assert schemes["apiKeyHeader"]["type"] == "apiKey"
    assert schemes["apiKeyHeader"]["in"] == "header"
    assert schemes["apiKeyHeader"]["name"] == "X-API-Key"


def test_every_route_but_health_declares_the_key(openapi):
    operations = _operations(openapi)
    assert len(operations) >= 12
    for method, path, operation in operations:
        if (method, path) in OPEN:
            assert "security" not in operation, path
        else:
            # Either scheme is enough (a list of requirements is a choice between them).
            assert operation.get("security") == SCHEMES, path
        # The key is a security scheme, not a header parameter of each route.
        names = {p["name"].lower() for p in operation.get("parameters", [])}
        assert not names & {"authorization", "x-api-key"}, path
    assert not any(path.startswith("/dashboard") for _, path, _ in operations)


def test_every_keyed_route_refuses_before_reading_its_body(openapi):
    """A malformed body without a key is a 401, not a 422: the key is checked first on every
    route the document says needs it, whichever router declared it."""
    client = _client()
    for method, path, _ in _operations(openapi):
        if (method, path) in OPEN:
            continue
        url = path.replace("{name}", "m").replace("{table}", "t")
        response = client.request(method, url, content=b"{not json",
                                  headers={"content-type": "application/json"})
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


def test_the_page_and_health_need_no_key():
    client = _client()
    assert client.get("/v1/health").status_code == 200
    assert client.get("/dashboard").status_code == 200
    assert client.get("/dashboard/static/dashboard.js").status_code == 200


def test_apps_in_one_process_keep_their_own_keys_and_stores():
    first = _client(KEY, {"a": None})
    second = _client(KEY + "-second", {"a": None, "b": None})
    assert first.get("/v1/health").json()["models"] == 1
    assert second.get("/v1/health").json()["models"] == 2
    assert first.get("/v1/models/nope", headers={"X-API-Key": KEY}).status_code == 404
    assert second.get("/v1/models/nope", headers={"X-API-Key": KEY}).status_code == 401
    refused = second.get("/v1/models/nope", headers={"X-API-Key": KEY + "-second"})
    assert refused.status_code == 404 and "served: a, b" in refused.json()["error"]["message"]


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, wherever the import stands, relative ones resolved."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # every module of the folder is in the package salesfusion.serving
                package = ["salesfusion", "serving"][:3 - node.level]
                base = ".".join([*package, base] if base else package)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_no_serving_module_imports_the_app_module():
    importers = [path.name for path in sorted(SERVING.glob("*.py"))
                 if path.name != "api.py" and "salesfusion.serving.api" in _imported_modules(path)]
    assert importers == []


def test_the_import_check_finds_an_import_of_the_app_module(tmp_path):
    for source in ("from salesfusion.serving.api import create_app\n",
                   "def f():\n    from .api import served\n",
                   "from salesfusion.serving import api\n"):
        path = tmp_path / "module.py"
        path.write_text(source)
        assert "salesfusion.serving.api" in _imported_modules(path), source
