"""A dataset: its spec and loaded tables, turned into panels on demand."""

from __future__ import annotations

from dataclasses import dataclass

from salesfusion.data.panel import Panel, build_panel
from salesfusion.data.spec import DatasetSpec
from salesfusion.data.validate import Tables


@dataclass
class Dataset:
    name: str
    spec: DatasetSpec
    tables: Tables

    def panel(self, freq: str | None = None) -> Panel:
        return build_panel(self.tables, freq)
