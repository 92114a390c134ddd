"""Forked processes forecasting the series of a large panel, with the results of one process.

Why a pool of our own: ``statsforecast_adapter`` calls each series' model itself (the model's
``forecast``, the call ``StatsForecast.forecast`` makes per series) with its own fallback rules,
routed and counted per series, so statsforecast's engine, and the parallelism of its ``n_jobs``,
are not used. This is that parallel part, for the models forecast series by series (ETS, ARIMA,
ADIDA, iMAPA): ``fork``ed workers inherit the forecast's inputs (``_Job``) from memory, so
nothing of the panel is pickled, only the chunks' row numbers and their results; the series are
cut into contiguous chunks, several per worker, whose outputs and fallback counts are merged in
series order, so the forecasts and the notes are those of one process whatever the number of
workers. Each worker's numerical libraries use one thread: the pool is the parallelism.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from salesfusion.threads import default_threads

if TYPE_CHECKING:
    from salesfusion.models.baselines.statsforecast_adapter import Regressors, StatsForecastModel

# Below this many series a process pool costs more to start (forking, about 0.2 s of CPU) than
# it saves, for models taking milliseconds a series (ETS, ARIMA).
PARALLEL_MIN_SERIES = 2000
CHUNKS_PER_WORKER = 4  # smaller chunks even out series that take longer (ETS's seasonal fits)


@dataclass
class FallbackTally:
    """What one forecast routed to the fallback."""

    series: int = 0
    short: int = 0
    longest_short: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class _Job:
    """One forecast's inputs, the series stored one after another (``starts``, ``ends``)."""

    model: StatsForecastModel
    y: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    stamps: np.ndarray
    regressors: Regressors | None
    horizon: int
    level: list[int] | None
    season: int

    def run(self, rows: np.ndarray) -> tuple[np.ndarray, FallbackTally]:
        """The forecasts of ``rows``, one ``forecast_one`` each, and what fell back."""
        model, tally, models = self.model, FallbackTally(), {}
        out = np.full((len(rows), self.horizon, 3 if self.level else 1), np.nan)
        for index, row in enumerate(rows):
            start, end = self.starts[row], self.ends[row]
            x, x_future = model.series_regressors(self.regressors, row, self.stamps[start:end],
                                                   self.horizon)
            out[index] = model.forecast_one(self.y[start:end], x, x_future, self.horizon,
                                             self.level, self.season, models, tally)
        return out, tally


def pool_workers(n_jobs: int | None, series: int, min_series: int) -> int:
    """Processes forecasting ``series`` series: 1 (this process) below ``min_series`` series,
    for ``n_jobs`` 1 or where processes cannot be forked; else ``n_jobs`` (None: one per
    available core, 1 inside a worker process of a pool), at most one a series."""
    if n_jobs is None:
        # In a pool's worker (the experiments runner) the pool already shares the cores
        # out; a Ray task's OMP_NUM_THREADS is its CPUs.
        n_jobs = 1 if multiprocessing.parent_process() is not None else default_threads()
    if (series < min_series or n_jobs <= 1
            or "fork" not in multiprocessing.get_all_start_methods()):
        return 1
    return min(n_jobs, series)


def forecast_rows(job: _Job, rows: np.ndarray, out: np.ndarray, tally: FallbackTally,
                  workers: int) -> None:
    """The forecasts of ``rows`` into ``out[rows]``, what fell back added to ``tally``: in this
    process for one worker, else in a pool of ``workers`` forked processes."""
    if workers == 1:
        out[rows], part = job.run(rows)
        _merge(tally, part)
        return
    chunks = [c for c in np.array_split(rows, workers * CHUNKS_PER_WORKER) if len(c)]
    # Forked workers get the job as their initializer's argument, from memory: nothing of
    # the panel is pickled, only the chunks' row numbers and their results.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                             initializer=_start_worker, initargs=(job,)) as pool:
        for chunk, (values, part) in zip(chunks, pool.map(_run_chunk, chunks), strict=True):
            out[chunk] = values
            _merge(tally, part)


_JOB: _Job | None = None  # in a pool's worker: the forecast it runs chunks of


def _start_worker(job: _Job) -> None:
    """A worker keeps ``job``; its numerical libraries use one thread (the pool is the
    parallelism): the variables for libraries loaded later, threadpoolctl for those loaded."""
    from threadpoolctl import threadpool_limits

    global _JOB
    _JOB = job
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"
    threadpool_limits(1)  # the limits stay set until restored; nothing here restores them


def _run_chunk(rows: np.ndarray) -> tuple[np.ndarray, FallbackTally]:
    assert _JOB is not None, "runs in a pool's worker, started with its job"
    return _JOB.run(rows)


def _merge(tally: FallbackTally, part: FallbackTally) -> None:
    """Adds ``part`` (the next rows in series order) to ``tally``; errors keep the order of
    their first occurrence, as one loop over all the series gives them."""
    tally.short += part.short
    tally.longest_short = max(tally.longest_short, part.longest_short)
    tally.failed += part.failed
    for reason, count in part.errors.items():
        tally.errors[reason] = tally.errors.get(reason, 0) + count
