"""How many threads the numerical libraries use, decided once per process.

OpenMP threads (LightGBM's, torch's) that busy-wait at each barrier hold a core while they wait:
on a machine whose cores are busy with anything else, a 2-thread LightGBM fit measured 5x slower
with the default (active) waiting than with passive waiting (6.0 s vs 31.4 s, 120 series, both
cores loaded). ``salesfusion`` therefore sets ``OMP_WAIT_POLICY=PASSIVE`` when it is imported,
unless the environment says otherwise (OpenMP reads it when the library is first loaded).
"""

from __future__ import annotations

import os


def default_threads() -> int:
    """Threads (or processes) a library call may use: ``OMP_NUM_THREADS`` when it is set (a test
    worker, a Ray task with one CPU), else every core this process may run on."""
    given = os.environ.get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
