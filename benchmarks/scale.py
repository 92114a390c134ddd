"""salesfusion at 10k-1M series beside statsforecast, mlforecast and pytorch-forecasting.

Per size, on one synthetic weekly panel (written once under ``runs/scale/<size>/``, the same
Parquet file for every library), each step runs ours and the peer, each in its own process
(``_scale_steps.py``), and reports wall seconds of the work and the process's peak RSS:

- panel: spec -> tables -> Panel vs a polars scan + group_by of the same file (the floor);
- windows: our (series, origin) samples of the whole panel and a pass over the first 100,000
  in batches of 4,096 vs a pytorch-forecasting TimeSeriesDataSet of the panel and its
  dataloader over as many; besides the peaks, the memory each dataset added to its input
  (``work_mib``: the panel, or the pandas frame pytorch-forecasting reads);
- epoch: one epoch of ``multimodal`` (hidden 16) vs pytorch-forecasting's TFT (hidden 16) on
  as many samples;
- predict: the fitted multimodal's 4 weeks over every series;
- lightgbm: our LightGBM's fit and 4-week forecast vs mlforecast's;
- backtest: naive, iMAPA and LightGBM, 3 windows of 4 weeks, refit, vs statsforecast (Naive
  with an 80% interval, IMAPA) + mlforecast (LightGBM with our booster settings, lags 1-8,
  rolling means 4/8/13/26, week and month, trained on every origin as ours is), both
  LightGBMs with the same fixed rounds (``--rounds``; ours without early stopping), with each
  side's WAPE on the rows both forecast (the peers get the series longer than the 12 test
  weeks: statsforecast refuses the others);
- ray: our backtest as Ray tasks on 1 and on 2 workers (one thread each).

Synthetic data: N series = N/4 items x 4 markets, T weeks from a Monday, a lognormal level
per series, a yearly seasonal shape, 20% launched inside the panel (no rows before launch; at
least 8 weeks before the first backtest origin, so every library can fit every window),
Poisson counts (about 58% zeros). ``--or-panel`` adds the backtest on the Online Retail
weekly panel (19,196 series). A peer step whose previous size's time or memory extrapolates
past ``--timeout`` or the free memory is recorded as not run, with the estimate; a child past
``--timeout`` is killed and recorded as timed out. Children run with ``OMP_NUM_THREADS`` (2
unless set) and ``OMP_WAIT_POLICY=PASSIVE``; the results file has the provenance and every
child's record (``runs/scale/<size>/logs`` their stderr).

Run: .venv/bin/python benchmarks/scale.py [--sizes 10000,100000,1000000] [--periods 52]
     [--steps all|panel,windows,epoch,predict,lightgbm,backtest,ray]
     [--steps-for SIZE=STEPS ...] [--json PATH] [--or-panel]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _provenance import provenance, summary_line
from _scale_data import generate, generate_or
from _scale_tables import brief, size_table, summary_table
from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
STEPS_FILE = Path(__file__).with_name("_scale_steps.py")
DEFAULT_JSON = Path(__file__).parent / "results" / "scale.json"
STEP_NAMES = ("panel", "windows", "epoch", "predict", "lightgbm", "backtest", "ray")
# Each step's rows: (label, our child, {reference child: its name}); ray's is 2 workers.
PLAN: dict[str, list[tuple[str, str, dict[str, str]]]] = {
    "panel": [("panel", "panel_ours", {"panel_reference": "polars group_by"})],
    "windows": [("windows", "windows_ours", {"windows_peer": "pytorch-forecasting"})],
    "epoch": [("epoch", "epoch_ours", {"epoch_peer": "pytorch-forecasting"})],
    "predict": [("predict multimodal", "predict_multimodal", {})],
    "lightgbm": [("predict lightgbm", "predict_lightgbm", {"predict_mlforecast": "mlforecast"})],
    "backtest": [("backtest", "backtest_ours", {"backtest_statsforecast": "statsforecast",
                                                "backtest_mlforecast": "mlforecast"})],
    "ray": [("ray 1 vs 2 workers", "ray", {"ray": "2 workers"})],
}
DATA_VERSION = 1  # bump when the generator changes: cached panels are then rewritten


def size_dir(size: str) -> Path:
    return ROOT / "runs" / "scale" / size


def ensure_data(size: str, periods: int, seed: int, console: Console) -> dict[str, Any]:
    """The size's folder, generated (in a child process) unless the same data is there."""
    marker = size_dir(size) / "data.json"
    key = {"version": DATA_VERSION, "size": size, "periods": periods, "seed": seed}
    if marker.is_file() and json.loads(marker.read_text())["key"] == key:
        return json.loads(marker.read_text())["info"]
    with console.status(f"{size}: generating the data"):
        done = subprocess.run([sys.executable, __file__, "--generate", size, "--periods",
                               str(periods), "--seed", str(seed)], capture_output=True,
                              text=True)
    if done.returncode:
        raise SystemExit(f"generating the {size} panel failed:\n{done.stderr[-3000:]}")
    shutil.rmtree(size_dir(size) / "multimodal", ignore_errors=True)  # fitted on the old data
    info = json.loads(done.stdout.splitlines()[-1])
    marker.write_text(json.dumps({"key": key, "info": info}, indent=1))
    console.print(f"{size}: data, {info['rows']:,} rows in {info['seconds']} s", highlight=False)
    return info


# --- child processes ----------------------------------------------------------------------
def run_child(step: str, data: Path, extra: list[str], env: dict[str, str],
              timeout: float) -> dict[str, Any]:
    """One step in its own process and session (a timeout kills its pools too)."""
    log = data / "logs" / f"{step}{'_' + extra[-1] if step == 'ray' else ''}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as stderr:
        child = subprocess.Popen([sys.executable, str(STEPS_FILE), step, str(data), *extra],
                                 stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
                                 start_new_session=True)
        try:
            out, _ = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            return {"status": "timed out", "reason": f"over {timeout:.0f} s"}
    if child.returncode < 0:
        return {"status": "killed", "reason": f"signal {-child.returncode} (out of memory?)"}
    if child.returncode:
        tail = log.read_text().strip().splitlines()[-1:] or ["no output"]
        return {"status": "failed", "reason": f"{tail[0][:300]} (see {log})"}
    return json.loads(out.strip().splitlines()[-1])


def skip_reason(done: list[tuple[int, dict[str, Any]]], size: int, timeout: float) -> str | None:
    """Why a peer step would not fit at ``size``, from its runs at smaller sizes (a line
    through the last two, or proportional to one), else None."""
    failed = [(n, r) for n, r in done if r["status"] not in ("ok", "not run")]
    if failed:
        return f"{failed[-1][1]['status']} at {failed[-1][0]:,} series"
    points = [(n, r) for n, r in done if r["status"] == "ok" and n < size][-2:]
    meminfo = Path("/proc/meminfo")
    free = next((int(line.split()[1]) / 1024 for line in meminfo.read_text().splitlines()
                 if line.startswith("MemAvailable:")), None) if meminfo.exists() else None
    for key, limit, unit in (("peak_mib", free, "MiB free"), ("seconds", timeout, "s limit")):
        if not points or limit is None:
            continue
        (n1, r1), (n2, r2) = points[0], points[-1]
        slope = (r2[key] - r1[key]) / (n2 - n1) if n2 > n1 else r2[key] / n2
        if (estimate := r2[key] + slope * (size - n2)) > limit:
            return f"estimated {estimate:,.0f} {unit.split()[0]} > {limit:,.0f} {unit}"
    return None


class Runner:
    """Runs each size's children, keeping the peers' records for the estimates. A line per
    child as it ends, and a spinner on a terminal while it runs."""

    def __init__(self, args: argparse.Namespace, env: dict[str, str], console: Console) -> None:
        self.args, self.env, self.console = args, env, console
        self.history: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.loads: dict[str, list[float]] = {}  # per size, as the children saw it

    def child(self, size: str, label: str, name: str, more: list[str], peer: str | None) -> dict:
        title, data = f"{size}: {label}, {peer or 'ours'}", size_dir(size)
        synthetic = size.isdigit()
        reason = (skip_reason(self.history.get(name, []), int(size), self.args.timeout)
                  if peer and synthetic else None)
        # Ray: one thread per worker, so that 2 workers are 2 cores' work.
        env = {**self.env, "OMP_NUM_THREADS": "1"} if name == "ray" else self.env
        extra = ["--rounds", str(self.args.rounds), "--max-train-windows",
                 str(self.args.max_train_windows), *more]
        with self.console.status(title):
            record = ({"status": "not run", "reason": reason} if reason
                      else run_child(name, data, extra, env, self.args.timeout))
        self.loads.setdefault(size, []).extend(x for x in record.get("load_1min") or [] if x)
        if peer and synthetic:
            self.history.setdefault(name, []).append((int(size), record))
        self.console.print(f"{title}: {brief(record)}", highlight=False)
        return record

    def size(self, size: str, steps: list[str]) -> dict[str, Any]:
        rows = []
        for step in steps:
            for label, ours_step, references in PLAN[step]:
                ray = ours_step == "ray"
                for stale in size_dir(size).glob("cv_*.parquet") if step == "backtest" else []:
                    stale.unlink()  # compare reads only this run's forecasts
                ours = self.child(size, label, ours_step, ["--workers", "1"] if ray else [], None)
                samples = ours.get("train_windows") or self.args.max_train_windows
                more = (["--workers", "2"] if ray else ["--samples", str(samples)]
                        if step == "epoch" else [])
                parts = {name: self.child(size, label, name, more, peer)
                         for name, peer in references.items()}
                row = {"step": label, "ours": ours, "reference": _combined(parts),
                       "reference_name": " + ".join(references.values()) or None}
                if step == "backtest" and ours["status"] == "ok":
                    row["common_wape"] = run_child("compare", size_dir(size), [], self.env,
                                                   600).get("common_wape")
                rows.append(_with_ratios(row))
        return {"size": size, "rows": rows}


def _combined(parts: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """One reference of several children: seconds added, the largest peak."""
    if len(parts) < 2:
        return next(iter(parts.values()), None)
    bad = [r for r in parts.values() if r["status"] != "ok"]
    return {**bad[0], "parts": parts} if bad else {
        "status": "ok", "seconds": sum(r["seconds"] for r in parts.values()),
        "peak_mib": max(r["peak_mib"] for r in parts.values()), "parts": parts}


def _with_ratios(row: dict[str, Any]) -> dict[str, Any]:
    ours, ref = row["ours"], row["reference"]
    if ref and ours["status"] == "ok" and ref["status"] == "ok":
        row["ratio_seconds"] = ours["seconds"] / max(ref["seconds"], 1e-9)
        row["ratio_peak"] = ours["peak_mib"] / ref["peak_mib"]
        if ours.get("work_mib") and ref.get("work_mib"):
            row["ratio_work"] = ours["work_mib"] / ref["work_mib"]
    return row


def step_list(parser: argparse.ArgumentParser, option: str, listed: str) -> list[str]:
    steps = list(STEP_NAMES) if listed == "all" else listed.split(",")
    unknown = [s for s in steps if s not in STEP_NAMES]
    if unknown:
        parser.error(f"{option}: unknown step {unknown[0]!r}; use all or {','.join(STEP_NAMES)}")
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--periods", type=int, default=52)
    parser.add_argument("--steps", default="all", help=f"all, or some of {','.join(STEP_NAMES)}")
    parser.add_argument("--steps-for", action="append", default=[], metavar="SIZE=STEPS",
                        help="another list of steps at one size (repeatable)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--or-panel", action="store_true",
                        help="also backtest on the Online Retail weekly panel")
    parser.add_argument("--rounds", type=int, default=50, help="rounds of both LightGBMs")
    parser.add_argument("--max-train-windows", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per child")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:  # child: write one size's data
        started = time.perf_counter()
        data = size_dir(args.generate)
        info = (generate_or(data) if args.generate == "or"
                else generate(data, int(args.generate), args.periods, args.seed))
        print(json.dumps({**info, "seconds": round(time.perf_counter() - started, 2)}))
        return
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    if not all(s.isdigit() and int(s) >= 4 for s in sizes):
        parser.error(f"--sizes: {args.sizes!r} is not a list of series counts of at least 4")
    steps = {size: step_list(parser, "--steps", args.steps) for size in sizes}
    for option in args.steps_for:
        size, _, listed = option.partition("=")
        if size not in sizes:
            parser.error(f"--steps-for: {option!r} names no size of --sizes {args.sizes!r}")
        steps[size] = step_list(parser, "--steps-for", listed)
    if args.periods < 30:
        parser.error(f"--periods: {args.periods} leaves no history before 12 test weeks")
    # Children inherit these; OpenMP threads wait passively (see _provenance.py).
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    # A Ray cluster named in the environment would be joined: the ray step starts its own.
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "HF_HUB_OFFLINE": "1"}
    console = Console(width=160)
    console.print(summary_line())
    record = {"benchmark": "scale", "provenance": provenance(),
              "settings": {k: v for k, v in vars(args).items() if k != "generate"},
              "results": []}
    runner = Runner(args, env, console)
    for size in [*sizes, *(["or"] if args.or_panel else [])]:
        data = ensure_data(size, args.periods, args.seed, console)
        result = {**runner.size(size, steps.get(size, ["backtest"])), "data": data}
        record["results"].append(result)
        console.print(size_table(result))
        if max(runner.loads.pop(size, [0])) > (os.cpu_count() or 1) + 0.5:
            console.print(f"note: the 1-min load exceeded the {os.cpu_count()} cores during "
                          "these runs (each child's load_1min): wall times are inflated",
                          highlight=False)
        args.json.parent.mkdir(parents=True, exist_ok=True)  # kept after every size
        args.json.write_text(json.dumps(record, indent=1, default=str) + "\n")
    console.print(summary_table(record["results"]))
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
