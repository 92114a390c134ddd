"""Train and predict every preset through the CLI, as a user would, on one dataset.

For each registered preset: ``salesfusion train --config`` (the preset with ``epochs`` overridden
so the check runs in minutes), then ``salesfusion predict --cold-start`` from the saved folder; it
prints the wall time of both, the rows forecast, how many never-sold items were forecast, and the
run's notes (fallback encoders). A non-zero exit of either command fails the script.

Run: .venv/bin/python benchmarks/presets_cli.py --dataset synthetic [--epochs 1] [--presets a,b]
     .venv/bin/python benchmarks/presets_cli.py --synthetic-items 80 (a smaller generated shop,
     passed to the CLI as --spec)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
from _provenance import summary_line
from rich.console import Console
from rich.table import Table

from salesfusion.models.presets import load_presets

SALESFUSION = str(Path(sys.executable).parent / "salesfusion")


def _run(args: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([SALESFUSION, *args], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "400"})
    if done.returncode:
        raise SystemExit(f"salesfusion {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return time.perf_counter() - started, done.stdout + done.stderr  # the CLI logs to stderr


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--presets", default=",".join(load_presets()))
    parser.add_argument("--synthetic-items", type=int, default=None,
                        help="Generate a synthetic shop of this many items (40 weeks) instead.")
    args = parser.parse_args()
    console = Console(width=160)
    console.print(summary_line())
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        source = ["--dataset", args.dataset]
        if args.synthetic_items:
            from salesfusion.datasets.synthetic import synthetic

            shop = synthetic(root / "shop", n_items=args.synthetic_items, n_weeks=40, seed=0)
            source = ["--spec", str(shop.folder / "spec.yaml")]
            args.dataset = f"a synthetic shop of {args.synthetic_items} items"
        table = Table(title=f"Presets through the CLI on {args.dataset} ({args.epochs} "
                            f"epoch(s))")
        for column in ("preset", "train s", "predict s", "rows", "series", "never-sold series",
                       "notes"):
            table.add_column(column, justify="left" if column in ("preset", "notes")
                             else "right")
        for name in args.presets.split(","):
            config = root / f"{name}.yaml"
            config.write_text(f"model: {name}\nparams: {{epochs: {args.epochs}}}\n")
            console.print(f"[bold]{name}[/]: training")
            train_s, train_log = _run(["train", "--config", str(config), *source, "--out",
                                       str(root / name)])
            out = root / f"{name}_forecasts" / "forecasts.parquet"
            predict_s, _ = _run(["predict", "--model", str(root / name), *source, "--horizon",
                                 "4", "--cold-start", "--out", str(out)])
            forecast = pl.read_parquet(out)
            history = pl.read_parquet(root / name / "history.parquet").select(
                "item_id", "market").unique()
            series = forecast.select("item_id", "market").unique()
            new = series.join(history, on=["item_id", "market"], how="anti").height
            notes = "; ".join(line.removeprefix("note: ") for line in train_log.splitlines()
                              if line.startswith("note:"))  # first line of each note
            table.add_row(name, f"{train_s:.0f}", f"{predict_s:.0f}", f"{forecast.height:,}",
                          f"{series.height:,}", f"{new:,}", notes)
    console.print(table)


if __name__ == "__main__":
    main()
