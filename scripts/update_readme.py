"""Write the documentation's results tables from the files the runs produced (never by hand).

Each table sits between ``<!-- NAME-table:start -->`` and ``<!-- NAME-table:end -->`` markers,
in exactly one of the pages (``README.md`` and ``docs/*.md``; most are in
``docs/benchmarks.md``), and is rewritten from its source:

- ``demo``: ``runs/demo/metrics.csv`` (``salesfusion demo``; ``make readme`` runs both);
- ``neural``: ``runs/neural/<model>/metrics.csv`` (``make results``: the presets' OR-weekly
  backtests, one folder per model; ``--neural-models`` names the folders that must be there);
- ``peers``: ``benchmarks/results/peers.json`` (``benchmarks/peers.py``, ``make results``);
- ``speed``: ``benchmarks/results/tft_speed.json`` (``benchmarks/tft_speed.py``, ``make results``);
- ``ablation``: ``benchmarks/results/ablation.json`` (``benchmarks/ablation.py``, ``make results``);
- ``launch``: ``benchmarks/results/launch.json`` (``benchmarks/launch.py --seeds 3``);
  ``launch-ablation``: ``benchmarks/results/launch_ablation.json`` (``benchmarks/launch.py
  --ablation``).

A missing source is an error (exit 1, no page touched), never a silently kept stale table.
The demo table comes from ``make readme`` (minutes) and the others from ``make results``
(hours), so each target updates its own tables by naming them: ``--only demo`` or
``--only neural,peers,speed,ablation``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("WAPE", "MASE", "sMAPE", "MAE", "RMSE")
# The demo table also shows whether forecasts add up (bias_pct) and the squared-error scaled
# metric that does not reward an under-forecasting median (RMSSE, and WRMSSE weighted by
# revenue), where metrics.csv has them.
DEMO_METRICS = ("WAPE", "bias_pct", "RMSSE", "WRMSSE", "MASE", "sMAPE", "MAE", "RMSE")


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
    overall = _overall(metrics_csv, DEMO_METRICS)
    frame = pl.read_csv(metrics_csv, schema_overrides={"window": pl.Utf8})
    others = (frame.filter((pl.col("window") == "all") & (pl.col("metric") == "WAPE")
                           & ~pl.col("segment").is_in(["all", "United Kingdom"]))
              .group_by("model").agg(pl.col("value").mean().alias("WAPE other countries (mean)")))
    columns = ["model", *[m for m in DEMO_METRICS if m in overall.columns],
               "WAPE other countries (mean)"]
    overall = overall.join(others, on="model", how="left").select(columns)
    return _markdown(columns, [list(r) for r in overall.iter_rows()])


def neural_table(folder: Path, models: list[str] | None = None) -> str:
    """One row per model from its backtest folder under ``folder``: the named ``models``, or
    every folder there."""
    parts = ([folder / m / "metrics.csv" for m in models] if models
             else sorted(folder.glob("*/metrics.csv")))
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


def launch_table(path: Path) -> str:
    data = json.loads(path.read_text())
    benchmarks, record = data["benchmarks"], data["provenance"]
    threads = record.get("threads", {}).get("env", {}).get("OMP_NUM_THREADS")
    caption = (f"commit {(record.get('commit') or 'unknown')[:12]}, {record.get('date_utc')}, "
               f"OMP_NUM_THREADS={threads}, `{data.get('command')}`")
    rows = []
    for name, result in benchmarks.items():
        label = f"{name} ({result['test_series']:,} series)"
        for row in result["rows"]:
            rows.append([label, row["model"], row["wape_mean"],
                         row["wape_std"] if row["seeds"] > 1 else None,
                         row.get("bias_pct_mean"), row.get("rmsse_mean"),
                         row["rmse_mean"], row["smape_mean"], row["vs_best_reference_pct"],
                         row.get("vs_oracle"), row["seeds"]])
        if "oracle" in result:
            oracle = result["oracle"]
            rows.append([label, "oracle (true mean)", oracle["WAPE"], None,
                         oracle.get("bias_pct"), oracle.get("RMSSE"), oracle["RMSE"],
                         oracle["sMAPE"], None, 1.0, None])
    return caption + "\n\n" + _markdown(["benchmark", "model", "WAPE", "WAPE std", "bias %",
                                          "RMSSE", "RMSE", "sMAPE", "vs best reference %",
                                          "vs oracle", "seeds"], rows)


def launch_signal_table(path: Path) -> str:
    """Per content signal and model: mean (sd over shop seeds) of WAPE, bias and RMSSE, and
    the WAPE change against the best launch curve at that signal."""
    data = json.loads(path.read_text())
    record = data["provenance"]
    threads = record.get("threads", {}).get("env", {}).get("OMP_NUM_THREADS")
    caption = (f"commit {(record.get('commit') or 'unknown')[:12]}, {record.get('date_utc')}, "
               f"OMP_NUM_THREADS={threads}, `{data.get('command')}`")
    rows = [[f"{r['signal']:g}", r["model"], r["WAPE_mean"], r["WAPE_sd"], r["bias_pct_mean"],
             r["RMSSE_mean"], r["vs_best_curve_pct"], r["shops"]] for r in data["summary"]]
    return caption + "\n\n" + _markdown(["content signal", "model", "WAPE", "WAPE sd",
                                          "bias %", "RMSSE", "vs best curve %", "shops"], rows)


def launch_ablation_table(path: Path) -> str:
    benchmarks = json.loads(path.read_text())["benchmarks"]
    rows = []
    for name, result in benchmarks.items():
        variants = result.get("ablation", [])
        base = next((r["wape_mean"] for r in variants if r["model"] == "multimodal_launch"),
                    None)
        for row in variants:
            change = 100 * (row["wape_mean"] / base - 1) if base else None
            rows.append([name, row["model"], row["wape_mean"],
                         row["wape_std"] if row["seeds"] > 1 else None, change, row["seeds"]])
    return _markdown(["benchmark", "variant of multimodal_launch", "WAPE", "WAPE std",
                      "change %", "seeds"], rows)


def searchers_table(path: Path) -> str:
    """Per dataset and searcher: best validation RMSE after 3, 5 and all trials (mean ± std over
    seeds), regret against the space's best setting, test RMSE of the final model, time; then
    the paired tests of msrl against random and TPE."""
    data = json.loads(path.read_text())
    record = data["provenance"]
    threads = record.get("threads", {}).get("env", {}).get("OMP_NUM_THREADS")
    caption = (f"commit {(record.get('commit') or 'unknown')[:12]}, {record.get('date_utc')}, "
               f"OMP_NUM_THREADS={threads}, `{data.get('command')}`; {data['seeds']} seeds, "
               f"budget {data['budget']} trials")
    budget = data["budget"]

    def spread(value: dict) -> str:
        return f"{value['mean']:.4f} ± {value['std']:.4f}"

    rows = []
    for name, result in data["datasets"].items():
        optimum = result["optimum_validation_rmse"]
        label = f"{name} ({result['settings']} settings, best {optimum:.4f})"
        for searcher, row in result["searchers"].items():
            curve = row["curve"]
            rows.append([label, searcher, spread(curve[min(2, budget - 1)]),
                         spread(curve[min(4, budget - 1)]), spread(row["final"]),
                         f"{row['regret_percent']['mean']:.2f}",
                         f"{row['found_optimum']}/{len(row['finals'])}",
                         spread(row["test_rmse"]), f"{row['training_seconds']['mean']:,.0f}"])
    table = _markdown(["dataset", "searcher", "best val RMSE, 3 trials", "5 trials",
                       f"{budget} trials", "regret %", "found best", "test RMSE of final",
                       "training s"], rows)
    tests = []
    pooled = {"paired_tests": data["pooled_paired_tests"]}
    for name, result in [*data["datasets"].items(), ("pooled (RMSE / best)", pooled)]:
        for pair, test in result["paired_tests"].items():
            p = test["p_value"]
            tests.append([name, pair, f"{test['better']}/{test['ties']}/{test['worse']}",
                          "identical" if p is None else f"{p:.3g}"])
    paired = _markdown(["dataset", "pair (final best validation RMSE)",
                        "msrl better / tied / worse", "Wilcoxon p"], tests)
    return f"{caption}\n\n{table}\n\n{paired}"


def covariates_table(path: Path) -> str:
    """Per dataset, model and covariate variant: WAPE, bias, RMSSE and RMSE over all backtest
    windows and the WAPE change against the variant without covariates; then the recovered
    elasticity and promotion uplift against the synthetic truth."""
    data = json.loads(path.read_text())
    record = data["provenance"]
    threads = record.get("threads", {}).get("env", {}).get("OMP_NUM_THREADS")
    shop = data["synthetic_params"]
    caption = (f"commit {(record.get('commit') or 'unknown')[:12]}, {record.get('date_utc')}, "
               f"OMP_NUM_THREADS={threads}, seed {data.get('seed')}, synthetic shop "
               f"{shop['n_items']} items x {shop['n_weeks']} weeks")
    none = {(r["dataset"], r["model"]): r["wape"] for r in data["accuracy"]
            if r["variant"] == "none"}
    rows = [[r["dataset"], r["model"], r["variant"], f"{r['wape']:.2f}",
             f"{r['wape'] - none[(r['dataset'], r['model'])]:+.2f}", f"{r['bias_pct']:+.2f}",
             f"{r['rmsse']:.4f}", f"{r['rmse']:.3f}"] for r in data["accuracy"]]
    table = _markdown(["dataset", "model", "covariates", "WAPE", "vs none", "bias %", "RMSSE",
                       "RMSE"], rows)
    recovered = [[r["model"], f"{r['elasticity']['estimated']:.3f}",
                  f"{r['elasticity']['truth']:.3f}", f"{r['promo_uplift']['estimated']:.3f}",
                  f"{r['promo_uplift']['truth']:.3f}"] for r in data["recovery"]]
    recovery = _markdown(["model", "price elasticity", "truth", "promotion uplift (log)",
                          "truth"], recovered)
    return f"{caption}\n\n{table}\n\n{recovery}"


MAKE_TARGET = {"demo": "make readme", "neural": "make results", "peers": "make results",
               "speed": "make results", "ablation": "make results", "launch": "make results",
               "launch-ablation": "make results", "launch-signal": "make results",
               "searchers": "make results",
               "covariates": "make results"}


class SourceError(Exception):
    """A table's source is missing or no page (or more than one) holds the table's markers."""


def _replace(texts: dict[Path, str], name: str, body: str) -> Path:
    """Rewrite table ``name`` in the one page of ``texts`` that holds its markers; that page."""
    start, end = f"<!-- {name}-table:start -->", f"<!-- {name}-table:end -->"
    holding = [page for page, text in texts.items() if start in text or end in text]
    if len(holding) != 1 or texts[holding[0]].count(start) != 1 \
            or texts[holding[0]].count(end) != 1:
        where = ", ".join(map(str, holding)) or ", ".join(map(str, texts))
        raise SourceError(f"{where}: expected one '{start}' and one '{end}' marker in one page")
    page = holding[0]
    head, rest = texts[page].split(start)
    _, tail = rest.split(end)
    texts[page] = f"{head}{start}\n{body}\n{end}{tail}"
    return page


def _check_source(name: str, source: Path, neural_models: list[str]) -> None:
    if name == "neural":
        missing = [p for p in (source / m / "metrics.csv" for m in neural_models)
                   if not p.is_file()]
        if not neural_models and not any(source.glob("*/metrics.csv")):
            missing = [source / "<model>" / "metrics.csv"]
    else:
        missing = [] if source.is_file() else [source]
    if missing:
        raise SourceError(f"{', '.join(map(str, missing))} not found (source of the docs' "
                          f"{name} table); run `{MAKE_TARGET[name]}` to produce it, or leave "
                          f"the table out with --only")


def _names(value: str) -> list[str]:
    names = [n.strip().removesuffix("-table") for n in value.split(",") if n.strip()]
    unknown = sorted(set(names) - set(MAKE_TARGET))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown table(s) {unknown or value!r}; choose from "
                                         f"{', '.join(MAKE_TARGET)}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description="Rewrite the documentation's results tables.")
    parser.add_argument("--pages", type=Path, nargs="+",
                        default=[ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))],
                        help="the pages that hold the tables' markers (default: README.md and "
                             "docs/*.md)")
    parser.add_argument("--only", type=_names, default=list(MAKE_TARGET),
                        help=f"comma-separated tables to update (default: all of "
                             f"{', '.join(MAKE_TARGET)})")
    parser.add_argument("--metrics", type=Path, default=ROOT / "runs" / "demo" / "metrics.csv")
    parser.add_argument("--neural", type=Path, default=ROOT / "runs" / "neural")
    parser.add_argument("--neural-models", default="",
                        help="models whose runs/neural/<model>/metrics.csv must exist "
                             "(space- or comma-separated)")
    results = ROOT / "benchmarks" / "results"
    parser.add_argument("--peers", type=Path, default=results / "peers.json")
    parser.add_argument("--speed", type=Path, default=results / "tft_speed.json")
    parser.add_argument("--ablation", type=Path, default=results / "ablation.json")
    parser.add_argument("--launch", type=Path, default=results / "launch.json")
    parser.add_argument("--launch-ablation", type=Path, default=results / "launch_ablation.json")
    parser.add_argument("--launch-signal", type=Path, default=results / "launch_signal.json")
    parser.add_argument("--searchers", type=Path, default=results / "searchers.json")
    parser.add_argument("--covariates", type=Path, default=results / "covariates.json")
    args = parser.parse_args()
    neural_models = args.neural_models.replace(",", " ").split()
    sources: dict[str, tuple[Path, Callable[[Path], str]]] = {
        "demo": (args.metrics, demo_table),
        "neural": (args.neural, lambda folder: neural_table(folder, neural_models)),
        "peers": (args.peers, peers_table), "speed": (args.speed, speed_table),
        "ablation": (args.ablation, ablation_table), "launch": (args.launch, launch_table),
        "launch-ablation": (args.launch_ablation, launch_ablation_table),
        "launch-signal": (args.launch_signal, launch_signal_table),
        "searchers": (args.searchers, searchers_table),
        "covariates": (args.covariates, covariates_table)}
    try:
        texts = {page: page.read_text() for page in args.pages}
        # Every source is checked before anything is rendered or written: all or nothing.
        for name in args.only:
            _check_source(name, sources[name][0], neural_models)
        written = {name: _replace(texts, name, render(source))
                   for name, (source, render) in ((n, sources[n]) for n in args.only)}
    except (SourceError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    for page in sorted(set(written.values())):
        page.write_text(texts[page])
    for name, page in written.items():
        print(f"{page.name} {name} table updated from {sources[name][0]}")


if __name__ == "__main__":
    main()
