"""Chronological splits. Tuning may look at the validation part only, never at the test part.

Two splits, both by whole periods in time order: ``chronological_split`` cuts a panel into
train / validation / test parts (7:2:1 by default, seed 003), and ``ValidationPeriods`` is the
one rule every model uses inside ``fit``: the last ``horizon`` periods of the data it is given
are its validation part (early stopping, best-checkpoint choice, the tuning score), and no
training target may fall in them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from salesfusion.data.panel import Panel
from salesfusion.data.selection import holdout_length
from salesfusion.errors import InputError


@dataclass(frozen=True)
class ChronologicalSplit:
    train: Panel
    validation: Panel
    test: Panel
    train_end: datetime
    validation_end: datetime


def chronological_split(panel: Panel, fractions: tuple[float, float, float] = (0.7, 0.2, 0.1)
                        ) -> ChronologicalSplit:
    """Split the panel's periods in time order (7:2:1 by default, seed 003).

    Whole periods go to one part, so no period's rows are shared between parts; each part gets
    at least one period and the rounding remainder goes to the training part.
    """
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise InputError(f"split fractions must be three positive numbers summing to 1, "
                         f"got {fractions}")
    periods = panel.periods.sort()
    n = len(periods)
    if n < 3:
        raise InputError(f"a chronological split needs at least 3 periods, the panel has {n}")
    n_test = max(1, round(n * fractions[2]))
    n_validation = max(1, round(n * fractions[1]))
    n_train = n - n_test - n_validation
    if n_train < 1:
        raise InputError(f"a {fractions} split of {n} periods leaves no training period")
    train_end = periods[n_train - 1]
    validation_end = periods[n_train + n_validation - 1]
    return ChronologicalSplit(
        train=panel.until(train_end),
        validation=panel.between(periods[n_train], validation_end),
        test=panel.between(periods[n_train + n_validation], periods[n - 1]),
        train_end=train_end,
        validation_end=validation_end,
    )


@dataclass(frozen=True)
class ValidationPeriods:
    """The validation part of a training panel of ``n_periods``: its last ``horizon``."""

    n_periods: int
    horizon: int

    @property
    def start(self) -> int:
        """Index of the first validation period."""
        return max(self.n_periods - self.horizon, 0)

    def is_validation(self, period_index: np.ndarray) -> np.ndarray:
        """Which target periods (indices into the panel's periods) are validation periods."""
        return np.asarray(period_index) >= self.start

    def split(self, panel: Panel) -> tuple[Panel, Panel]:
        """(the periods before the validation part, the validation part)."""
        periods = panel.periods.sort()
        if self.start < 1:
            raise InputError(f"a validation part of {self.horizon} periods leaves no training "
                             f"period in a panel of {len(periods)}")
        return (panel.until(periods[self.start - 1]),
                panel.between(periods[self.start], periods[len(periods) - 1]))


class DeclaredProtocol(Protocol):
    """What a bundled dataset declares of its benchmark protocol (``datasets.base.Benchmark``);
    a protocol type so that the data layer does not import the datasets above it."""

    horizon: int
    windows: int
    step: int | None
    refit: bool


class BacktestProtocol(BaseModel):
    """``windows`` forecasts of ``horizon`` periods whose origins are ``step`` periods apart.

    The last window ends on the panel's last period. ``refit`` re-trains the model at every origin
    on all data up to it; otherwise the model trained at the first origin forecasts every window
    from the data known at that window's origin.
    """

    model_config = ConfigDict(frozen=True)
    horizon: int = Field(4, ge=1)
    windows: int = Field(3, ge=1)
    step: int | None = Field(None, ge=1)  # defaults to the horizon (non-overlapping windows)
    refit: bool = True

    @classmethod
    def from_benchmark(cls, benchmark: DeclaredProtocol) -> BacktestProtocol:
        """The protocol a bundled dataset declares (``Dataset.benchmark``)."""
        return cls(horizon=benchmark.horizon, windows=benchmark.windows, step=benchmark.step,
                   refit=benchmark.refit)

    @property
    def stride(self) -> int:
        return self.step or self.horizon

    @property
    def test_length(self) -> int:
        """Periods from the first test period to the end of the panel."""
        return holdout_length(self.horizon, self.windows, self.step)

    def origins(self, periods: pl.Series) -> list[datetime]:
        """The last training period of each window, oldest first."""
        periods = periods.sort()
        first_test = len(periods) - self.test_length
        if first_test < 1:
            raise InputError(f"the panel has {len(periods)} periods, too few for {self.windows} "
                             f"window(s) of horizon {self.horizon} with step {self.stride} "
                             f"(needs at least {self.test_length + 1})")
        return [periods[first_test - 1 + w * self.stride] for w in range(self.windows)]

    def test_start(self, periods: pl.Series) -> datetime:
        periods = periods.sort()
        return periods[len(periods) - self.test_length]

