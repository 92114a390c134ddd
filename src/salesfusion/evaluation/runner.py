"""Backtest several models on one panel with progress, timing, notes and the output files."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from salesfusion.data.launch_splits import LaunchProtocol
from salesfusion.data.panel import Panel
from salesfusion.data.splits import BacktestProtocol
from salesfusion.errors import InputError
from salesfusion.evaluation.backtest import metrics_table
from salesfusion.evaluation.launch import run_launch_backtest, since_launch_metrics
from salesfusion.evaluation.progress import BacktestProgress, SilentProgress, failure_text
from salesfusion.models.backtest import WindowDone, run_backtest
from salesfusion.models.registry import create_model, model_class

if TYPE_CHECKING:
    from salesfusion.models.base import Forecaster


# Metrics a summary shows only when some model has them: WRMSSE needs revenue or prices.
ONLY_WHERE_SCORED = ("WRMSSE",)


@dataclass
class ModelNote:
    """One thing a model noted while fitting (a fallback, masked inputs, epochs run) and the
    backtest windows (0-based, as in ``forecasts.parquet``) whose fit noted it."""

    text: str
    windows: list[int]

    def describe(self, of_windows: int) -> str:
        """The note, with the windows it came from unless it came from every one."""
        if len(self.windows) == of_windows:
            return self.text
        shown = ", ".join(str(w + 1) for w in self.windows)
        return f"{self.text} (window{'s' if len(self.windows) > 1 else ''} {shown} "\
               f"of {of_windows})"


@dataclass
class BacktestRun:
    """Everything a backtest of several models produced."""

    panel: Panel
    protocol: BacktestProtocol | LaunchProtocol
    forecasts: pl.DataFrame
    metrics: pl.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)
    notes: dict[str, list[ModelNote]] = field(default_factory=dict)
    # Models that raised during their backtest: their error, one line each. The other models'
    # results stand; the command's exit code says that some failed.
    failures: dict[str, str] = field(default_factory=dict)
    # What each model's y_pred is: "mean" or "median" (reports show it beside the scores).
    points: dict[str, str] = field(default_factory=dict)

    def summary(self, metrics: tuple[str, ...] = ("WAPE", "bias_pct", "RMSSE", "WRMSSE", "MASE",
                                                  "sMAPE", "RMSE")) -> pl.DataFrame:
        """Overall metrics per model over all windows, sorted by the first metric, with the
        point forecast each gives and wall time. WRMSSE is left out where no model has it (data
        without prices); the other metrics stay, empty where undefined."""
        overall = (self.metrics.filter((pl.col("window") == "all") & (pl.col("segment") == "all")
                                       & pl.col("metric").is_in(metrics))
                   .pivot(on="metric", index="model", values="value"))
        timing = pl.DataFrame({"model": list(self.seconds),
                               "seconds": list(self.seconds.values())})
        point = pl.DataFrame({"model": list(self.points), "point": list(self.points.values())},
                             schema={"model": pl.String, "point": pl.String})
        return (overall.join(point, on="model", how="left").join(timing, on="model", how="left")
                .select("model", "point", *[m for m in metrics if m in overall.columns
                                            and (m not in ONLY_WHERE_SCORED
                                                 or overall[m].null_count() < overall.height)],
                        "seconds")
                .sort(metrics[0], nulls_last=True))

    def write(self, folder: Path, forecasts: bool = True) -> None:
        """``metrics.csv`` and ``forecasts.parquet`` (the output contract; not with
        ``forecasts=False``, for a caller writing them in another form), ``timings.csv``
        (wall seconds of each model's fits and forecasts over every window) and ``notes.json``
        (every model, with what it noted and in which windows:
        ``{"model": [{"note": "...", "windows": [0, 1]}]}``)."""
        self.metrics.write_csv(folder / "metrics.csv", float_precision=6)
        if "period_since_launch" in self.forecasts.columns:
            since_launch_metrics(self.forecasts).write_csv(
                folder / "metrics_since_launch.csv", float_precision=6)
        if forecasts:
            self.forecasts.write_parquet(folder / "forecasts.parquet")
        pl.DataFrame({"model": list(self.seconds), "seconds": list(self.seconds.values())},
                     schema={"model": pl.String, "seconds": pl.Float64}).write_csv(
            folder / "timings.csv", float_precision=2)
        notes = {model: [{"note": n.text, "windows": n.windows} for n in kept]
                 for model, kept in self.notes.items()}
        (folder / "notes.json").write_text(json.dumps(notes, indent=2) + "\n")
        if self.failures:
            (folder / "failures.json").write_text(json.dumps(self.failures, indent=2) + "\n")


def backtest_models(panel: Panel, models: list[str | Forecaster],
                    protocol: BacktestProtocol | LaunchProtocol,
                    progress: BacktestProgress | None = None, *,
                    on_ray: bool = False) -> BacktestRun:
    """Backtest each model on the panel under one protocol, telling ``progress`` (silent by
    default) of every model and window.

    A model is a registered name (built with its defaults and the protocol's horizon) or a
    configured instance; results are keyed by model name, so give each name once. A
    ``LaunchProtocol`` runs the launch backtest (``evaluation.launch``) and takes only models
    that forecast from a launch date. ``on_ray``: the models' windows run as tasks of the
    running Ray session (``evaluation.ray_backtest``), with the same results.
    """
    launch = isinstance(protocol, LaunchProtocol)
    for model in models:
        # An unknown name, or a model the protocol cannot run, fails before any work is done.
        cls = model_class(model) if isinstance(model, str) else type(model)
        if launch and not cls.supports_launch:
            raise InputError(f"model '{cls.name}' cannot forecast from a launch date, so the "
                             f"launch protocol cannot score it")
    progress = progress or SilentProgress()
    built = [create_model(given, horizon=protocol.horizon) if isinstance(given, str) else given
             for given in models]
    results = (_on_ray(panel, built, protocol, progress) if on_ray
               else _in_process(panel, built, protocol, progress))
    forecasts, seconds, notes = [], {}, {}
    failures: dict[str, str] = {}
    for model in built:
        result = results[model.name]
        if isinstance(result, Exception):
            failures[model.name] = failure_text(result)
            continue
        frame, done, seconds[model.name] = result
        forecasts.append(frame)
        notes[model.name] = _model_notes(done)
    if not forecasts:
        first, message = next(iter(failures.items()))
        raise InputError(f"every model failed; {first}: {message}")
    all_forecasts = pl.concat(forecasts, how="diagonal")
    return BacktestRun(panel=panel, protocol=protocol, forecasts=all_forecasts,
                       metrics=metrics_table(all_forecasts), seconds=seconds, notes=notes,
                       failures=failures, points={m.name: m.point for m in built})


ModelResult = tuple[pl.DataFrame, list[WindowDone], float] | Exception


def _in_process(panel: Panel, models: list[Forecaster],
                protocol: BacktestProtocol | LaunchProtocol,
                progress: BacktestProgress) -> dict[str, ModelResult]:
    """Each model in turn: (forecasts, windows, wall seconds) or the error that stopped it."""
    results: dict[str, ModelResult] = {}
    run = run_launch_backtest if isinstance(protocol, LaunchProtocol) else run_backtest
    for model in models:
        progress.model_started(model.name, protocol.windows)
        done: list[WindowDone] = []

        def heard(window: WindowDone, done: list[WindowDone] = done) -> None:
            done.append(window)
            progress.window_done(window)

        started = time.perf_counter()
        try:
            frame = run(model, panel, protocol, on_window=heard)
        except Exception as error:  # one model's failure must not lose the others' results
            results[model.name] = error
            progress.model_failed(model.name, failure_text(error))
            continue
        results[model.name] = (frame, done, time.perf_counter() - started)
        progress.model_done(model.name, results[model.name][2],
                            [n.describe(protocol.windows) for n in _model_notes(done)])
    return results


def _model_notes(done: list[WindowDone]) -> list[ModelNote]:
    """Each note once, with the windows whose fit noted it (notes repeat at every refit)."""
    kept: dict[str, list[int]] = {}
    for window in done:
        for note in dict.fromkeys(window.notes):
            kept.setdefault(note, []).append(window.window)
    return [ModelNote(text, windows) for text, windows in kept.items()]


def _on_ray(panel: Panel, models: list[Forecaster], protocol: BacktestProtocol | LaunchProtocol,
            progress: BacktestProgress) -> dict[str, ModelResult]:
    from salesfusion.evaluation.ray_backtest import run_models_on_ray

    results: dict[str, ModelResult] = {}
    for name, result in run_models_on_ray(panel, models, protocol, progress).items():
        if isinstance(result, Exception):
            results[name] = result
            continue
        results[name] = (result.frame, result.done, sum(d.seconds for d in result.done))
        progress.model_done(name, results[name][2], [
            n.describe(protocol.windows) for n in _model_notes(result.done)])
    return results
