"""Hearing how far a fit has got, from outside the model: ``train`` shows a LightGBM model's
boosting rounds and a neural model's epochs with the time left, without ``fit`` taking a
progress argument.

A listener is set for a block of code (``listen_to_fit``) and reaches every fit inside it through
a context variable, as ``training.hooks`` does for tuning. Nothing here imports torch or
lightgbm: LightGBM's fit reports through ``boosting_callbacks``, the neural trainer through its own
Lightning callback (``training.trainer``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FitStep:
    """How far one stage of a fit has got."""

    stage: str  # "probe fit", "final fit", "training"
    done: float  # rounds or epochs done (fractional epochs while an epoch runs)
    total: int  # rounds or epochs at most
    unit: str  # "rounds" or "epochs"
    may_stop_early: bool  # early stopping can end the stage before ``total``
    finished: bool = False  # the stage's last report (``done`` is where it ended)


FitListener = Callable[[FitStep], None]
_LISTENER: ContextVar[FitListener | None] = ContextVar("salesfusion_fit_listener", default=None)


@contextmanager
def set_for_block(variable: ContextVar[Any], value: Any) -> Iterator[None]:
    """``variable`` holds ``value`` inside the block and what it held before after it (how the
    fit and epoch listeners reach a fit without a parameter)."""
    token = variable.set(value)
    try:
        yield
    finally:
        variable.reset(token)


def listen_to_fit(listener: FitListener) -> AbstractContextManager[None]:
    return set_for_block(_LISTENER, listener)


def fit_listener() -> FitListener | None:
    """The listener of the current block, if any."""
    return _LISTENER.get()


def boosting_callbacks(stage: str, total: int, may_stop_early: bool) -> list[Any]:
    """LightGBM ``callbacks`` that report each boosting round to the current listener: none
    when nobody listens, so a fit without a listener runs exactly as before."""
    listener = _LISTENER.get()
    if listener is None:
        return []

    def report(env: Any) -> None:
        listener(FitStep(stage, env.iteration + 1, total, "rounds", may_stop_early))

    report.order = 40  # type: ignore[attr-defined]  # after LightGBM's early-stopping check
    return [report]


def stage_finished(stage: str, done: int, total: int, unit: str) -> None:
    """Tell the current listener that ``stage`` ended after ``done`` rounds or epochs."""
    listener = _LISTENER.get()
    if listener is not None:
        listener(FitStep(stage, done, total, unit, False, finished=True))
