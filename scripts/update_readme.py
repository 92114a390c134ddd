"""Write the demo's results table into README.md from the demo's own metrics.csv.

Run after the demo: .venv/bin/salesfusion demo && .venv/bin/python scripts/update_readme.py
(`make readme` does both). Only the text between the two markers changes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- demo-table:start -->", "<!-- demo-table:end -->"
METRICS = ("WAPE", "MASE", "sMAPE", "MAE", "RMSE")


def table(metrics_csv: Path) -> str:
    metrics = pl.read_csv(metrics_csv, schema_overrides={"window": pl.Utf8})
    overall = (metrics.filter((pl.col("window") == "all") & (pl.col("segment") == "all")
                              & pl.col("metric").is_in(METRICS))
               .pivot(on="metric", index="model", values="value").sort("WAPE"))
    uk = (metrics.filter((pl.col("window") == "all") & (pl.col("metric") == "WAPE")
                         & (pl.col("segment") != "all") & (pl.col("segment") != "United Kingdom"))
          .group_by("model").agg(pl.col("value").mean().alias("WAPE other countries (mean)")))
    overall = overall.join(uk, on="model", how="left")
    columns = ["model", *METRICS, "WAPE other countries (mean)"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in overall.select(columns).iter_rows():
        cells = [row[0], *[f"{v:.3f}" if v is not None else "" for v in row[1:]]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--metrics", type=Path, default=ROOT / "runs" / "demo" / "metrics.csv")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    text = readme.read_text()
    head, rest = text.split(START)
    _, tail = rest.split(END)
    readme.write_text(f"{head}{START}\n{table(args.metrics)}\n{END}{tail}")
    print(f"README.md updated from {args.metrics}")


if __name__ == "__main__":
    main()
