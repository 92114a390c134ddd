"""Rolling-origin backtest protocol: where each window's training data ends and its test begins."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from salesfusion.data.selection import holdout_length
from salesfusion.errors import InputError

if TYPE_CHECKING:
    from salesfusion.datasets.base import Benchmark


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
    def from_benchmark(cls, benchmark: Benchmark) -> BacktestProtocol:
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

