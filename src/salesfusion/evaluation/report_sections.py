"""The tables of the backtest report a planner acts on: accuracy with interval coverage, models
that read history apart from cold-start-only ones, and which model to trust in each market."""

from __future__ import annotations

import html

import polars as pl

from salesfusion.errors import InputError
from salesfusion.evaluation.backtest import model_rows
from salesfusion.evaluation.metrics import quantile_columns
from salesfusion.evaluation.report_html import nominal_level

# A lead under this many WAPE points is within what another window or seed could reverse.
NOISE_POINTS = 1.0
TRUST_COLUMNS = ["market", "best", "best WAPE", "runner-up", "runner-up WAPE",
                 "margin (points)", "margin (%)", "windows won", "best coverage"]


def reads_history(model: str) -> bool:
    """Whether a model forecasts from the series' own sales (``Forecaster.reads_history``); a
    name the registry does not know (an ad-hoc model) is taken to read it."""
    from salesfusion.models.registry import model_class

    try:
        return bool(model_class(model).reads_history)
    except InputError:
        return True


def interval_bands(forecasts: pl.DataFrame) -> dict[str, tuple[str, str]]:
    """Each model's band: its lowest and highest quantile columns (models with two or more)."""
    bands = {}
    for model in forecasts["model"].unique(maintain_order=True).to_list():
        levels = quantile_columns(model_rows(forecasts, model).columns)
        if len(levels) >= 2:
            bands[model] = (levels[0], levels[-1])
    return bands


def overall_accuracy(summary: pl.DataFrame, metrics: pl.DataFrame,
                     bands: dict[str, tuple[str, str]]) -> pl.DataFrame:
    """``summary`` (``BacktestRun.summary``) with interval coverage over all windows and
    markets and the nominal level it should reach (blank for models without a band)."""
    coverage = metrics.filter((pl.col("window") == "all") & (pl.col("segment") == "all")
                              & (pl.col("metric") == "coverage")).select(
        "model", pl.col("value").alias("coverage"))
    nominal = pl.DataFrame({"model": list(bands),
                            "nominal": [nominal_level(*b) for b in bands.values()]},
                           schema={"model": pl.Utf8, "nominal": pl.Float64})
    columns = [c for c in summary.columns if c != "seconds"]
    return (summary.join(coverage, on="model", how="left").join(nominal, on="model", how="left")
            .select(*columns, "coverage", "nominal", "seconds"))


def split_by_history(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows of models that read history, and rows of cold-start-only models."""
    reading = pl.col("model").map_elements(reads_history, return_dtype=pl.Boolean)
    return frame.filter(reading), frame.filter(~reading)


def per_market(metrics: pl.DataFrame, metric: str) -> pl.DataFrame:
    """One metric over all windows, a row per model and a column per market (``all`` first),
    the best overall first."""
    rows = metrics.filter((pl.col("window") == "all") & (pl.col("metric") == metric))
    if rows.height == 0:
        return pl.DataFrame()
    wide = rows.pivot(on="segment", index="model", values="value").sort("all", nulls_last=True)
    markets = sorted(c for c in wide.columns if c not in ("model", "all"))
    return wide.select("model", "all", *markets)


def trust_per_market(metrics: pl.DataFrame) -> pl.DataFrame:
    """Per market: the model with the lowest WAPE over all windows, the runner-up, the margin
    in WAPE points and as a share of the runner-up's WAPE, the windows in which the best beat
    the runner-up, and the best model's interval coverage (blank without a band)."""
    scored = metrics.filter((pl.col("metric").is_in(["WAPE", "coverage"]))
                            & (pl.col("segment") != "all"))
    wide = scored.pivot(on="metric", index=["model", "window", "segment"], values="value")
    if "coverage" not in wide.columns:
        wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias("coverage"))
    rows = []
    for market in sorted(wide["segment"].unique().to_list()):
        here = wide.filter(pl.col("segment") == market)
        ranked = (here.filter((pl.col("window") == "all") & pl.col("WAPE").is_not_null())
                  .sort("WAPE", "model"))
        if ranked.height == 0:
            continue
        best = ranked.row(0, named=True)
        runner = ranked.row(1, named=True) if ranked.height > 1 else None
        margin = share = won = None
        if runner is not None:
            margin = runner["WAPE"] - best["WAPE"]
            share = 100.0 * margin / runner["WAPE"] if runner["WAPE"] > 0 else None
            won = _windows_won(here, best["model"], runner["model"])
        rows.append({"market": market, "best": best["model"], "best WAPE": best["WAPE"],
                     "runner-up": runner["model"] if runner else None,
                     "runner-up WAPE": runner["WAPE"] if runner else None,
                     "margin (points)": margin, "margin (%)": share, "windows won": won,
                     "best coverage": best["coverage"]})
    schema = {c: pl.Float64 for c in TRUST_COLUMNS} | {
        "market": pl.Utf8, "best": pl.Utf8, "runner-up": pl.Utf8, "windows won": pl.Utf8}
    return pl.DataFrame(rows, schema=schema).select(TRUST_COLUMNS)


def _windows_won(rows: pl.DataFrame, best: str, runner: str) -> str:
    """``k of n``: the windows where ``best`` had the lower WAPE of the two."""
    per_window = (rows.filter(pl.col("window") != "all")
                  .pivot(on="model", index="window", values="WAPE")
                  .select(pl.col(best).alias("b"), pl.col(runner).alias("r")).drop_nulls())
    won = per_window.filter(pl.col("b") < pl.col("r")).height
    return f"{won} of {per_window.height}"


def trust_sentences(trust: pl.DataFrame) -> str:
    """A sentence per market whose lead is within noise, or one saying every lead is clear."""
    close = trust.filter(pl.col("margin (points)") < NOISE_POINTS)
    single = trust.filter(pl.col("runner-up").is_null())["market"].to_list()
    parts = []
    for row in close.iter_rows(named=True):
        best, runner = html.escape(row["best"]), html.escape(row["runner-up"])
        lead = (f"{best} and {runner} tie" if row["margin (points)"] == 0 else
                f"{best} leads {runner} by {row['margin (points)']:.2f} WAPE points")
        parts.append(
            f"<li>In <b>{html.escape(row['market'])}</b>, {lead}: within noise (under "
            f"{NOISE_POINTS:g} point). Either will do there; prefer the simpler or cheaper one, "
            f"and do not read the ranking as settled.</li>")
    if single:
        parts.append(f"<li>Only one model was scored in {html.escape(', '.join(single))}: "
                     f"nothing to compare it with.</li>")
    if not parts:
        return (f"<p>In every market the best model leads by at least {NOISE_POINTS:g} WAPE "
                f"point.</p>")
    return f"<ul>{''.join(parts)}</ul>"
