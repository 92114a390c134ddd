"""What produced a benchmark's results: commit, date, machine, thread settings, versions.

Import this module before numpy, torch or salesfusion: it sets ``OMP_WAIT_POLICY=PASSIVE``
(unless the caller set a policy) while no OpenMP runtime is loaded yet. With OpenMP's default
spinning waits, a 2-thread torch slows down many times over whenever another process holds a
core of a small machine, so every benchmark waits passively and records that it did.

``provenance()`` is the dict every results file written by ``benchmarks/`` carries under
``"provenance"``; ``summary_line()`` is its one-line form for benchmarks that only print.
``python benchmarks/_provenance.py [--out PATH]`` writes it for runs made outside these scripts
(``make results`` puts one next to the neural backtests).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

# Before anything loads an OpenMP runtime: nothing above does, numpy's OpenBLAS uses pthreads,
# and torch and lightgbm (which load libgomp) must be imported after this module. A script that
# imports torch at the top uses ``import _provenance``, which import sorting puts first.
if {"torch", "lightgbm"} & set(sys.modules):
    print("warning: _provenance imported after torch/lightgbm: OMP_WAIT_POLICY may not apply",
          file=sys.stderr)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS",
                    "OPENBLAS_NUM_THREADS", "POLARS_MAX_THREADS")
PACKAGES = ("salesfusion", "torch", "numpy", "polars", "pandas", "scikit-learn", "lightgbm",
            "sentence-transformers", "lightning", "pytorch-forecasting", "neuralforecast")


def requested_threads(default: int | None = None) -> int:
    """The torch thread count a benchmark should use: ``OMP_NUM_THREADS`` when the caller set
    it (``make results`` / ``make bench`` do), otherwise ``default`` or the core count."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return default or os.cpu_count() or 1


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def git_state() -> dict[str, Any]:
    """The working tree's commit, and whether tracked files differ from it (``dirty``)."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def thread_settings(load_torch: bool = False) -> dict[str, Any]:
    """Environment variables, torch's thread pools (when the run loaded torch, or with
    ``load_torch``) and the BLAS/OpenMP pools loaded so far."""
    settings: dict[str, Any] = {"env": {name: os.environ.get(name) for name in THREAD_VARIABLES}}
    if load_torch or "torch" in sys.modules:
        import torch

        settings["torch_threads"] = torch.get_num_threads()
        settings["torch_interop_threads"] = torch.get_num_interop_threads()
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        settings["threadpools"] = None
    else:
        settings["threadpools"] = [
            {k: pool.get(k) for k in ("user_api", "internal_api", "num_threads", "version")}
            for pool in threadpool_info()]
    return settings


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def provenance(load_torch: bool = False) -> dict[str, Any]:
    return {**git_state(), "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpu_count": os.cpu_count(), "machine": platform.platform(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "threads": thread_settings(load_torch), "versions": versions()}


def summary_line(load_torch: bool = False) -> str:
    record = provenance(load_torch)
    commit = (record["commit"] or "unknown")[:12] + (" (dirty)" if record["dirty"] else "")
    threads = record["threads"]
    env = ", ".join(f"{k}={v}" for k, v in threads["env"].items() if v is not None)
    torch = (f"torch {threads['torch_threads']} threads" if "torch_threads" in threads
             else "torch not loaded")
    return (f"commit {commit}, {record['date_utc']}, {record['cpu_count']} cores, {torch}, "
            f"{env or 'no thread variables set'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the JSON here instead of stdout")
    args = parser.parse_args()
    text = json.dumps(provenance(load_torch=True), indent=2)
    if args.out is None:
        print(text)
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
