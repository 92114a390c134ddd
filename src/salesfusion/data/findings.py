"""A finding of the cross-table checks (``data.crosscheck``, ``data.image_check``): its level,
a stable name, a count, the first ids and a one-line message."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from salesfusion.data.columns import shown

Level = Literal["error", "warning"]
SHOWN = 5


@dataclass(frozen=True)
class Finding:
    level: Level
    check: str  # a stable name, e.g. "items_without_sales"
    count: int
    first: tuple[str, ...]
    message: str  # one line, with the count and the first ids

    def line(self) -> str:
        return f"{self.level}: {self.message}"


def first_ids(values: Iterable[object]) -> tuple[str, ...]:
    """The first few ``values`` as they are shown in messages (``columns.shown``)."""
    return tuple(shown(v) for v in list(values)[:SHOWN])


def listed(first: tuple[str, ...]) -> str:
    return ", ".join(first)
