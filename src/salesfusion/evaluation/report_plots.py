"""The backtest report's figures: one series' actuals against each model's forecast with its
quantile band, and WAPE by market."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl

from salesfusion.evaluation.report_html import add_band, band_name, colour, figure_layout
from salesfusion.evaluation.report_media import ItemCatalogue
from salesfusion.evaluation.runner import BacktestRun

HISTORY_SHOWN = 26


def series_figure(run: BacktestRun, item: str, market: str, models: list[str],
                  bands: dict[str, tuple[str, str]], catalogue: ItemCatalogue) -> go.Figure:
    """Actuals (the test part and up to ``HISTORY_SHOWN`` periods before it) and each model's
    forecast per window. Every model with a band gets it; the first such model's band shows,
    the others' are a legend click away (overlapping bands hide each other)."""
    key = (pl.col("item_id") == item) & (pl.col("market") == market)
    actual = run.panel.data.filter(key).sort("timestamp").tail(
        HISTORY_SHOWN + run.protocol.test_length)
    forecasts = run.forecasts.filter(key & pl.col("model").is_in(models))
    figure = go.Figure()
    banded = [m for m in models if m in bands]
    for model in banded:  # bands first: the lines are drawn over them
        low, high = bands[model]
        rows = forecasts.filter(pl.col("model") == model).sort("timestamp")
        for index, window in enumerate(rows["window"].unique().sort()):
            part = rows.filter(pl.col("window") == window)
            add_band(figure, part["timestamp"], part[low], part[high],
                     name=band_name(model, low, high), colour_hex=colour(models.index(model)),
                     group=f"{model} band", show_legend=index == 0,
                     visible=True if model == banded[0] else "legendonly")
    figure.add_trace(go.Scatter(x=actual["timestamp"], y=actual["y"], name="actual",
                                line={"color": "black", "width": 2}))
    for model in models:
        rows = forecasts.filter(pl.col("model") == model).sort("timestamp")
        for index, window in enumerate(rows["window"].unique().sort()):
            part = rows.filter(pl.col("window") == window)
            figure.add_trace(go.Scatter(
                x=part["timestamp"], y=part["y_pred"], name=model, legendgroup=model,
                showlegend=index == 0, mode="lines+markers",
                line={"color": colour(models.index(model))}))
    return figure_layout(figure, f"{catalogue.label(item)} in {market}")


def market_figure(by_market: pl.DataFrame) -> go.Figure:
    """Grouped bars of WAPE per market (``model, segment, value`` rows)."""
    figure = go.Figure()
    for index, model in enumerate(by_market["model"].unique(maintain_order=True)):
        rows = by_market.filter(pl.col("model") == model)
        figure.add_trace(go.Bar(x=rows["segment"], y=rows["value"], name=model,
                                marker_color=colour(index)))
    figure.update_layout(barmode="group", title="WAPE (%) by market, all windows", height=380,
                         margin={"l": 40, "r": 10, "t": 40, "b": 30})
    return figure
