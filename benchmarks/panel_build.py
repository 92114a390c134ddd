"""Transactions -> weekly panel on the bundled Online Retail data and on a 10x scaled-up copy.

Prints rows/s and peak memory for salesfusion's builder (polars) and for a straightforward pandas
groupby implementation of the same rules, measured in the same run, and their ratio. Each
measurement runs in its own process so that peak RSS belongs to that implementation alone.

Run: .venv/bin/python benchmarks/panel_build.py [--scales 1,10]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import polars as pl
from _provenance import summary_line

PATTERN = r"\d{5}[A-Z]{0,2}"


def _scaled_tables(scale: int):
    from salesfusion.datasets import online_retail

    dataset = online_retail()
    tables = dataset.tables
    if scale > 1:
        # Copies of the shop: the same transactions for products renamed per copy.
        copies = [tables.sales.with_columns(
            (pl.col("item_id").str.strip_chars() + pl.lit(f"-{k}")).alias("item_id"))
            for k in range(scale)]
        tables.sales = pl.concat(copies)
        tables.spec = tables.spec.model_copy(update={"cleaning": tables.spec.cleaning.model_copy(
            update={"item_id_pattern": PATTERN + r"-\d+"})})
    return tables


def _pandas_panel(tables) -> int:
    """The obvious pandas implementation of the same rules (clean, weekly sums, grid, FX)."""
    import pandas as pd

    sales = tables.sales.to_pandas()
    sales["item_id"] = sales["item_id"].str.strip().str.upper()
    pattern = f"^(?:{tables.spec.cleaning.item_id_pattern})$"
    sales = sales[sales["item_id"].str.match(pattern)]
    sales = sales[~sales["invoice"].str.startswith("C") & (sales["quantity"] > 0)
                  & (sales["price"] > 0)]
    sales["period"] = sales["timestamp"].dt.to_period("W-SUN").dt.start_time
    sales["revenue"] = sales["price"] * sales["quantity"]
    first, last = sales["period"].min(), sales["period"].max()
    if sales["timestamp"].min().normalize() > first:
        first += pd.Timedelta(weeks=1)
    if sales["timestamp"].max() < last + pd.Timedelta(days=6):
        last -= pd.Timedelta(weeks=1)
    sales = sales[(sales["period"] >= first) & (sales["period"] <= last)]
    weekly = sales.groupby(["item_id", "market", "period"], as_index=False)[
        ["quantity", "revenue"]].sum()
    periods = pd.date_range(first, last, freq="7D")
    starts = weekly.groupby(["item_id", "market"])["period"].min().reset_index(name="launch")
    grid = starts.merge(pd.DataFrame({"period": periods}), how="cross")
    grid = grid[grid["period"] >= grid["launch"]]
    panel = grid.merge(weekly, on=["item_id", "market", "period"], how="left")
    panel["quantity"] = panel["quantity"].fillna(0.0)
    panel["price"] = panel["revenue"] / panel["quantity"].where(panel["quantity"] > 0)
    fx = tables.fx.to_pandas()
    seller = fx[fx["currency"] == "GBP"][["timestamp", "rate"]].rename(columns={"rate": "gbp"})
    fx = fx.merge(seller, on="timestamp")
    fx["fx_rate"] = fx["rate"] / fx["gbp"]
    fx["period"] = fx["timestamp"].dt.to_period("W-SUN").dt.start_time
    rates = fx.groupby(["currency", "period"], as_index=False)["fx_rate"].mean()
    markets = tables.markets.to_pandas()[["market", "currency"]]
    panel = panel.merge(markets, on="market", how="left").merge(
        rates, on=["currency", "period"], how="left")
    panel["price_local"] = panel["price"] * panel["fx_rate"]
    return len(panel)


def _measure(implementation: str, scale: int) -> dict:
    tables = _scaled_tables(scale)
    rows_in = tables.sales.height
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    if implementation == "salesfusion":
        from salesfusion.data.panel import build_panel

        rows_out = build_panel(tables, "W").data.height
    else:
        rows_out = _pandas_panel(tables)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"rows_in": rows_in, "rows_out": rows_out, "seconds": seconds,
            "peak_mib": peak / 1024, "before_mib": before / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", default="1,10")
    parser.add_argument("--child", nargs=2, metavar=("IMPL", "SCALE"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(args.child[0], int(args.child[1]))))
        return
    print(summary_line())
    print(f"{'data':>8} {'implementation':>14} {'rows in':>11} {'rows out':>10} {'seconds':>8} "
          f"{'rows/s':>12} {'peak MiB':>9} {'(+build)':>9}")
    for scale in (int(s) for s in args.scales.split(",")):
        results = {}
        for implementation in ("salesfusion", "pandas"):
            done = subprocess.run([sys.executable, __file__, "--child", implementation,
                                   str(scale)], capture_output=True, text=True, check=True)
            r = results[implementation] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{f'{scale}x':>8} {implementation:>14} {r['rows_in']:>11,} "
                  f"{r['rows_out']:>10,} {r['seconds']:>8.2f} "
                  f"{r['rows_in'] / r['seconds']:>12,.0f} {r['peak_mib']:>9.0f} "
                  f"{r['peak_mib'] - r['before_mib']:>9.0f}")
        ours, theirs = results["salesfusion"], results["pandas"]
        if ours["rows_out"] != theirs["rows_out"]:
            print(f"  warning: row counts differ ({ours['rows_out']} vs {theirs['rows_out']})")
        print(f"{'':>8} {'ratio':>14}  speed-up x{theirs['seconds'] / ours['seconds']:.2f}, "
              f"peak memory x{ours['peak_mib'] / theirs['peak_mib']:.2f} of pandas")


if __name__ == "__main__":
    main()
