"""One cell of an experiment: a model variant on a dataset with one seed, evaluated as the
experiment says; and the tuning step that may precede a model's trials.

A finished cell is a folder (``cells/<dataset>/<model>/trial-<k>/``) holding its forecasts and
``cell.json`` (its key, wall time and notes). It is written in a staging folder beside it and
renamed into place in one step, so a cell killed at any instant leaves either nothing or a
complete folder; a rerun skips every cell whose folder holds the same key.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl

from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.errors import InputError
from salesfusion.experiments.config import Cell, DatasetEntry, Evaluation
from salesfusion.models.presets import resolve_model
from salesfusion.scoring.selection import DEFAULT_METRIC
from salesfusion.staging import staging_folder

CELL_RECORD = "cell.json"


@lru_cache(maxsize=4)
def load_panel(dataset: DatasetEntry, max_series: int | None, launches: bool = False) -> Panel:
    """The dataset's panel, cached per process: a bundled dataset with its benchmark's series
    selection (series active before the test part), except for a launch evaluation, whose test
    series are exactly those not yet active; with ``max_series``, the series with the most
    demand."""
    from salesfusion.data.crosscheck import crosscheck
    from salesfusion.data.panel import build_panel
    from salesfusion.data.spec import load_spec
    from salesfusion.data.validate import load_tables
    from salesfusion.datasets import load_dataset

    if dataset.name is not None:
        bundled = load_dataset(dataset.name)
        panel = bundled.panel(dataset.freq)
        if bundled.benchmark is not None and not launches:
            panel = bundled.benchmark.select(panel)
    else:
        tables = load_tables(load_spec(Path(str(dataset.spec))))
        panel = build_panel(tables, dataset.freq)
        crosscheck(tables, panel).raise_for_errors()
    if max_series is not None and panel.n_series > max_series:
        totals = (panel.data.group_by(SERIES_KEY).agg(pl.col("y").sum().alias("_total"))
                  .sort("_total", *SERIES_KEY, descending=[True, False, False])
                  .head(max_series))
        panel = panel.select_series(totals.select(SERIES_KEY))
    return panel


def protocol_for(evaluation: Evaluation, dataset: DatasetEntry, panel: Panel,
                 horizon: int | None) -> Any:
    """The evaluation as a backtest or launch protocol on this dataset's panel."""
    from salesfusion.data.launch_splits import LaunchProtocol
    from salesfusion.data.splits import BacktestProtocol, chronological_split
    from salesfusion.datasets import load_dataset

    if evaluation.kind == "launch":
        return LaunchProtocol(**{"horizon": evaluation.horizon or horizon or 8,
                                 **evaluation.launch})
    if evaluation.kind == "split":
        split = chronological_split(panel, evaluation.fractions)
        test_periods = len(split.test.periods)
        step = evaluation.horizon or horizon or 4
        windows = max(1, test_periods // step)
        return BacktestProtocol(horizon=min(step, test_periods), windows=windows,
                                refit=False)
    base = BacktestProtocol()
    if dataset.name is not None and (benchmark := load_dataset(dataset.name).benchmark):
        base = BacktestProtocol.from_benchmark(benchmark)
    return BacktestProtocol(
        horizon=evaluation.horizon or base.horizon,
        windows=evaluation.windows or base.windows, step=evaluation.step or base.step,
        refit=base.refit if evaluation.refit is None else evaluation.refit)


def test_periods(protocol: Any, panel: Panel) -> int:
    """Periods from the first one any cell is scored on to the end (kept from tuning)."""
    from salesfusion.data.launch_splits import LaunchProtocol

    if isinstance(protocol, LaunchProtocol):
        first = min(protocol.cutoff_periods(panel))
        return int((panel.periods > first).sum())
    return protocol.test_length


def model_params(cell: Cell, tuned: dict[str, Any] | None) -> dict[str, Any]:
    """The variant's parameters, the tuned ones, and the trial's seed (models with one)."""
    from salesfusion.tuning.runner import trial_params

    return trial_params(resolve_model(cell.variant.entry.name), cell.variant.params,
                        tuned or {}, cell.seed)


def seeded(cell: Cell) -> bool:
    return "seed" in resolve_model(cell.variant.entry.name).Config.model_fields


def run_cell(cell: Cell, evaluation: Evaluation, max_series: int | None,
             tuned: dict[str, Any] | None, folder: Path, key: str) -> dict[str, Any]:
    """Evaluate the cell and publish its folder; returns its record."""
    from salesfusion.data.launch_splits import LaunchProtocol
    from salesfusion.evaluation.launch import run_launch_backtest
    from salesfusion.models.backtest import run_backtest

    started = time.perf_counter()
    panel = load_panel(cell.dataset, max_series, evaluation.kind == "launch")
    model_type = resolve_model(cell.variant.entry.name)
    model = model_type(**model_params(cell, tuned))
    horizon = getattr(model.config, "horizon", None)
    protocol = protocol_for(evaluation, cell.dataset, panel, horizon)
    notes: list[str] = []

    def heard(done: Any) -> None:
        notes.extend(n for n in done.notes if n not in notes)

    if isinstance(protocol, LaunchProtocol):
        forecasts = run_launch_backtest(model, panel, protocol, on_window=heard)
    else:
        forecasts = run_backtest(model, panel, protocol, on_window=heard)
    forecasts = forecasts.with_columns(
        pl.lit(cell.dataset.key).alias("dataset"), pl.lit(cell.variant.label).alias("model"),
        pl.lit(cell.trial).alias("trial"), pl.lit(cell.seed).alias("seed"))
    record = {"key": key, "dataset": cell.dataset.key, "model": cell.variant.label,
              "trial": cell.trial, "seed": cell.seed, "seconds": time.perf_counter() - started,
              "notes": notes, "params": model_params(cell, tuned), "horizon": protocol.horizon,
              "levels": cell.variant.levels}
    publish_cell(folder, forecasts, record)
    return record


def publish_cell(folder: Path, forecasts: pl.DataFrame, record: dict[str, Any]) -> None:
    """Write the cell in a staging folder and rename it into place (see the module doc)."""
    staging = staging_folder(folder)  # a killed writer's is removed by the next one
    forecasts.write_parquet(staging / "forecasts.parquet")
    (staging / CELL_RECORD).write_text(json.dumps(record, indent=1, default=str))
    if folder.exists():
        if read_cell(folder) is None:  # not a cell we wrote: never removed
            shutil.rmtree(staging)
            raise InputError(f"{folder}: in the way of a cell and not written by salesfusion; "
                             f"move it or use another --out")
        # An earlier result of this cell under another key (a changed configuration).
        stale = staging_folder(folder)  # marked as ours, so a kill here leaves nothing behind
        os.replace(folder, stale / "earlier")
        os.replace(staging, folder)
        shutil.rmtree(stale)
    else:
        os.replace(staging, folder)


def read_cell(folder: Path) -> dict[str, Any] | None:
    """A finished cell's record, or None."""
    try:
        return json.loads((folder / CELL_RECORD).read_text())
    except (OSError, ValueError, RecursionError):
        return None


def tune_model(entry_label: str, cell: Cell, evaluation: Evaluation, max_series: int | None,
               folder: Path, progress: Any, metric: str = DEFAULT_METRIC) -> dict[str, Any]:
    """The tuning step of a model on a dataset: a resumable search (``salesfusion tune``'s
    loop) on the periods before every scored one, by the experiment's ``metric``; the best
    parameters found."""
    from salesfusion.data.yamlfile import read_mapping
    from salesfusion.models.search_space import parse_space
    from salesfusion.provenance import provenance
    from salesfusion.tuning.log import TrialLog
    from salesfusion.tuning.objective import TuningData, check_scorable
    from salesfusion.tuning.runner import Budget, run_search
    from salesfusion.tuning.searchers import build_searcher

    step = cell.variant.entry.tune
    assert step is not None
    panel = load_panel(cell.dataset, max_series, evaluation.kind == "launch")
    model_type = resolve_model(cell.variant.entry.name)
    base = dict(cell.variant.params)
    horizon = getattr(model_type(**base).config, "horizon", None)
    protocol = protocol_for(evaluation, cell.dataset, panel, horizon)
    check_scorable(model_type(**base), metric)
    data = TuningData.from_panel(panel, test_periods(protocol, panel), horizon or
                                 protocol.horizon, metric)
    space = (parse_space(read_mapping(Path(step.space), "search space"), step.space)
             if step.space else model_type.search_space)
    if space is None:
        raise InputError(f"model '{entry_label}' has a tune step but declares no search "
                         f"space: give tune.space")
    searcher = build_searcher(step.searcher, space, 0, dict(step.options),
                              {**model_type.preset_params, **base})
    log = TrialLog(folder)
    if log.exists():
        log.open_session(provenance())
    else:
        log.create({"model": cell.variant.entry.name, "searcher": step.searcher, "seed": 0,
                    "budget": step.budget, "metric": metric}, provenance())
    result = run_search(model_type, base, searcher, data, log, Budget(step.budget), 0,
                        progress=progress)
    searcher.close()
    if result.best is None:
        return {}
    return {k: v for k, v in result.best.params.items()
            if not (isinstance(v, float) and math.isnan(v))}
