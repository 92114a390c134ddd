"""What ``train`` shows while a model fits: LightGBM's boosting rounds and a neural model's epochs,
with the time elapsed and left. On a terminal, Rich bars; otherwise plain lines (one when a stage
starts, one every ``PLAIN_EVERY`` seconds with the time left, one when it ends), because a
fit whose output goes to a log must still say how far it got and how long it will take.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from salesfusion.evaluation.progress import format_seconds
from salesfusion.training.fit_progress import FitStep

PLAIN_EVERY = 15.0  # seconds between two plain progress lines of one stage


class FitDisplay:
    """Listens to a fit (``training.fit_progress.listen_to_fit(display.step)``) and shows it."""

    def __init__(self, console: Console, model: str, title: str) -> None:
        self.console, self.model = console, model
        self._stage: str | None = None
        self._stage_started = self._last_line = time.perf_counter()
        self._bars: Progress | None = None
        self._task: TaskID | None = None
        if console.is_terminal:
            self._bars = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                TextColumn("{task.fields[count]}"), TimeElapsedColumn(),
                TextColumn("left"), TimeRemainingColumn(), console=console, transient=False)
            self._bars.start()
            self._bars.add_task(title, total=None, count="")
        else:
            self._line(title)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None

    def _line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def step(self, step: FitStep) -> None:
        now = time.perf_counter()
        if step.stage != self._stage:
            self._start_stage(step, now)
        if step.finished:
            self._finish_stage(step, now)
            return
        if self._bars is not None and self._task is not None:
            self._bars.update(self._task, completed=step.done,
                              count=f"{step.done:,.0f}/{step.total:,} {step.unit}")
        elif now - self._last_line >= PLAIN_EVERY:
            self._last_line = now
            self._line(f"[{self.model}] {step.stage}: {step.done:,.1f}/{step.total:,} "
                       f"{step.unit}, {format_seconds(now - self._stage_started)} elapsed, "
                       f"{self._left(step, now)}")

    def _start_stage(self, step: FitStep, now: float) -> None:
        self._stage, self._stage_started, self._last_line = step.stage, now, now
        if self._bars is not None:
            self._task = self._bars.add_task(f"{self.model}: {step.stage}", total=step.total,
                                             count=f"0/{step.total:,} {step.unit}")
            return
        sooner = " (early stopping may end it sooner)" if step.may_stop_early else ""
        self._line(f"[{self.model}] {step.stage}: up to {step.total:,} {step.unit}{sooner}")

    def _finish_stage(self, step: FitStep, now: float) -> None:
        took = format_seconds(now - self._stage_started)
        ended = (f"stopped early after {step.done:,.0f} of {step.total:,} {step.unit}"
                 if step.done < step.total else f"{step.done:,.0f} {step.unit}")
        if self._bars is not None and self._task is not None:
            self._bars.update(self._task, total=max(step.done, 1), completed=max(step.done, 1),
                              count=ended)
        else:
            self._line(f"[{self.model}] {step.stage}: {ended} in {took}")
        self._stage = None

    def _left(self, step: FitStep, now: float) -> str:
        if step.done <= 0:
            return "time left not known yet"
        left = (now - self._stage_started) / step.done * (step.total - step.done)
        return (f"at most {format_seconds(left)} left" if step.may_stop_early
                else f"about {format_seconds(left)} left")
