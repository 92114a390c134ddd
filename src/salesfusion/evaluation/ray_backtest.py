"""Backtests on Ray: every (model, window) fit-and-forecast is a task, run side by side.

With ``refit`` each window of a rolling backtest is independent (its own fit on the history up
to its origin), so the windows of every model run as separate tasks; without refit, and for the
launch protocol, a model's windows share one fit and the model is one task. The panel is put
in the object store once. Tasks return the same frames the local loop builds (the same
functions, ``run_backtest``'s window step), and the driver assembles them in window order, so a
Ray backtest writes the forecasts of a local one; progress is reported as tasks finish.
Seconds per model are the sum of its tasks' own wall times (work done, not time waited).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from salesfusion.data.launch_splits import LaunchProtocol
from salesfusion.data.splits import BacktestProtocol
from salesfusion.evaluation.launch import run_launch_backtest
from salesfusion.evaluation.progress import BacktestProgress, failure_text
from salesfusion.models.backtest import WindowDone, backtest_window, run_backtest

if TYPE_CHECKING:
    from salesfusion.data.panel import Panel
    from salesfusion.models.base import Forecaster


@dataclass
class TaskResult:
    """What one task sends back: its frame and the windows it ran."""

    frame: pl.DataFrame
    done: list[WindowDone] = field(default_factory=list)


def _one_window(model: Forecaster, panel: Panel, protocol: BacktestProtocol,
                window: int) -> TaskResult:
    frame, _, done = backtest_window(model, panel, protocol, window)
    return TaskResult(frame, [done])


def _whole_model(model: Forecaster, panel: Panel,
                 protocol: BacktestProtocol | LaunchProtocol) -> TaskResult:
    done: list[WindowDone] = []
    run = run_launch_backtest if isinstance(protocol, LaunchProtocol) else run_backtest
    return TaskResult(run(model, panel, protocol, on_window=done.append), done)


def run_models_on_ray(panel: Panel, models: list[Forecaster],
                      protocol: BacktestProtocol | LaunchProtocol,
                      progress: BacktestProgress) -> dict[str, TaskResult | Exception]:
    """Every model's backtest as Ray tasks on the running Ray session (``ray_session``): per
    model name, its windows' frames in window order and what they reported, or the error
    that stopped it."""
    import ray

    one_window = ray.remote(num_cpus=1)(_one_window)
    whole_model = ray.remote(num_cpus=1)(_whole_model)
    panel_ref = ray.put(panel)
    pending: dict[Any, tuple[str, int]] = {}
    split = isinstance(protocol, BacktestProtocol) and protocol.refit
    for model in models:
        progress.model_started(model.name, protocol.windows)
        if split:
            for window in range(protocol.windows):
                pending[one_window.remote(model, panel_ref, protocol, window)] = (model.name,
                                                                                  window)
        else:
            pending[whole_model.remote(model, panel_ref, protocol)] = (model.name, 0)
    parts: dict[str, dict[int, TaskResult]] = {m.name: {} for m in models}
    failed: dict[str, Exception] = {}
    waiting = list(pending)
    while waiting:
        finished, waiting = ray.wait(waiting, num_returns=1)
        name, window = pending[finished[0]]
        try:
            result = ray.get(finished[0])
        except Exception as error:  # one model's failure must not lose the others' results
            if name not in failed:
                failed[name] = _cause(error)
                progress.model_failed(name, failure_text(failed[name]))
            continue
        parts[name][window] = result
        if name not in failed:
            for done in result.done:
                progress.window_done(done)
    outcome: dict[str, TaskResult | Exception] = dict(failed)
    for name, windows in parts.items():
        if name in failed:
            continue
        ordered = [windows[w] for w in sorted(windows)]
        outcome[name] = TaskResult(pl.concat([r.frame for r in ordered], how="diagonal"),
                                   [d for r in ordered for d in r.done])
    return outcome


def _cause(error: Exception) -> Exception:
    """The task's own exception rather than Ray's wrapper, when Ray kept it."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, Exception) else error
