"""A self-contained HTML report of a backtest, for a demand planner: which model to trust in
each market and by how much, accuracy with interval coverage (models that read history apart
from cold-start-only ones), forecast-vs-actual plots with quantile bands, items shown with
their titles and thumbnails, and a cold-start section. Plotly's JavaScript is embedded once, so
the file works offline.

``html_table``, ``colour`` and ``STYLE`` live in ``report_html`` and are re-exported here, where
the explain report imports them."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import polars as pl

from salesfusion.data.panel import SERIES_KEY
from salesfusion.evaluation.report_bias import bias_section, per_step
from salesfusion.evaluation.report_cold import YOUNG_PERIODS, cold_start_section
from salesfusion.evaluation.report_html import STYLE, Figures, colour, html_table, page, section
from salesfusion.evaluation.report_media import ItemCatalogue
from salesfusion.evaluation.report_plots import market_figure, series_figure
from salesfusion.evaluation.report_sections import (
    interval_bands,
    overall_accuracy,
    per_market,
    split_by_history,
    trust_section,
)
from salesfusion.evaluation.runner import BacktestRun
from salesfusion.scoring.selection import DEFAULT_METRIC

__all__ = ["STYLE", "colour", "html_table", "write_report"]
METRICS_SHOWN = ("WAPE", "bias_pct", "RMSSE", "WRMSSE", "MASE", "sMAPE", "RMSE")
# Lower is better for each but bias, whose best is nearest 0.
BEST_LOWEST = tuple(m for m in METRICS_SHOWN if m != "bias_pct")


def _notes_section(run: BacktestRun) -> str:
    windows = run.protocol.windows
    items = [f"<li><b>{html.escape(model)}</b>: failed, no results: {html.escape(error)}</li>"
             for model, error in run.failures.items()]
    items += [f"<li><b>{html.escape(model)}</b>: {html.escape(note.describe(windows))}</li>"
              for model, kept in run.notes.items() for note in kept]
    if not items:
        return "<p>No model noted a fallback, a masked input or an unused modality.</p>"
    return f"<ul>{''.join(items)}</ul>"


def _accuracy_sections(run: BacktestRun, bands: dict[str, tuple[str, str]]) -> str:
    accuracy = overall_accuracy(run.summary(METRICS_SHOWN), run.metrics, bands)
    history, cold_only = split_by_history(accuracy)
    legend = ("<p class=\"note\">point: what the model's forecast is, the mean of demand (forecasts"
              " add up to the expected total) or its median (lower on intermittent demand, which "
              "WAPE rewards). WAPE, bias_pct and sMAPE in percent (bias_pct: total forecast over "
              "total actual, minus 1; negative = under-forecast); MASE scaled per series and window"
              " by the in-sample mean absolute one-step difference, RMSSE by the in-sample root "
              "mean squared one-step difference (M5), WRMSSE the RMSSE weighted by each series' "
              "revenue over the last horizon's periods before the origin (M5; data with prices); "
              "coverage = share of actuals inside the model's band (lowest to highest quantile), "
              "nominal = the share it should hold (q0.9 - q0.1 = 0.8); seconds = wall time of "
              "fit + predict over all windows.</p>")
    parts = [section("accuracy-history", "Overall accuracy: models that read history",
                     html_table(history, best_lowest=BEST_LOWEST) + legend
                     if history.height else "<p>No model that reads history was run.</p>")]
    if cold_only.height:
        parts.append(section(
            "accuracy-cold-only", "Overall accuracy: cold-start-only models",
            "<p>These models never read a series' own sales (they forecast from similar items "
            "or from age since launch), so their error is what a new item's forecast would "
            "get; compare them with each other, not with the models above.</p>"
            + html_table(cold_only, best_lowest=BEST_LOWEST)))
    return "".join(parts)


def _market_tables(run: BacktestRun) -> str:
    wape = per_market(run.metrics, "WAPE")
    history, cold_only = split_by_history(wape)
    markets = tuple(c for c in wape.columns if c != "model")
    parts = [html_table(pl.concat([history, cold_only]), best_lowest=markets),
             "<p class=\"note\">Cold-start-only models, if any, are the last rows.</p>"
             if cold_only.height else ""]
    bias = per_market(run.metrics, "bias_pct")
    if bias.height:
        parts.append("<h3>Bias (%) per market</h3>" + html_table(bias))
    rmsse = per_market(run.metrics, "RMSSE")
    if rmsse.height:
        parts.append("<h3>RMSSE per market</h3>"
                     + html_table(rmsse, best_lowest=tuple(c for c in rmsse.columns
                                                          if c != "model")))
    coverage = per_market(run.metrics, "coverage")
    if coverage.height:
        parts.append("<h3>Interval coverage per market</h3>" + html_table(coverage))
    return "".join(parts)


def _plotted_series(run: BacktestRun, seed: int) -> pl.DataFrame:
    """The three largest series by test-period units, then three sampled among the smaller
    half."""
    totals = (run.forecasts.group_by(SERIES_KEY).agg(pl.col("y_true").sum().alias("units"))
              .sort("units", *SERIES_KEY, descending=[True, False, False]))
    rest = totals.slice(3)
    small = rest.filter(pl.col("units") <= rest["units"].median())
    rng = np.random.default_rng(seed)
    sample = small[sorted(rng.choice(small.height, size=min(3, small.height), replace=False))] \
        if small.height else small
    return pl.concat([totals.head(3), sample])


def write_report(run: BacktestRun, path: Path, title: str, seed: int = 0,
                 metric: str = DEFAULT_METRIC) -> None:
    """Write the report to ``path``; "which model to trust" chooses by ``metric``
    (``scoring.selection``)."""
    ranked = run.summary()["model"].to_list()
    reading, cold_only = (list(frame["model"]) for frame in
                          split_by_history(pl.DataFrame({"model": ranked}, schema={
                              "model": pl.Utf8})))
    # The three best that read history, naive as the yardstick, the best cold-start-only one.
    shown = reading[:3] + [m for m in ("naive",) if m in reading[3:]] + cold_only[:1]
    bands = interval_bands(run.forecasts)
    catalogue = ItemCatalogue(run.panel.items, run.panel.image_root)
    figures = Figures()
    trust_html = trust_section(run.metrics, metric)
    wape = run.metrics.filter((pl.col("window") == "all") & (pl.col("metric") == "WAPE")
                              & (pl.col("segment") != "all"))
    market_plot = figures.html(market_figure(wape))
    plots = []
    for row in _plotted_series(run, seed).iter_rows(named=True):
        item, market = row["item_id"], row["market"]
        plots.append(f'<div class="series-head">{catalogue.cell(item)} in '
                     f'{html.escape(market)}</div>')
        plots.append(figures.html(series_figure(run, item, market, shown, bands, catalogue)))
    cold_html = cold_start_section(run, catalogue, figures, shown, bands)
    steps = per_step(run.forecasts, shown)
    steps_html = (html_table(steps) if steps.height else "<p>No forecasts.</p>")
    protocol = run.protocol
    log = ", ".join(f"{k.replace('_', ' ')}: {v:,}" for k, v in run.panel.log.items())
    body = f"""
<h2>Data and protocol</h2>
<p>{run.panel.n_series:,} series, {run.panel.data.height:,} rows, {len(run.panel.periods)}
periods (freq {run.panel.freq}). Rolling origin: {protocol.windows} windows of horizon
{protocol.horizon}, step {protocol.stride}, {'refit at every origin' if protocol.refit
else 'fitted once'}; forecasts clipped at 0.</p>
<p class="note">Panel build log: {html.escape(log)}</p>
{section("trust", "Which model to trust per market", trust_html)}
{section("bias", "Do the forecasts add up? Bias per market", bias_section(run.metrics, ranked))}
{_accuracy_sections(run, bands)}
<h2>Model notes</h2>
<p class="note">What the models reported while fitting: encoder fallbacks, masked images or
texts, modalities configured but not used.</p>
{_notes_section(run)}
<h2>WAPE (%) per market</h2>
{_market_tables(run)}
{market_plot}
{section("steps", "Error and bias per horizon step", steps_html)}
<h2>Forecasts vs actuals</h2>
<p>The three largest series by test-period units, then three sampled among the smaller half
(seed {seed}). Models shown: {html.escape(', '.join(shown))}. The shaded band is the first
shown model's interval; click a model's band in the legend to see its own.</p>
{''.join(plots)}
{section("cold-start", "Cold start: new and young series", cold_html)}
<p class="note">Young: fewer than {YOUNG_PERIODS} periods of history at the origin.</p>
"""
    path.write_text(page(title, body))
