"""Small, hand-checkable datasets written as real files with a real YAML spec."""

from __future__ import annotations

import os

# Before numpy/torch start their thread pools: two test workers share two cores.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml


def make_shop(folder: Path, n_items: int = 12, weeks: int = 30, seed: int = 0,
              covariates: bool = True) -> Path:
    """Transactions of a small shop selling in two markets (GB in GBP, DE in EUR), an items table
    with titles, a markets table and a daily EUR-based FX table; with ``covariates``, also live-
    stream events (one scheduled after the sales end) and a weekly exogenous table with a
    future-known search trend per market and a past-only footfall index. Returns the spec path."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2021-01-04")  # a Monday
    rows = []
    for item in range(n_items):
        level = 5 + 10 * (item % 2)
        for market in ("GB", "DE"):
            scale = 1.0 if market == "GB" else 0.5
            for week in range(weeks):
                for _ in range(rng.poisson(2)):
                    day = start + np.timedelta64(int(week * 7 + rng.integers(0, 7)), "D")
                    rows.append({"sku": f"P{item:03d}", "country": market,
                                 "when": f"{day}T10:00:00",
                                 "qty": int(rng.poisson(level * scale)) + 1,
                                 "unit_price": 2.0 + item % 3, "invoice": f"I{len(rows)}"})
    sales = pl.DataFrame(rows)
    sales.write_csv(folder / "sales.csv")
    pl.DataFrame({"sku": [f"P{i:03d}" for i in range(n_items + 1)],
                  "title": [("RED MUG" if i % 2 else "BLUE LAMP") + f" STYLE {i}"
                            for i in range(n_items + 1)],
                  "weight": [float(i % 3) for i in range(n_items + 1)]}).write_csv(
        folder / "items.csv")
    pl.DataFrame({"country": ["GB", "DE"], "ccy": ["GBP", "EUR"]}).write_csv(
        folder / "markets.csv")
    days = np.arange(start - np.timedelta64(10, "D"), start + np.timedelta64(weeks * 7 + 10, "D"))
    pl.DataFrame({"Date": days.astype(str), "GBP": np.full(len(days), 0.8),
                  "USD": np.full(len(days), 1.2)}).write_csv(folder / "fx.csv")
    spec = {
        "name": "tiny_shop", "freq": "W", "currency": "GBP",
        "sales": {"path": "sales.csv", "columns": {
            "item_id": "sku", "market": "country", "timestamp": "when", "quantity": "qty",
            "price": "unit_price", "invoice": "invoice"}},
        "items": {"path": "items.csv", "columns": {"item_id": "sku", "title": "title"},
                  "static_numeric": ["weight"]},
        "markets": {"path": "markets.csv", "columns": {"market": "country", "currency": "ccy"}},
        "fx": {"path": "fx.csv", "date_column": "Date", "base_currency": "EUR"},
        "cleaning": {"cancelled_invoice_prefix": "C"},
    }
    if covariates:
        end = start + np.timedelta64(weeks * 7, "D")
        pl.DataFrame({
            "country": ["GB", "GB", "DE", "GB"],
            "aired": [str(start + np.timedelta64(d, "D")) for d in (15, 80, 120)] + [str(end)],
            "sku": ["P001", "P002", "P001", "P003"],
            "viewers": [1200, 5000, 800, 3000]}).write_csv(folder / "events.csv")
        week_starts = start + np.arange(weeks + 8) * np.timedelta64(7, "D")
        pl.DataFrame({
            "week": np.tile(week_starts.astype(str), 2),
            "country": ["GB"] * len(week_starts) + ["DE"] * len(week_starts),
            "search_trend": rng.normal(50, 10, 2 * len(week_starts)).round(1),
            "footfall": rng.normal(100, 5, 2 * len(week_starts)).round(1)}).write_csv(
            folder / "exogenous.csv")
        spec["events"] = {"path": "events.csv", "columns": {
            "market": "country", "timestamp": "aired", "item_id": "sku", "audience": "viewers"}}
        spec["exogenous"] = {"path": "exogenous.csv", "columns": {
            "timestamp": "week", "market": "country"}, "future_known": ["search_trend"],
            "past_only": ["footfall"]}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture
def shop_spec(tmp_path: Path) -> Path:
    return make_shop(tmp_path)


def _build(spec: Path):
    from salesfusion.data.panel import build_panel
    from salesfusion.data.spec import load_spec
    from salesfusion.data.validate import load_tables

    return build_panel(load_tables(load_spec(spec)))


@pytest.fixture
def shop_panel(shop_spec: Path):
    return _build(shop_spec)


@pytest.fixture(scope="module")
def module_shop_panel(tmp_path_factory):
    """The same shop, built once per test module (for suites that fit many models on it)."""
    return _build(make_shop(tmp_path_factory.mktemp("shop")))


def edit_spec(spec: Path, **changes: object) -> None:
    """Set dotted keys of a spec file (``**{"sales.timestamp_format": "%d/%m/%Y"}``)."""
    data = yaml.safe_load(spec.read_text())
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    spec.write_text(yaml.safe_dump(data))


# A multimodal model small enough to train in a fraction of a second, and a search space over
# it: the tuning tests' search (``salesfusion tune``).
TUNE_TINY = {"epochs": 2, "lookback": 8, "hidden": 16, "fusion_dim": 16, "batch_size": 64,
             "accelerator": "cpu", "modalities": ["text", "static"]}
TUNE_SPACE = {"hidden": {"type": "int", "low": 8, "high": 32, "actions": [8, 16, 32]},
              "epochs": {"type": "int", "low": 1, "high": 3, "actions": [1, 2, 3]},
              "lr": {"type": "float", "low": 0.001, "high": 0.01, "log": True}}


@pytest.fixture
def tune_shop(tmp_path: Path) -> Path:
    """The shop's spec, with ``cfg.yaml`` (the tiny model) and ``space.yaml`` beside it."""
    spec = make_shop(tmp_path)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump({"model": "multimodal",
                                                       "params": TUNE_TINY}))
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(TUNE_SPACE))
    return spec
