"""Rolling-origin backtest protocol: where each window's training data ends and its test begins."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.errors import InputError


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

    @property
    def stride(self) -> int:
        return self.step or self.horizon

    @property
    def test_length(self) -> int:
        """Periods from the first test period to the end of the panel."""
        return self.horizon + self.stride * (self.windows - 1)

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


def keep_active_series(panel: Panel, protocol: BacktestProtocol, lookback: int,
                       min_nonzero: int) -> Panel:
    """Keep series with at least ``min_nonzero`` non-zero periods among the ``lookback`` periods
    before the protocol's test part (selection never looks at the test part)."""
    periods = panel.periods.sort()
    test_start = protocol.test_start(periods)
    start_index = periods.to_list().index(test_start)
    window_start = periods[max(0, start_index - lookback)]
    counts = (panel.data.filter(pl.col("timestamp").is_between(window_start, test_start,
                                                               closed="left"))
              .group_by(SERIES_KEY).agg((pl.col("y") > 0).sum().alias("nonzero")))
    active = counts.filter(pl.col("nonzero") >= min_nonzero)
    kept = panel.select_series(active)
    kept.log = {**panel.log, "series": kept.n_series, "rows": kept.data.height,
                "series_dropped_inactive": panel.n_series - kept.n_series}
    return kept
