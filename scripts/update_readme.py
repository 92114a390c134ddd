"""Write the README's results tables from the files the runs produced (never by hand).

Each table sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers and is
rewritten only when its source exists:

- ``demo-table``: ``runs/demo/metrics.csv`` (``salesfusion demo``; ``make readme`` runs both);
- ``neural-table``: ``runs/neural/<model>/metrics.csv`` (``make results``: the presets' OR-weekly
  backtests, one folder per model);
- ``peers-table``: ``benchmarks/results/peers.json`` (``benchmarks/peers.py``);
- ``speed-table``: ``benchmarks/results/tft_speed.json`` (``benchmarks/tft_speed.py``);
- ``ablation-table``: ``benchmarks/results/ablation.json`` (``benchmarks/ablation.py``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("WAPE", "MASE", "sMAPE", "MAE", "RMSE")


def _markdown(columns: list[str], rows: list[list[object]]) -> str:
    def cell(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            if 0 < abs(value) < 0.01:
                return f"{value:.3g}"
            return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _overall(metrics_csv: Path, metrics: tuple[str, ...]) -> pl.DataFrame:
    frame = pl.read_csv(metrics_csv, schema_overrides={"window": pl.Utf8})
    return (frame.filter((pl.col("window") == "all") & (pl.col("segment") == "all")
                         & pl.col("metric").is_in(metrics))
            .pivot(on="metric", index="model", values="value").sort("WAPE"))


def demo_table(metrics_csv: Path) -> str:
    overall = _overall(metrics_csv, METRICS)
    frame = pl.read_csv(metrics_csv, schema_overrides={"window": pl.Utf8})
    others = (frame.filter((pl.col("window") == "all") & (pl.col("metric") == "WAPE")
                           & ~pl.col("segment").is_in(["all", "United Kingdom"]))
              .group_by("model").agg(pl.col("value").mean().alias("WAPE other countries (mean)")))
    columns = ["model", *METRICS, "WAPE other countries (mean)"]
    overall = overall.join(others, on="model", how="left").select(columns)
    return _markdown(columns, [list(r) for r in overall.iter_rows()])


def neural_table(folder: Path) -> str:
    """One row per model from every backtest folder under ``folder`` (one per model)."""
    parts = sorted(folder.glob("*/metrics.csv"))
    overall = pl.concat([_overall(p, (*METRICS, "coverage")) for p in parts],
                        how="diagonal").sort("WAPE")
    # Wall times stay in each folder's timings.csv: these runs share the machine with other
    # benchmarks, so only accuracy goes into the table.
    columns = ["model", *[c for c in (*METRICS, "coverage") if c in overall.columns]]
    return _markdown(columns, [list(r) for r in overall.select(columns).iter_rows()])


def peers_table(path: Path) -> str:
    rows = json.loads(path.read_text())["results"]
    columns = ["model", "library", "WAPE", "MASE", "RMSE", "coverage", "wall s", "peak MiB",
               "load (1-min mean)"]
    return _markdown(columns, [[r["model"], r.get("library", ""), r["WAPE"], r["MASE"],
                                r["RMSE"], r.get("coverage"), r["wall_s"], r["peak_mib"],
                                (r.get("load_1min") or {}).get("mean")] for r in rows])


def speed_table(path: Path) -> str:
    data = json.loads(path.read_text())
    results, ratio = data["results"], data["ratios_ours_over_theirs"]
    keys = ("parameters", "train_samples_per_epoch", "train_s", "train_s_per_sample",
            "predict_s")
    rows = [[side, *[results[side].get(k) for k in keys]]
            for side in ("salesfusion", "pytorch-forecasting")]
    rows.append(["ratio salesfusion / pytorch-forecasting", *[ratio.get(k) for k in keys]])
    settings = data.get("settings", {})
    caption = (f"hidden {settings.get('hidden')}, {settings.get('epochs')} epochs, batch "
               f"{settings.get('batch_size')}, {settings.get('threads')} threads")
    return caption + "\n\n" + _markdown(
        ["TFT", "parameters", "training samples / epoch", "train s", "train s / sample",
         "predict s"], rows)


def ablation_table(path: Path) -> str:
    data = json.loads(path.read_text())
    return _markdown(["variant", "cold-start WAPE", "cold-start MAE", "backtest WAPE",
                      "backtest MASE", "event-weeks WAPE"],
                     [[r["variant"], r["cold_start_wape"], r["cold_start_mae"],
                       r["backtest_wape"], r["backtest_mase"], r.get("event_weeks_wape")]
                      for r in data["rows"]])


def _replace(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    head, rest = text.split(start)
    _, tail = rest.split(end)
    return f"{head}{start}\n{body}\n{end}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--metrics", type=Path, default=ROOT / "runs" / "demo" / "metrics.csv")
    parser.add_argument("--neural", type=Path, default=ROOT / "runs" / "neural")
    results = ROOT / "benchmarks" / "results"
    parser.add_argument("--peers", type=Path, default=results / "peers.json")
    parser.add_argument("--speed", type=Path, default=results / "tft_speed.json")
    parser.add_argument("--ablation", type=Path, default=results / "ablation.json")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    text = readme.read_text()
    sources: list[tuple[str, Path, Callable[[Path], str]]] = [
        ("demo-table", args.metrics, demo_table),
        ("neural-table", args.neural, neural_table),
        ("peers-table", args.peers, peers_table), ("speed-table", args.speed, speed_table),
        ("ablation-table", args.ablation, ablation_table)]
    for name, source, render in sources:
        if source.is_file() or (source.is_dir() and any(source.glob("*/metrics.csv"))):
            text = _replace(text, name, render(source))
            print(f"README.md {name} updated from {source}")
    readme.write_text(text)


if __name__ == "__main__":
    main()
