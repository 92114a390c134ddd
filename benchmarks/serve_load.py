"""Load and soak of ``salesfusion serve``: latency and throughput at 1, 10 and 100 concurrent
clients, single-series and batch forecasts, and the server's memory over a long soak.

The server runs as its own process (``salesfusion serve``, as deployed) on loopback; the load
generator is an asyncio httpx client in this process, one connection per simulated client, each
sending its next request as soon as the last was answered (closed loop). Both share this
machine's cores, which the results file records.

    python benchmarks/serve_load.py [--model DIR ...] [--seconds 10] [--soak 600]
        [--json benchmarks/results/serve_load.json]

Without ``--model`` it trains ``lightgbm`` and ``multimodal`` on the bundled Online Retail
weekly panel into ``runs/serve_load/`` (reused when there). Each cell runs ``--seconds`` after a
warm-up; a request for a series picks it at random (seeded) among the model's series. The soak
sends a mix (single, batch, new-horizon) at 10 clients for ``--soak`` seconds and samples the
server's resident memory (``/proc/PID/status`` VmRSS) every 5 seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _provenance  # noqa: F401 (before torch: passive OpenMP waits)
import httpx
import numpy as np
from _provenance import provenance

KEY = "serve-load-benchmark-key-0123456789"
CLIENTS = (1, 10, 100)
BATCH = 100


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _train_defaults(root: Path) -> list[Path]:
    folders = []
    for name in ("lightgbm", "multimodal"):
        folder = root / name
        if not (folder / "manifest.json").is_file():
            print(f"training {name} on online_retail into {folder}", flush=True)
            subprocess.run([sys.executable, "-m", "salesfusion.cli", "train", "--preset", name,
                            "--dataset", "online_retail", "--out", str(folder)], check=True)
        folders.append(folder)
    return folders


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class Server:
    def __init__(self, folders: list[Path]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [arg for folder in folders for arg in ("--model", str(folder))]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "salesfusion.cli", "serve", *args, "--port", str(self.port)],
            env={**os.environ, "SALESFUSION_API_KEYS": KEY}, stderr=subprocess.DEVNULL)

    def wait(self) -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit("the server exited while starting")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.5)
        raise SystemExit("the server did not start in 300 s")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


def _body(model: str, keys: list[tuple[str, str]], horizon: int) -> dict[str, Any]:
    return {"model": model, "options": {"horizon": horizon},
            "inputs": [{"item_id": i, "market": m} for i, m in keys]}


async def _closed_loop(url: str, clients: int, seconds: float,
                       make_body: Any) -> tuple[list[float], int]:
    """Latencies (s) of every answered request; errors counted apart."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY}, limits=limits,
                                 timeout=120) as client:

        async def one_client(index: int) -> None:
            nonlocal errors
            rng = random.Random(index)
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                response = await client.post("/v1/timeseries/forecast", json=make_body(rng))
                if response.status_code == 200 and response.json()["status"] == "completed":
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        await asyncio.gather(*(one_client(i) for i in range(clients)))
    return latencies, errors


def _cell(url: str, model: str, series: list[tuple[str, str]], horizon: int, clients: int,
          size: int, seconds: float) -> dict[str, Any]:
    def make_body(rng: random.Random) -> dict[str, Any]:
        return _body(model, rng.sample(series, size), horizon)

    asyncio.run(_closed_loop(url, min(clients, 10), 1.0, make_body))  # warm-up
    latencies, errors = asyncio.run(_closed_loop(url, clients, seconds, make_body))
    values = np.array(latencies) * 1000
    return {"model": model, "clients": clients, "series_per_request": size,
            "requests": len(latencies), "errors": errors,
            "p50_ms": float(np.percentile(values, 50)) if len(values) else None,
            "p99_ms": float(np.percentile(values, 99)) if len(values) else None,
            "requests_per_s": len(latencies) / seconds,
            "series_per_s": len(latencies) * size / seconds}


def _soak(server: Server, model: str, series: list[tuple[str, str]], horizon: int,
          seconds: float) -> dict[str, Any]:
    def make_body(rng: random.Random) -> dict[str, Any]:
        size = rng.choice((1, 1, 1, BATCH))
        return _body(model, rng.sample(series, size), rng.randint(1, horizon))

    samples = [(0.0, _rss_mib(server.process.pid))]
    started = time.perf_counter()
    total, errors = 0, 0

    async def sample_memory() -> None:
        while time.perf_counter() - started < seconds:
            await asyncio.sleep(5)
            samples.append((time.perf_counter() - started, _rss_mib(server.process.pid)))

    async def run() -> None:
        nonlocal total, errors
        sampler = asyncio.create_task(sample_memory())
        latencies, errors = await _closed_loop(server.url, 10, seconds, make_body)
        total = len(latencies)
        await sampler

    asyncio.run(run())
    rss = [value for _, value in samples]
    return {"model": model, "seconds": seconds, "clients": 10, "requests": total,
            "errors": errors, "rss_start_mib": rss[0], "rss_end_mib": rss[-1],
            "rss_peak_mib": max(rss), "rss_samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", default=None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--soak", type=float, default=600.0, help="0: no soak")
    parser.add_argument("--horizon", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    folders = args.model or _train_defaults(Path("runs/serve_load"))
    server = Server(folders)
    results: dict[str, Any] = {"provenance": provenance(), "cells": [], "setup": {
        "models": [str(f) for f in folders], "seconds_per_cell": args.seconds,
        "horizon": args.horizon, "load_generator": "httpx asyncio, closed loop, same machine",
        "cpu_count": os.cpu_count()}}
    try:
        server.wait()
        headers = {"X-API-Key": KEY}
        models = httpx.get(f"{server.url}/v1/models", headers=headers, timeout=60).json()
        for info in models:
            name = info["name"]
            series = _model_series(server.url, name, headers)
            for size in (1, BATCH):
                for clients in CLIENTS:
                    cell = _cell(server.url, name, series, args.horizon, clients, size,
                                 args.seconds)
                    results["cells"].append(cell)
                    print(f"{name:>12} clients {clients:>3} x {size:>3} series: p50 "
                          f"{cell['p50_ms']:8.1f} ms  p99 {cell['p99_ms']:8.1f} ms  "
                          f"{cell['requests_per_s']:7.1f} req/s  {cell['series_per_s']:8.0f} "
                          f"series/s  errors {cell['errors']}", flush=True)
        if args.soak > 0:
            name = models[-1]["name"]
            print(f"soak: {name}, 10 clients, {args.soak:.0f} s", flush=True)
            soak = _soak(server, name, _model_series(server.url, name, headers), args.horizon,
                         args.soak)
            results["soak"] = soak
            print(f"soak: {soak['requests']} requests, {soak['errors']} errors, RSS start "
                  f"{soak['rss_start_mib']:.0f} MiB, end {soak['rss_end_mib']:.0f} MiB, peak "
                  f"{soak['rss_peak_mib']:.0f} MiB", flush=True)
    finally:
        server.stop()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
        print(f"wrote {args.json}")


def _model_series(url: str, name: str, headers: dict[str, str]) -> list[tuple[str, str]]:
    response = httpx.get(f"{url}/v1/models/{name}/series", params={"limit": 100000},
                         headers=headers, timeout=60)
    response.raise_for_status()
    return [(r["item_id"], r["market"]) for r in response.json()["series"]]


if __name__ == "__main__":
    main()
