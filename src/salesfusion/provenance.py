"""What produced a results file: commit, date, machine, thread settings, versions.

Every results file salesfusion writes (a tuning search, the benchmarks) records ``provenance()``
so that a number can be traced to the code and the thread settings that made it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

# The source checkout (an installed wheel has no git: its commit is then None).
ROOT = Path(__file__).resolve().parents[2]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS",
                    "OPENBLAS_NUM_THREADS", "POLARS_MAX_THREADS")
PACKAGES = ("salesfusion", "torch", "numpy", "polars", "pandas", "scikit-learn", "lightgbm",
            "sentence-transformers", "lightning", "optuna", "ray", "pytorch-forecasting",
            "neuralforecast")


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
