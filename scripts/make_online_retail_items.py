"""Derive the bundled Online Retail items table from the bundled transactions.

One row per product code (codes normalised and filtered exactly as the bundled spec does): its most
frequent description (the ``static_text`` role) and its median unit price in GBP over valid sales.
Run: .venv/bin/python scripts/make_online_retail_items.py
"""

from pathlib import Path

import polars as pl

DATA = Path(__file__).resolve().parents[1] / "src" / "salesfusion" / "datasets" / "data"
PRODUCT_CODE = r"^\d{5}[A-Z]{0,2}$"


def main() -> None:
    sales = pl.read_parquet(DATA / "online_retail.parquet").with_columns(
        pl.col("StockCode").str.strip_chars().str.to_uppercase().alias("stock_code"),
        pl.col("Description").str.strip_chars().alias("description"))
    valid = sales.filter(pl.col("stock_code").str.contains(PRODUCT_CODE),
                         ~pl.col("InvoiceNo").str.starts_with("C"),
                         pl.col("Quantity") > 0, pl.col("UnitPrice") > 0)
    descriptions = (valid.drop_nulls("description")
                    .group_by("stock_code", "description").agg(pl.len().alias("n"))
                    .sort(["stock_code", "n", "description"], descending=[False, True, False])
                    .group_by("stock_code", maintain_order=True).first()
                    .select("stock_code", "description"))
    prices = valid.group_by("stock_code").agg(pl.col("UnitPrice").median()
                                              .alias("median_unit_price"))
    items = prices.join(descriptions, on="stock_code", how="left").sort("stock_code")
    items.write_parquet(DATA / "online_retail_items.parquet", compression="zstd")
    print(f"{items.height} items written to {DATA / 'online_retail_items.parquet'}")


if __name__ == "__main__":
    main()
