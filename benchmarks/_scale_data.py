"""The data of ``scale.py``: a synthetic weekly panel of N series, or the Online Retail weekly
panel's demand, written as ``sales.parquet`` with the ``spec.yaml`` that reads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def generate(folder: Path, n_series: int, periods: int, seed: int = 0) -> dict[str, Any]:
    """Write the synthetic panel (vectorised: 1M x 52 weeks in seconds)."""
    import math

    import numpy as np
    import polars as pl

    markets, market_level = ("UK", "DE", "FR", "US"), np.array([0.4, 0.1, -0.1, -0.4])
    rng = np.random.default_rng(seed)
    n_items = math.ceil(n_series / len(markets))
    item, market = np.divmod(np.arange(n_series), len(markets))
    log_level = (rng.normal(-0.8, 1.0, n_items)[item] + market_level[market]
                 + rng.normal(0.0, 0.5, n_series)).astype(np.float32)
    amplitude = rng.uniform(0.0, 0.6, n_series).astype(np.float32)
    phase = rng.uniform(0.0, 2 * np.pi, n_series).astype(np.float32)
    weeks = np.arange(periods, dtype=np.float32)
    quantity = rng.poisson(np.exp(log_level[:, None] + amplitude[:, None] * np.sin(
        2 * np.pi * weeks / 52.18 + phase[:, None]))).astype(np.int32)
    # 12 test weeks (3 windows of 4) and 8 weeks of history before them at the latest.
    last_launch = max(1, periods - 20)
    launch = np.where(rng.random(n_series) < 0.2, rng.integers(1, last_launch + 1, n_series), 0)
    s_idx, t_idx = np.nonzero(weeks[None, :] >= launch[:, None])  # by series, then week
    sales = pl.DataFrame({
        "item_id": pl.Series([f"I{i:07d}" for i in range(n_items)]).gather(item[s_idx]),
        "market": pl.Series(markets).gather(market[s_idx]),
        "week": pl.Series(np.datetime64("2022-01-03") + t_idx.astype("timedelta64[W]")),
        "quantity": quantity[s_idx, t_idx]}).with_columns(pl.col("week").cast(pl.Date))
    return _write(folder, sales, f"scale-{n_series}", {
        "series": n_series, "items": n_items, "launched_inside": int((launch > 0).sum())})


def generate_or(folder: Path) -> dict[str, Any]:
    """The Online Retail weekly panel's demand, in the same files, for the peers."""
    import polars as pl

    from salesfusion.datasets.online_retail import online_retail

    data = online_retail().panel("W").data
    sales = data.select("item_id", "market", pl.col("timestamp").cast(pl.Date).alias("week"),
                        pl.col("y").alias("quantity"))
    return _write(folder, sales, "online-retail-weekly",
                  {"series": sales.select("item_id", "market").n_unique()})


def _write(folder: Path, sales: Any, name: str, info: dict[str, Any]) -> dict[str, Any]:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    sales.write_parquet(folder / "sales.parquet")
    spec = {"name": name, "freq": "W", "sales_grain": "period",
            "sales": {"path": "sales.parquet", "columns": {
                "item_id": "item_id", "market": "market", "timestamp": "week",
                "quantity": "quantity"}},
            "cleaning": {"drop_partial_periods": False, "require_positive_price": False}}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return {**info, "rows": sales.height, "weeks": sales["week"].n_unique(),
            "zero_share": round(float((sales["quantity"] == 0).mean()), 3),
            "sales_parquet_mib": round((folder / "sales.parquet").stat().st_size / 2**20, 1)}
