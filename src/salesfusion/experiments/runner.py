"""``salesfusion experiment``: every cell of an experiment, cached, resumable, in parallel.

1. Tuning steps first (one search per tuned model and dataset, resumable from its trial log in
   ``tuning/``), since the trials of a tuned model use what its search found.
2. Cells: a cell whose folder holds its key is done and skipped (a rerun, or a run resumed
   after a kill, computes only what is missing); the others run one at a time, in ``jobs``
   worker processes (each with its share of the cores), or as Ray tasks (``backend="ray"``).
   A model without a seed (the statistical baselines) runs once per dataset, its forecasts
   standing for every trial.
3. Results (``experiments.results``) from the finished cells.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from salesfusion.experiments.cells import read_cell, run_cell, seeded, tune_model
from salesfusion.experiments.config import Cell, ExperimentConfig

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """The cells to have, the tuned parameters they use, and their keys."""

    cells: list[Cell]
    tuned: dict[tuple[str, str], dict[str, Any]]  # (dataset, model entry) -> best params
    keys: dict[str, str]  # cell folder -> key
    ran: int = 0  # cells computed by this run (the others were cached)


def cells_of(config: ExperimentConfig) -> list[Cell]:
    """Every (dataset, variant, trial) to run; an unseeded model's trial 0 only."""
    cells = []
    for dataset in config.datasets:
        for variant in config.variants():
            for trial, seed in enumerate(config.trial_seeds):
                cell = Cell(dataset, variant, trial, seed)
                if trial > 0 and not seeded(cell):
                    break
                cells.append(cell)
    return cells


def run_experiment(config: ExperimentConfig, out: Path, *, jobs: int = 1,
                   backend: str = "local", progress: Progress = print) -> Plan:
    """Run (or finish) every cell of ``config`` under ``out``; the plan that was run."""
    cells = cells_of(config)
    tuned = _tune(config, cells, out, progress)
    keys = {c.folder: c.key(config.evaluation, config.max_series,
                            tuned.get((c.dataset.key, c.variant.entry.key)))
            for c in cells}
    todo = [c for c in cells
            if (read_cell(out / "cells" / c.folder) or {}).get("key") != keys[c.folder]]
    progress(f"{len(cells)} cells ({len(cells) - len(todo)} already done), {len(todo)} to run "
             f"with {jobs} job(s) on the {backend} backend")
    plan = Plan(cells, tuned, keys, len(todo))
    if not todo:
        return plan
    arguments = [(c, config.evaluation, config.max_series,
                  tuned.get((c.dataset.key, c.variant.entry.key)), out / "cells" / c.folder,
                  keys[c.folder]) for c in todo]
    clock = _Clock(len(todo), jobs, progress)
    if backend == "ray":
        _run_on_ray(arguments, jobs, clock)
    elif jobs == 1:
        for args in arguments:
            clock.done(run_cell(*args))
    else:
        _run_in_processes(arguments, jobs, clock)
    return plan


def _tune(config: ExperimentConfig, cells: list[Cell], out: Path,
          progress: Progress) -> dict[tuple[str, str], dict[str, Any]]:
    tuned: dict[tuple[str, str], dict[str, Any]] = {}
    for cell in cells:
        entry = cell.variant.entry
        key = (cell.dataset.key, entry.key)
        if entry.tune is None or key in tuned or cell.variant.levels:
            continue
        progress(f"tuning {entry.key} on {cell.dataset.key} ({entry.tune.searcher}, "
                 f"{entry.tune.budget} trials, metric {config.headline_metric})")
        # The metric names the log's folder: a search by another metric is another search (a
        # log of the earlier RMSE default is not continued under RMSSE).
        tuned[key] = tune_model(entry.key, cell, config.evaluation, config.max_series,
                                out / "tuning" / f"{cell.dataset.key}-{entry.key}-{config.metric}",
                                lambda line: progress(f"  {line}"), config.metric)
        progress(f"tuned {entry.key} on {cell.dataset.key}: {tuned[key]}")
    return tuned


class _Clock:
    """Overall progress: cells done, and the time left at the pace so far."""

    def __init__(self, total: int, jobs: int, progress: Progress) -> None:
        self.total, self.jobs, self.progress = total, jobs, progress
        self.count, self.started = 0, time.perf_counter()

    def done(self, record: dict[str, Any]) -> None:
        self.count += 1
        elapsed = time.perf_counter() - self.started
        left = elapsed / self.count * (self.total - self.count)
        self.progress(f"cell {self.count}/{self.total} {record['dataset']} / {record['model']} "
                      f"/ trial {record['trial']}: {record['seconds']:,.0f} s; elapsed "
                      f"{elapsed / 60:,.1f} min, about {left / 60:,.1f} min left")


def _worker_threads(jobs: int) -> None:
    """Each worker process gets its share of the cores."""
    import torch

    threads = max(1, (os.cpu_count() or 1) // jobs)
    torch.set_num_threads(threads)


def _run_in_processes(arguments: list[tuple], jobs: int, clock: _Clock) -> None:
    # spawn: a forked copy of a process that has started torch's or OpenMP's threads can hang.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                             initializer=_worker_threads, initargs=(jobs,)) as pool:
        pending: set[Future] = {pool.submit(run_cell, *args) for args in arguments}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                clock.done(future.result())


def _run_on_ray(arguments: list[tuple], jobs: int, clock: _Clock) -> None:
    import ray

    from salesfusion.distributed import ray_session

    with ray_session(None, jobs):  # RAY_ADDRESS (Ray's own variable) names a cluster
        remote = ray.remote(num_cpus=1)(run_cell)
        pending = [remote.remote(*args) for args in arguments]
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            clock.done(ray.get(finished[0]))
