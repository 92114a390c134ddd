"""What a backtest shows while it runs.

The evaluation layer reports through the small ``BacktestProgress`` protocol and never imports
the CLI. ``SilentProgress`` (the Python API's default) says nothing; ``ConsoleProgress`` writes to
a Rich console: bars on a terminal, and one plain line per model and window otherwise, because a
run whose output goes to a file must still show how far it got and how long each step took.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Protocol, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from salesfusion.models.backtest import WindowDone


class BacktestProgress(Protocol):
    """What a backtest reports while it runs."""

    def model_started(self, model: str, windows: int) -> None: ...

    def window_done(self, done: WindowDone) -> None: ...

    def model_done(self, model: str, seconds: float, notes: Sequence[str]) -> None: ...

    def model_failed(self, model: str, error: str) -> None: ...


class SilentProgress:
    """Reports nothing."""

    def model_started(self, model: str, windows: int) -> None:
        pass

    def window_done(self, done: WindowDone) -> None:
        pass

    def model_done(self, model: str, seconds: float, notes: Sequence[str]) -> None:
        pass

    def model_failed(self, model: str, error: str) -> None:
        pass


def format_seconds(seconds: float) -> str:
    """``4.2 s``, ``31 s``, ``12 min 5 s``, ``2 h 3 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 120:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


class ConsoleProgress:
    """Backtest progress on a Rich console; ``console.is_terminal`` picks bars or plain lines.

    Use it as a context manager so that the bars stop however the run ends. Elapsed times count
    from its creation.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self._started = time.perf_counter()
        self._bars: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def line(self, text: str) -> None:
        """One log line, printed as given (no markup, no highlighting, never wrapped by us)."""
        self.console.print(text, markup=False, highlight=False)

    def model_started(self, model: str, windows: int) -> None:
        if not self.live:
            self.line(f"[{model}] backtesting {windows} window(s)")
            return
        if self._bars is None:
            self._bars = Progress(
                TextColumn("[bold]{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("windows"), TimeElapsedColumn(), console=self.console)
            self._bars.start()
        self._tasks[model] = self._bars.add_task(model, total=windows)

    def window_done(self, done: WindowDone) -> None:
        if self._bars is not None and done.model in self._tasks:
            self._bars.advance(self._tasks[done.model])
            return
        work = "fit+predict" if done.refitted else "predict"
        self.line(f"[{done.model}] window {done.window + 1}/{done.windows} "
                  f"(origin {done.origin:%Y-%m-%d}): {work} {format_seconds(done.seconds)}, "
                  f"elapsed {format_seconds(self.elapsed)}")

    def model_done(self, model: str, seconds: float, notes: Sequence[str]) -> None:
        if not self.live:
            self.line(f"[{model}] done in {format_seconds(seconds)}")
        for note in notes:
            self.line(f"[{model}] note: {note}")

    def model_failed(self, model: str, error: str) -> None:
        if self._bars is not None and model in self._tasks:
            self._bars.update(self._tasks[model], description=f"{model} (failed)")
        self.line(f"[{model}] failed: {error}; the other models go on")

    @contextmanager
    def stage(self, text: str, spinner: bool = True) -> Iterator[None]:
        """A step outside the model loop (building the panel, writing the report): a spinner on
        a terminal, and a closing line with its wall time. No start line when output is not a
        terminal: a step that fails on bad input then leaves the error as the only line.

        ``spinner=False`` leaves the terminal spinner to the wrapped code when it shows its own.
        """
        started = time.perf_counter()
        if self.live and spinner:
            with self.console.status(text):
                yield
        else:
            yield
        self.line(f"{text}: done in {format_seconds(time.perf_counter() - started)}")

    def finished(self, what: str) -> None:
        """The closing line: ``what`` finished in the total elapsed time."""
        self.line(f"{what} finished in {format_seconds(self.elapsed)}")


def failure_text(error: BaseException) -> str:
    """A model's failure as one line of at most 500 characters (its exception type and message),
    as the progress lines, the summary and ``failures.json`` show it."""
    return " ".join(f"{type(error).__name__}: {error}".split())[:500]
