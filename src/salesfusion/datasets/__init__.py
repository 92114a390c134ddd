"""Bundled datasets, by name."""

from __future__ import annotations

from collections.abc import Callable

from salesfusion.datasets.base import Benchmark, Dataset
from salesfusion.datasets.online_retail import online_retail, or_weekly
from salesfusion.datasets.synthetic import synthetic
from salesfusion.errors import InputError

DATASETS: dict[str, Callable[[], Dataset]] = {"online_retail": online_retail,
                                              "synthetic": synthetic}


def load_dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise InputError(f"unknown dataset '{name}'; bundled datasets are {sorted(DATASETS)}")
    return DATASETS[name]()


__all__ = ["DATASETS", "Benchmark", "Dataset", "load_dataset", "online_retail", "or_weekly",
           "synthetic"]
