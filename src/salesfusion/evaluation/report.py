"""A self-contained HTML report of a backtest: metrics per model and market, forecast-vs-actual
plots, error by market. Plotly's JavaScript is embedded once, so the file works offline."""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import polars as pl

from salesfusion.data.panel import SERIES_KEY
from salesfusion.evaluation.runner import BacktestRun

HISTORY_SHOWN = 26
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left} th{background:#f3f3f3}
.best{font-weight:bold;background:#e8f5e9} .note{color:#666;font-size:.85rem}
"""


def html_table(frame: pl.DataFrame, best_lowest: tuple[str, ...] = ()) -> str:
    """``frame`` as an HTML table (floats to 3 decimals, missing and non-finite values blank),
    the lowest value of each ``best_lowest`` column marked."""
    best = {c: frame[c].min() for c in best_lowest if c in frame.columns}
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    rows = []
    for row in frame.iter_rows(named=True):
        cells = []
        for column, value in row.items():
            marked = ' class="best"' if column in best and value == best[column] else ""
            cells.append(f"<td{marked}>{_cell(value)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.3f}" if math.isfinite(value) else ""
    return html.escape(str(value))


def _series_figure(run: BacktestRun, item: str, market: str, models: list[str]) -> go.Figure:
    key = (pl.col("item_id") == item) & (pl.col("market") == market)
    actual = run.panel.data.filter(key).sort("timestamp").tail(
        HISTORY_SHOWN + run.protocol.test_length)
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=actual["timestamp"], y=actual["y"], name="actual",
                                line={"color": "black", "width": 2}))
    forecasts = run.forecasts.filter(key & pl.col("model").is_in(models))
    for model in models:
        rows = forecasts.filter(pl.col("model") == model).sort("timestamp")
        for window in rows["window"].unique().sort():
            part = rows.filter(pl.col("window") == window)
            figure.add_trace(go.Scatter(
                x=part["timestamp"], y=part["y_pred"], name=model, legendgroup=model,
                showlegend=bool(window == 0), mode="lines+markers",
                line={"color": colour(models.index(model))}))
    figure.update_layout(title=f"{item} in {market}", height=330,
                         margin={"l": 40, "r": 10, "t": 40, "b": 30}, yaxis_title="units")
    return figure


def colour(index: int) -> str:
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf"]
    return palette[index % len(palette)]


def _market_figure(by_market: pl.DataFrame) -> go.Figure:
    figure = go.Figure()
    for index, model in enumerate(by_market["model"].unique(maintain_order=True)):
        rows = by_market.filter(pl.col("model") == model)
        figure.add_trace(go.Bar(x=rows["segment"], y=rows["value"], name=model,
                                marker_color=colour(index)))
    figure.update_layout(barmode="group", title="WAPE (%) by market, all windows", height=380,
                         margin={"l": 40, "r": 10, "t": 40, "b": 30})
    return figure


def _notes_section(run: BacktestRun) -> str:
    windows = run.protocol.windows
    items = [f"<li><b>{html.escape(model)}</b>: failed, no results: {html.escape(error)}</li>"
             for model, error in run.failures.items()]
    items += [f"<li><b>{html.escape(model)}</b>: {html.escape(note.describe(windows))}</li>"
              for model, kept in run.notes.items() for note in kept]
    if not items:
        return "<p>No model noted a fallback, a masked input or an unused modality.</p>"
    return f"<ul>{''.join(items)}</ul>"


def write_report(run: BacktestRun, path: Path, title: str, seed: int = 0) -> None:
    """Write the report to ``path``."""
    summary = run.summary()
    wape = run.metrics.filter((pl.col("window") == "all") & (pl.col("metric") == "WAPE"))
    per_market = (wape.pivot(on="segment", index="model", values="value")
                  .sort("all", nulls_last=True))
    market_order = ["all", *[c for c in per_market.columns if c not in ("model", "all")]]
    per_market = per_market.select("model", *market_order)
    ranked = summary["model"].to_list()
    shown_models = ranked[:4] + [m for m in ("naive",) if m in ranked and m not in ranked[:4]]

    totals = (run.forecasts.group_by(SERIES_KEY).agg(pl.col("y_true").sum().alias("units"))
              .sort("units", descending=True, maintain_order=True))
    largest = totals.head(3)
    rest = totals.slice(3)
    rng = np.random.default_rng(seed)
    small = rest.filter(pl.col("units") <= rest["units"].median())
    sample = small[sorted(rng.choice(small.height, size=min(3, small.height), replace=False))] \
        if small.height else small
    figures = [_market_figure(wape.filter(pl.col("segment") != "all"))]
    figures += [_series_figure(run, r["item_id"], r["market"], shown_models)
                for r in pl.concat([largest, sample]).iter_rows(named=True)]
    plots = [figure.to_html(full_html=False, include_plotlyjs=(i == 0))
             for i, figure in enumerate(figures)]

    protocol = run.protocol
    log = ", ".join(f"{k.replace('_', ' ')}: {v:,}" for k, v in run.panel.log.items())
    body = f"""
<h1>{html.escape(title)}</h1>
<p class="note">Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by salesfusion.</p>
<h2>Data and protocol</h2>
<p>{run.panel.n_series:,} series, {run.panel.data.height:,} rows, {len(run.panel.periods)}
periods (freq {run.panel.freq}). Rolling origin: {protocol.windows} windows of horizon
{protocol.horizon}, step {protocol.stride}, {'refit at every origin' if protocol.refit
else 'fitted once'}; forecasts clipped at 0.</p>
<p class="note">Panel build log: {html.escape(log)}</p>
<h2>Overall accuracy (all windows, all markets)</h2>
{html_table(summary, best_lowest=("WAPE", "MASE", "sMAPE", "RMSE"))}
<p class="note">WAPE and sMAPE in percent; MASE scaled per series and window by the in-sample
mean absolute one-step difference; seconds = wall time of fit + predict over all windows.</p>
<h2>Model notes</h2>
<p class="note">What the models reported while fitting: encoder fallbacks, masked images or
texts, modalities configured but not used.</p>
{_notes_section(run)}
<h2>WAPE (%) per market</h2>
{html_table(per_market, best_lowest=tuple(market_order))}
{plots[0]}
<h2>Forecasts vs actuals</h2>
<p>The three largest series by test-period units, then three sampled among the smaller half
(seed {seed}). Models shown: {html.escape(', '.join(shown_models))}.</p>
{''.join(plots[1:])}
"""
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>"
                    f"{html.escape(title)}</title><style>{STYLE}</style></head>"
                    f"<body>{body}</body></html>")
