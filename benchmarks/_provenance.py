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
import sys
from pathlib import Path

# Before anything loads an OpenMP runtime: nothing above does, numpy's OpenBLAS uses pthreads,
# and torch and lightgbm (which load libgomp) must be imported after this module. A script that
# imports torch at the top uses ``import _provenance``, which import sorting puts first.
if {"torch", "lightgbm"} & set(sys.modules):
    print("warning: _provenance imported after torch/lightgbm: OMP_WAIT_POLICY may not apply",
          file=sys.stderr)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from salesfusion.provenance import (  # the benchmarks import these from here
    provenance,
    requested_threads,
    thread_settings,
)

__all__ = ["provenance", "requested_threads", "summary_line", "thread_settings"]


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
