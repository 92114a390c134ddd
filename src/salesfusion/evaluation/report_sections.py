"""The tables of the backtest report a planner acts on: accuracy with interval coverage, models
that read history apart from cold-start-only ones, and which model to trust in each market."""

from __future__ import annotations

import html

import polars as pl

from salesfusion.data.forecast_frame import model_rows, quantile_columns
from salesfusion.errors import InputError
from salesfusion.evaluation.report_html import html_table, nominal_level
from salesfusion.scoring.selection import metric_label, selection_rows, unavailable

# A lead under this many points of a percent metric (WAPE, bias_abs), or under this share of the
# runner-up's score for the others, is within what another window or seed could reverse.
NOISE_POINTS = 1.0
NOISE_SHARE = 2.0


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


def trust_per_market(metrics: pl.DataFrame, metric: str = "wape") -> pl.DataFrame:
    """Per market: the model with the lowest score by ``metric`` (``scoring.selection``)
    over all windows, the runner-up, the margin in the metric's units and as a share of the
    runner-up's score, the windows in which the best beat the runner-up, and the best model's
    interval coverage (blank without a band). Columns ``best <LABEL>`` and ``runner-up
    <LABEL>`` name the metric (``best RMSSE``). Models the metric cannot score (pinball of a
    model without quantiles) are left out; with none it can score, ``MetricUnavailable``.

    ``metric`` defaults to wape for the forecast report's own WAPE comparison; the backtest
    report passes the user's metric (``DEFAULT_METRIC``, rmsse, by default)."""
    label = metric_label(metric)
    scores = selection_rows(metrics.filter(pl.col("segment") != "all"), metric)
    if metric == "pinball" and scores.drop_nulls("value").is_empty() and metrics.height:
        raise unavailable("pinball", "the backtest's forecasts")
    coverage = metrics.filter((pl.col("metric") == "coverage") & (pl.col("segment") != "all"))
    wide = pl.concat([scores, coverage.select(scores.columns)]).pivot(
        on="metric", index=["model", "window", "segment"], values="value")
    for column in (label, "coverage"):
        if column not in wide.columns:
            wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(column))
    rows = []
    for market in sorted(wide["segment"].unique().to_list()):
        here = wide.filter(pl.col("segment") == market)
        ranked = (here.filter((pl.col("window") == "all") & pl.col(label).is_not_null())
                  .sort(label, "model"))
        if ranked.height == 0:
            continue
        best = ranked.row(0, named=True)
        runner = ranked.row(1, named=True) if ranked.height > 1 else None
        margin = share = won = None
        if runner is not None:
            margin = runner[label] - best[label]
            share = 100.0 * margin / runner[label] if runner[label] > 0 else None
            won = _windows_won(here, best["model"], runner["model"], label)
        rows.append({"market": market, "best": best["model"], f"best {label}": best[label],
                     "runner-up": runner["model"] if runner else None,
                     f"runner-up {label}": runner[label] if runner else None,
                     "margin": margin, "margin (%)": share, "windows won": won,
                     "best coverage": best["coverage"]})
    columns = trust_columns(label)
    schema = {c: pl.Float64 for c in columns} | {
        "market": pl.Utf8, "best": pl.Utf8, "runner-up": pl.Utf8, "windows won": pl.Utf8}
    return pl.DataFrame(rows, schema=schema).select(columns)


def trust_columns(label: str) -> list[str]:
    """The trust table's columns for a metric shown as ``label``."""
    return ["market", "best", f"best {label}", "runner-up", f"runner-up {label}", "margin",
            "margin (%)", "windows won", "best coverage"]


def _windows_won(rows: pl.DataFrame, best: str, runner: str, label: str) -> str:
    """``k of n``: the windows where ``best`` had the lower score of the two."""
    per_window = (rows.filter(pl.col("window") != "all")
                  .pivot(on="model", index="window", values=label)
                  .select(pl.col(best).alias("b"), pl.col(runner).alias("r")).drop_nulls())
    won = per_window.filter(pl.col("b") < pl.col("r")).height
    return f"{won} of {per_window.height}"


def within_noise(trust: pl.DataFrame) -> pl.Expr:
    """Rows whose lead is within noise: under ``NOISE_POINTS`` points of a percent metric
    (WAPE, bias_abs), under ``NOISE_SHARE`` % of the runner-up's score otherwise (RMSSE, MAE
    and pinball have no unit a fixed number of points would fit)."""
    percent = any(c in trust.columns for c in ("best WAPE", "best bias_abs"))
    return (pl.col("margin") < NOISE_POINTS if percent
            else pl.col("margin (%)") < NOISE_SHARE)


def trust_section(metrics: pl.DataFrame, metric: str) -> str:
    """The backtest report's "which model to trust" section body: what the choice is by, the
    table and the sentences."""
    trust = trust_per_market(metrics, metric)
    label = metric_label(metric)
    noise = _noise_text(trust)
    return (f"<p>Per market, the model with the lowest {html.escape(label)} over all windows "
            f"(chosen by metric <b>{html.escape(metric)}</b>), the runner-up, and the margin: in "
            f"{html.escape(label)} and as a share of the runner-up's {html.escape(label)}. "
            f"Windows won: windows in which the best beat the runner-up. A lead under {noise} "
            f"is within noise.</p>" + html_table(trust) + trust_sentences(trust))


def _label(trust: pl.DataFrame) -> str:
    return next(c for c in trust.columns if c.startswith("best ") and c != "best coverage")[5:]


def _noise_text(trust: pl.DataFrame) -> str:
    label = _label(trust)
    return (f"{NOISE_POINTS:g} {label} point" if label in ("WAPE", "bias_abs")
            else f"{NOISE_SHARE:g} % of the runner-up's {label}")


def trust_sentences(trust: pl.DataFrame) -> str:
    """A sentence per market whose lead is within noise, or one saying every lead is clear."""
    close = trust.filter(within_noise(trust))
    single = trust.filter(pl.col("runner-up").is_null())["market"].to_list()
    label, noise = _label(trust), _noise_text(trust)
    parts = []
    for row in close.iter_rows(named=True):
        best, runner = html.escape(row["best"]), html.escape(row["runner-up"])
        lead = (f"{best} and {runner} tie" if row["margin"] == 0 else
                f"{best} leads {runner} by {row['margin']:.4g} {html.escape(label)}")
        parts.append(
            f"<li>In <b>{html.escape(row['market'])}</b>, {lead}: within noise (under "
            f"{html.escape(noise)}). Either will do there; prefer the simpler or cheaper one, "
            f"and do not read the ranking as settled.</li>")
    if single:
        parts.append(f"<li>Only one model was scored in {html.escape(', '.join(single))}: "
                     f"nothing to compare it with.</li>")
    if not parts:
        return f"<p>In every market the best model leads by at least {html.escape(noise)}.</p>"
    return f"<ul>{''.join(parts)}</ul>"
