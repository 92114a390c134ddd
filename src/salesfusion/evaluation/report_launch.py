"""The HTML report of a launch backtest (``salesfusion backtest --protocol launch``): how far
each model's forecasts of new items' first periods from launch were off, overall, per market
and per period since launch, in WAPE, bias and RMSSE, with the bias flags of the rolling
report. The same building blocks as ``report`` (tables, bias sentences, per-market pivots), so
the two reports read alike; what differs is the time axis (period since launch, not horizon
step) and what RMSSE is scaled by (see ``evaluation.launch``: new items have no history)."""

from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go
import polars as pl

from salesfusion.data.launch_splits import LaunchProtocol
from salesfusion.data.panel import SERIES_KEY
from salesfusion.evaluation.launch import since_launch_metrics
from salesfusion.evaluation.report import _notes_section
from salesfusion.evaluation.report_bias import STEP_METRICS, bias_section
from salesfusion.evaluation.report_html import Figures, colour, figure_layout, html_table, page
from salesfusion.evaluation.report_html import section as titled
from salesfusion.evaluation.report_plots import market_figure
from salesfusion.evaluation.report_sections import interval_bands, overall_accuracy, per_market
from salesfusion.evaluation.runner import BacktestRun
from salesfusion.scoring.selection import DEFAULT_METRIC, metric_column

# MASE is left out: a launch has no history to scale absolute errors by (it is null).
METRICS_SHOWN = ("WAPE", "bias_pct", "RMSSE", "sMAPE", "RMSE")
BEST_LOWEST = tuple(m for m in METRICS_SHOWN if m != "bias_pct")
# Ranked by the project's default selection metric: WAPE would put the under-forecasting
# median curves first.
RANK_BY = metric_column(DEFAULT_METRIC)
RANKED_METRICS = (RANK_BY, *[m for m in METRICS_SHOWN if m != RANK_BY])
MODELS_PLOTTED = 6

RMSSE_NOTE = (
    "<p>RMSSE, as M5 defines it, divides a series' RMSE by the RMSE of a one-step naive "
    "forecast on the series' own history. A new item has no history, so here each test series "
    "is scaled by its market's <b>launch scale</b>: the root mean squared one-step difference "
    "of the training launches' first periods from launch in that market (the launches the "
    "model was fitted on, pooled), then the scaled errors are averaged per series and over "
    "series as in M5. An RMSSE of 1 is an error as large as a typical period-to-period swing of "
    "a new item in that market. It is comparable between models of this run, not with the "
    "rolling backtest's RMSSE; a market without a training launch has none.</p>")


def _protocol_text(run: BacktestRun, protocol: LaunchProtocol) -> str:
    cutoffs = ", ".join(f"{c:%Y-%m-%d}" for c in protocol.cutoff_periods(run.panel))
    series = run.forecasts.select(*SERIES_KEY, "window").unique().height
    what = ("new items (held out by their first sale anywhere)" if protocol.scope == "item"
            else "items entering a market after selling elsewhere")
    return (f"<p>Launch protocol, scope <b>{protocol.scope}</b>: {what}, each scored on its "
            f"first {protocol.horizon} periods from launch (freq {run.panel.freq}). Cutoff(s): "
            f"{cutoffs}; {series:,} test series over all windows; validation part "
            f"{protocol.validation_periods} period(s) before each cutoff. Models are fitted on "
            f"the rows before the cutoff only; forecasts clipped at 0.</p>")


def _scales(run: BacktestRun) -> pl.DataFrame:
    """The launch scale of each market and window, as the forecasts carry it."""
    if "rmsse_scale" not in run.forecasts.columns:
        return pl.DataFrame()
    return (run.forecasts.select("window", "market", "rmsse_scale").unique()
            .group_by("window", "market").agg(pl.col("rmsse_scale").first())
            .sort("window", "market").rename({"rmsse_scale": "launch scale (units)"}))


def since_launch_table(forecasts: pl.DataFrame, models: list[str]) -> pl.DataFrame:
    """``model, period_since_launch`` with WAPE, bias_pct and RMSSE over every window."""
    scored = since_launch_metrics(forecasts.filter(pl.col("model").is_in(models)))
    wide = (scored.filter(pl.col("metric").is_in(STEP_METRICS))
            .pivot(on="metric", index=["model", "period_since_launch"], values="value"))
    order = {m: i for i, m in enumerate(models)}
    return (wide.select("model", "period_since_launch",
                        *[m for m in STEP_METRICS if m in wide.columns])
            .sort(pl.col("model").replace_strict(order, default=len(order)),
                  "period_since_launch"))


def units_figure(forecasts: pl.DataFrame, models: list[str]) -> go.Figure:
    """Total actual units of the test series per period since launch, and each model's total
    forecast of them: a bias shows as a line below or above the actual one."""
    totals = (forecasts.filter(pl.col("model").is_in(models))
              .group_by("model", "period_since_launch")
              .agg(pl.col("y_true").sum(), pl.col("y_pred").sum()).sort("period_since_launch"))
    figure = go.Figure()
    actual = totals.filter(pl.col("model") == models[0])
    figure.add_trace(go.Scatter(x=actual["period_since_launch"], y=actual["y_true"],
                                name="actual", line={"color": "black", "width": 3}))
    for index, model in enumerate(models):
        rows = totals.filter(pl.col("model") == model)
        figure.add_trace(go.Scatter(x=rows["period_since_launch"], y=rows["y_pred"], name=model,
                                    mode="lines+markers", line={"color": colour(index)}))
    figure.update_layout(xaxis_title="period since launch")
    return figure_layout(figure, "Test launches' total units by period since launch", 380)


def _market_tables(run: BacktestRun) -> str:
    parts = []
    for metric, heading in (("WAPE", "WAPE (%)"), ("bias_pct", "Bias (%)"), ("RMSSE", "RMSSE")):
        table = per_market(run.metrics, metric)
        if table.height == 0:
            continue
        lowest = () if metric == "bias_pct" else tuple(c for c in table.columns if c != "model")
        parts.append(f"<h3>{heading} per market</h3>" + html_table(table, best_lowest=lowest))
    return "".join(parts)


def write_launch_report(run: BacktestRun, path: Path, title: str) -> None:
    """Write the launch backtest's report to ``path``."""
    protocol = run.protocol
    if not isinstance(protocol, LaunchProtocol):
        raise TypeError("write_launch_report takes a launch backtest; use report.write_report")
    ranked = run.summary(RANKED_METRICS)["model"].to_list()
    shown = ranked[:MODELS_PLOTTED]
    bands = interval_bands(run.forecasts)
    figures = Figures()
    accuracy = overall_accuracy(run.summary(RANKED_METRICS), run.metrics, bands)
    legend = ("<p class=\"note\">point: what the model's forecast is, the mean of a launch's "
              "demand (forecasts add up to the expected total) or its median (lower on skewed "
              "launches, which WAPE rewards). WAPE, bias_pct and sMAPE in percent (bias_pct: "
              "total forecast over total actual, minus 1; negative = under-forecast); RMSSE "
              "scaled by the "
              "market's launch scale (below); coverage = share of actuals inside the model's "
              "band, nominal = the share it should hold; seconds = wall time of fit + predict "
              "over all windows. MASE is not reported: it needs a series' own history.</p>")
    scales = _scales(run)
    scale_html = RMSSE_NOTE + (html_table(scales) if scales.height else "")
    wape = run.metrics.filter((pl.col("window") == "all") & (pl.col("metric") == "WAPE")
                              & (pl.col("segment") != "all"))
    since = since_launch_table(run.forecasts, shown)
    since_html = ("<p>Over every window and market, the models shown by age of the launch "
                  "(1 = the launch period).</p>" + html_table(since)
                  + figures.html(units_figure(run.forecasts, shown)) if since.height
                  else "<p>No forecasts.</p>")
    body = "".join([
        titled("protocol", "Data and protocol", _protocol_text(run, protocol)),
        titled("bias", "Do the forecasts add up? Bias per market",
               bias_section(run.metrics, ranked)),
        titled("accuracy", "Overall accuracy on launches",
               html_table(accuracy, best_lowest=BEST_LOWEST) + legend),
        titled("rmsse", "What RMSSE means for a launch", scale_html),
        titled("markets", "Per market", _market_tables(run) + figures.html(market_figure(wape))),
        titled("since-launch", "Error and bias by period since launch", since_html),
        titled("notes", "Model notes", _notes_section(run)),
    ])
    shown_note = (f"<p class=\"note\">Models ranked by {RANK_BY}; the {MODELS_PLOTTED} best are "
                  f"shown by period since launch: {html.escape(', '.join(shown))}.</p>")
    path.write_text(page(title, body + shown_note))
