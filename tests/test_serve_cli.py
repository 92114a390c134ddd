"""``salesfusion serve`` as a real process: it answers, logs each request as a JSON line, stops
gracefully on SIGTERM, and refuses a tampered model folder or a missing key with exit 2."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.serving_fixtures import API_KEY, train_shop

pytestmark = pytest.mark.xdist_group("serving")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    return train_shop(tmp_path_factory.mktemp("cli_served"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(args, env_keys=API_KEY):
    env = {**os.environ, "SALESFUSION_API_KEYS": env_keys}
    return subprocess.Popen([sys.executable, "-m", "salesfusion.cli", "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def _get(url, key=None):
    request = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, json.loads(response.read())


def test_serve_answers_logs_and_stops_gracefully(served):
    port = _free_port()
    process = _serve(["--model", str(served.folders["gbm"]), "--port", str(port)])
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/v1/health")
                break
            except OSError:
                assert process.poll() is None, process.stderr.read()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert (status, body) == (200, {"status": "ok", "models": 1})
        status, models = _get(f"http://127.0.0.1:{port}/v1/models", API_KEY)
        assert [m["name"] for m in models] == ["gbm"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    # uvicorn re-raises the SIGTERM it handled once the shutdown is done.
    assert process.returncode in (0, -signal.SIGTERM), stderr
    assert "Traceback" not in stderr
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    requests = [e for e in events if e["event"] == "request"]
    assert {(e["path"], e["status"]) for e in requests} >= {("/v1/health", 200),
                                                              ("/v1/models", 200)}
    assert all(e["duration_ms"] >= 0 and len(e["request_id"]) == 32 for e in requests)
    assert events[-1]["event"] == "stopped"


def test_serve_refuses_a_tampered_model_and_a_missing_key(served, tmp_path):
    copy = shutil.copytree(served.folders["gbm"], tmp_path / "gbm")
    (copy / "manifest.json").write_text((copy / "manifest.json").read_text().replace(
        '"lightgbm"', '"naive"', 1))
    process = _serve(["--model", str(copy), "--port", str(_free_port())])
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert stderr.strip().splitlines()[-1].startswith(f"error: cannot serve {copy}")
    assert "checksum" in stderr
    process = _serve(["--model", str(served.folders["gbm"])], env_keys="")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and "SALESFUSION_API_KEYS" in stderr
