"""A dataset: its spec and loaded tables, turned into panels on demand."""

from __future__ import annotations

from dataclasses import dataclass

from salesfusion.data.panel import Panel, build_panel
from salesfusion.data.selection import holdout_length, keep_active_series
from salesfusion.data.spec import DatasetSpec
from salesfusion.data.validate import Tables


@dataclass(frozen=True)
class Benchmark:
    """How a bundled dataset is evaluated by default, as plain values.

    The rolling-origin protocol: ``windows`` forecasts of ``horizon`` periods whose origins are
    ``step`` periods apart (default: the horizon), re-trained at every origin when ``refit``
    (``data.splits.BacktestProtocol.from_benchmark`` builds it). The series kept: those
    with at least ``min_nonzero`` non-zero periods among the ``lookback`` periods before the
    test part (all series when ``min_nonzero`` is None).
    """

    horizon: int
    windows: int
    step: int | None = None
    refit: bool = True
    min_nonzero: int | None = None
    lookback: int | None = None

    @property
    def holdout(self) -> int:
        """Periods of the protocol's test part."""
        return holdout_length(self.horizon, self.windows, self.step)

    def select(self, panel: Panel) -> Panel:
        """The panel's series this benchmark keeps."""
        if not self.min_nonzero:
            return panel
        return keep_active_series(panel, self.holdout, lookback=self.lookback
                                  or len(panel.periods), min_nonzero=self.min_nonzero)


@dataclass
class Dataset:
    name: str
    spec: DatasetSpec
    tables: Tables
    benchmark: Benchmark | None = None  # its default protocol and series selection

    def panel(self, freq: str | None = None) -> Panel:
        return build_panel(self.tables, freq)
