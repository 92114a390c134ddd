"""The bundled Online Retail data (UCI; Chen et al. 2012) and its standard "OR-weekly" panel."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from salesfusion.data.panel import Panel
from salesfusion.data.spec import load_spec
from salesfusion.data.validate import load_tables
from salesfusion.datasets.base import Benchmark, Dataset

DATA_DIR = Path(str(files("salesfusion.datasets") / "data"))

# The OR-weekly benchmark (docs/benchmarks.md, "The OR-weekly benchmark"): fixed so that results are
# comparable across versions and with other libraries.
OR_WEEKLY = Benchmark(horizon=4, windows=3, step=4, refit=True, min_nonzero=20, lookback=40)


def online_retail() -> Dataset:
    """The Online Retail transactions with their spec, items, markets and ECB rates."""
    spec = load_spec(DATA_DIR / "online_retail.yaml")
    return Dataset(name="online_retail", spec=spec, tables=load_tables(spec), benchmark=OR_WEEKLY)


def or_weekly(dataset: Dataset | None = None) -> Panel:
    """The standard OR-weekly panel: weekly units per (product, country), active series only."""
    return OR_WEEKLY.select((dataset or online_retail()).panel("W"))
