"""A self-contained HTML report of a forecast of the future (``salesfusion predict --report``):
per-market totals with their band, the largest series with their history, the cold-start
series, the model's backtest record per market when one is given, and the forecast rows.
Plotly's JavaScript is embedded once, so the file works offline."""

from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go
import polars as pl

from salesfusion.data.forecast_frame import quantile_columns
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.errors import InputError
from salesfusion.evaluation.report_html import (
    Figures,
    add_band,
    band_name,
    colour,
    figure_layout,
    html_table,
    nominal_level,
    page,
    section,
)
from salesfusion.evaluation.report_media import ItemCatalogue
from salesfusion.evaluation.report_sections import trust_per_market
from salesfusion.scoring.selection import (
    DEFAULT_METRIC,
    metric_column,
    metric_label,
    selection_rows,
)

HISTORY_SHOWN = 26
MAX_ROWS = 200  # forecast rows shown in the table; the Parquet file has them all
MARKETS_PLOTTED = 8
COLD_PLOTS = 3
COLD_ROWS = 50  # cold-start series listed, the largest first
FLAGS = ("cold_start", "before_launch", "after_end")
BACKTEST_COLUMNS = ("model", "window", "segment", "metric", "value")


def write_forecast_report(forecast: pl.DataFrame, history: Panel, path: Path, title: str,
                          model_name: str, backtest: pl.DataFrame | None = None,
                          max_series: int = 12, metric: str = DEFAULT_METRIC) -> None:
    """Write the report of ``forecast`` (what ``Forecaster.predict`` returns) made from
    ``history`` to ``path``. ``backtest``: a backtest's metrics table (``metrics.csv``: model,
    window, segment, metric, value) to show the model's record per market beside the best
    model's by ``metric`` (``scoring.selection``); ``max_series``: the largest series
    plotted with their history."""
    forecast = _checked(forecast, max_series)
    bands = quantile_columns(forecast.columns)
    band = (bands[0], bands[-1]) if len(bands) >= 2 else None
    catalogue = ItemCatalogue(history.items, history.image_root)
    figures = Figures()
    volume = (forecast.group_by(SERIES_KEY)
              .agg(pl.col("y_pred").sum().alias("forecast units"),
                   *[pl.col(q).sum().alias(q) for q in band or ()],
                   pl.col("cold_start").any().alias("cold_start"))
              .sort("forecast units", *SERIES_KEY, descending=[True, False, False]))
    periods = forecast["timestamp"].unique().sort()
    zeroed = {flag: forecast.filter(pl.col(flag)).height for flag in FLAGS[1:]}
    band_text = (f"the band is {band[0]} to {band[1]} (nominal {nominal_level(*band):.0%} of "
                 f"actuals inside)" if band else "the model gives no quantiles, so no band")
    parts = [f"<p>Model <b>{html.escape(model_name)}</b>: {volume.height:,} series in "
             f"{volume['market'].n_unique():,} markets, {len(periods)} period(s) from "
             f"{periods[0]:%Y-%m-%d} to {periods[-1]:%Y-%m-%d} (freq {history.freq}); "
             f"{int(volume['cold_start'].sum()):,} series without history (cold start); "
             f"{html.escape(band_text)}. {zeroed['before_launch']:,} row(s) before an item's "
             f"launch and {zeroed['after_end']:,} after its end are forecast as 0; forecasts "
             f"and quantiles are shown clipped at 0.</p>"]
    if backtest is not None:
        parts.append(section("backtest", "Backtest record per market",
                             _backtest_record(backtest, model_name, metric)))
    parts.append(section("markets", "Forecast per market",
                         _markets(forecast, history, band, figures)))
    top = volume.head(max_series)
    plots = [_series_block(forecast, history, row["item_id"], row["market"], band, catalogue,
                           figures) for row in top.iter_rows(named=True)]
    parts.append(section("top-series", f"The {top.height} largest series by forecast units",
                         "".join(plots)))
    parts.append(section("cold-start", "Cold start: series without history",
                         _cold_start(forecast, history, volume, band, catalogue, figures)))
    parts.append(section("forecast-table", "Forecast rows",
                         _rows_table(forecast, volume, catalogue)))
    path.write_text(page(title, "".join(parts)))


def _checked(forecast: pl.DataFrame, max_series: int) -> pl.DataFrame:
    for column in (*SERIES_KEY, "timestamp", "y_pred"):
        if column not in forecast.columns:
            raise InputError(f"forecast report: the forecast has no '{column}' column")
    if forecast.height == 0:
        raise InputError("forecast report: the forecast has no rows")
    if max_series < 1:
        raise InputError(f"forecast report: max_series must be at least 1, got {max_series}")
    # A launch forecast (``predict_launch``) has no flags: every series in it is new.
    launch = "period_since_launch" in forecast.columns
    demand = ["y_pred", *quantile_columns(forecast.columns)]
    # Demand is never negative: shown clipped at 0, as the backtest scores it.
    return forecast.with_columns(
        pl.col(demand).cast(pl.Float64).clip(lower_bound=0.0),
        *[pl.lit(launch and flag == "cold_start").alias(flag)
          for flag in FLAGS if flag not in forecast.columns])


def _backtest_record(backtest: pl.DataFrame, model_name: str, metric: str) -> str:
    """Per market: this model's score by ``metric``, its bias and coverage, beside the best
    model's score; a warning naming the markets where another model scored better."""
    missing = [c for c in BACKTEST_COLUMNS if c not in backtest.columns]
    if missing:
        raise InputError(f"forecast report: the backtest metrics have no '{missing[0]}' column")
    metrics = backtest.with_columns(pl.col("window").cast(pl.Utf8))
    label = metric_label(metric)
    if metric_column(metric) not in metrics["metric"].to_list():
        raise InputError(f"forecast report: the backtest metrics have no {metric_column(metric)}"
                         f" rows to compare models by {label}; rerun the backtest, or give "
                         f"--metric wape")
    if model_name not in metrics["model"].to_list():
        return (f"<p>The backtest given did not score {html.escape(model_name)}; its best "
                f"model per market by {label} is below.</p>"
                + html_table(trust_per_market(metrics, metric)))
    mine = metrics.filter((pl.col("model") == model_name) & (pl.col("window") == "all")
                          & (pl.col("segment") != "all"))
    own = pl.concat([selection_rows(mine, metric),
                     mine.filter(pl.col("metric").is_in(["bias_pct", "coverage"]))]).pivot(
        on="metric", index="segment", values="value").rename({"segment": "market"})
    for column in ("bias_pct", "coverage"):
        if column not in own.columns:
            own = own.with_columns(pl.lit(None, dtype=pl.Float64).alias(column))
    best = trust_per_market(metrics, metric).select("market", "best", f"best {label}")
    record = (own.select("market", pl.col(label).alias(f"this model {label}"), "bias_pct",
                         "coverage")
              .join(best, on="market", how="left")
              .with_columns((pl.col(f"this model {label}") - pl.col(f"best {label}"))
                            .alias(f"behind best ({label})")).sort("market"))
    beaten = record.filter(pl.col("best") != model_name)["market"].to_list()
    note = (f"<p class=\"warn\">Another model had the lower backtest {label} in "
            f"{html.escape(', '.join(beaten))}: consider it there.</p>" if beaten else
            f"<p>{html.escape(model_name)} was the best model on the backtest by {label} in "
            f"every market.</p>")
    return html_table(record) + note


def _markets(forecast: pl.DataFrame, history: Panel, band: tuple[str, str] | None,
             figures: Figures) -> str:
    quantiles = list(band or ())
    table = (forecast.group_by("market")
             .agg(pl.col("y_pred").sum().alias("forecast units"),
                  *[pl.col(q).sum() for q in quantiles],
                  pl.struct(SERIES_KEY).n_unique().alias("series"),
                  pl.struct(SERIES_KEY).filter(pl.col("cold_start")).n_unique()
                  .alias("cold-start series"))
             .sort("forecast units", "market", descending=[True, False]))
    markets = table["market"].head(MARKETS_PLOTTED).to_list()
    plots = "".join(figures.html(f) for f in market_figures(forecast, history, band, markets))
    note = ("<p class=\"note\">A market's band is the sum of its series' quantiles: wider than "
            "the interval of the total, since series' errors partly cancel.</p>" if band else "")
    shown = (f"<p class=\"note\">The {MARKETS_PLOTTED} largest markets are plotted.</p>"
             if table.height > MARKETS_PLOTTED else "")
    return html_table(table) + note + _new_series_note(forecast, history) + plots + shown


def market_figures(forecast: pl.DataFrame, history: Panel, band: tuple[str, str] | None,
                   markets: list[str]) -> list[go.Figure]:
    """Units per market, series with history apart from new ones: one figure of the series
    that had history (their own history, solid, then their forecast, dashed) and one of the
    cold-start series (launches: forecast only). Plotting a market's whole history against
    the forecast of a few launches would read as a collapse of demand, so neither figure mixes
    series the other holds. ``forecast`` carries ``cold_start`` (``_checked``)."""
    figures = []
    running = forecast.filter(~pl.col("cold_start"))
    if running.height:
        past = history.data.join(running.select(SERIES_KEY).unique(), on=SERIES_KEY, how="semi")
        figures.append(_market_figure(
            running, past, band, markets,
            "Units per market, series with history: history (solid), forecast (dashed)"))
    launches = forecast.filter(pl.col("cold_start"))
    if launches.height:
        figures.append(_market_figure(
            launches, None, band, markets,
            "Units per market, new series (launches, cold start): forecast only"))
    return figures


def _market_figure(forecast: pl.DataFrame, past: pl.DataFrame | None,
                   band: tuple[str, str] | None, markets: list[str], title: str) -> go.Figure:
    totals = (forecast.group_by("market", "timestamp")
              .agg(pl.col("y_pred", *(band or ())).sum()).sort("market", "timestamp"))
    figure = go.Figure()
    for index, market in enumerate(markets):
        ahead = totals.filter(pl.col("market") == market)
        if ahead.height == 0:
            continue
        if band:
            add_band(figure, ahead["timestamp"], ahead[band[0]], ahead[band[1]],
                     name=f"{market} {band_name('', *band).strip()}",
                     colour_hex=colour(index), group=market, show_legend=False)
        if past is not None:
            before = (past.filter(pl.col("market") == market).group_by("timestamp")
                      .agg(pl.col("y").sum()).sort("timestamp").tail(HISTORY_SHOWN))
            figure.add_trace(go.Scatter(x=before["timestamp"], y=before["y"],
                                        name=f"{market} history", legendgroup=market,
                                        line={"color": colour(index)}))
        figure.add_trace(go.Scatter(x=ahead["timestamp"], y=ahead["y_pred"],
                                    name=f"{market} forecast", legendgroup=market,
                                    mode="lines+markers",
                                    line={"color": colour(index), "dash": "dash"}))
    return figure_layout(figure, title, height=420)


def _new_series_note(forecast: pl.DataFrame, history: Panel) -> str:
    """For a forecast with new series: what the markets' existing series sold, in words, as
    the scale the launches' forecasts are not to be read against on one axis."""
    new = forecast.filter(pl.col("cold_start"))
    if new.height == 0:
        return ""
    recent = history.data.filter(pl.col("timestamp").is_in(
        history.data["timestamp"].unique().sort().tail(HISTORY_SHOWN).implode()))
    weekly = (recent.group_by("market", "timestamp").agg(pl.col("y").sum())
              .group_by("market").agg(pl.col("y").mean()).sort("market"))
    known = ", ".join(f"{html.escape(m)} {y:,.0f}" for m, y in weekly.iter_rows())
    return (f"<p class=\"note\">{new.select(SERIES_KEY).unique().height:,} new series "
            f"(launches or cold start) are plotted apart from the series with history: their "
            f"forecast is what they add to a market, not the market's demand. For scale, all "
            f"series with history sold per period over the last {HISTORY_SHOWN} periods: "
            f"{known or 'none'}.</p>")


def _series_figure(forecast: pl.DataFrame, history: Panel, item: str, market: str,
                   band: tuple[str, str] | None, catalogue: ItemCatalogue) -> go.Figure:
    key = (pl.col("item_id") == item) & (pl.col("market") == market)
    ahead = forecast.filter(key).sort("timestamp")
    before = history.data.filter(key).sort("timestamp").tail(HISTORY_SHOWN)
    figure = go.Figure()
    if band:
        add_band(figure, ahead["timestamp"], ahead[band[0]], ahead[band[1]],
                 name=band_name("forecast", *band), colour_hex=colour(0), group="band")
    if before.height:
        figure.add_trace(go.Scatter(x=before["timestamp"], y=before["y"], name="history",
                                    line={"color": "black", "width": 2}))
    figure.add_trace(go.Scatter(x=ahead["timestamp"], y=ahead["y_pred"], name="forecast",
                                mode="lines+markers", line={"color": colour(0)}))
    return figure_layout(figure, f"{catalogue.label(item)} in {market}")


def _series_block(forecast: pl.DataFrame, history: Panel, item: str, market: str,
                  band: tuple[str, str] | None, catalogue: ItemCatalogue,
                  figures: Figures) -> str:
    cold = forecast.filter((pl.col("item_id") == item) & (pl.col("market") == market)
                           & pl.col("cold_start")).height > 0
    flag = " (cold start: no history)" if cold else ""
    head = (f'<div class="series-head">{catalogue.cell(item)} in {html.escape(market)}'
            f'{flag}</div>')
    return head + figures.html(_series_figure(forecast, history, item, market, band, catalogue))


def _cold_start(forecast: pl.DataFrame, history: Panel, volume: pl.DataFrame,
                band: tuple[str, str] | None, catalogue: ItemCatalogue,
                figures: Figures) -> str:
    cold = volume.filter(pl.col("cold_start")).drop("cold_start")
    if cold.height == 0:
        return "<p>No series in this forecast is cold start: every one had history.</p>"
    launches = (forecast.filter(~pl.col("before_launch")).group_by(SERIES_KEY)
                .agg(pl.col("timestamp").min().cast(pl.Date).alias("selling from")))
    table = catalogue.with_item_cells(cold.head(COLD_ROWS).join(launches, on=SERIES_KEY,
                                                                how="left"))
    plots = [_series_block(forecast, history, row["item_id"], row["market"], band, catalogue,
                           figures) for row in cold.head(COLD_PLOTS).iter_rows(named=True)]
    shown = f" The {COLD_ROWS} largest are listed." if cold.height > COLD_ROWS else ""
    return (f"<p>{cold.height:,} series had no history in the data the forecast was made from; "
            f"they are forecast from other series (similar items, launch curves). Units and "
            f"band over the whole horizon, largest first.{shown}</p>"
            + html_table(table, raw=("item",)) + "".join(plots))


def _rows_table(forecast: pl.DataFrame, volume: pl.DataFrame,
                catalogue: ItemCatalogue) -> str:
    order = volume.select(SERIES_KEY).with_row_index("_rank")
    rows = (forecast.join(order, on=SERIES_KEY, how="left").sort("_rank", "timestamp")
            .head(MAX_ROWS))
    quantiles = quantile_columns(forecast.columns)
    table = rows.select(
        "item_id", pl.col("item_id").map_elements(catalogue.title, return_dtype=pl.Utf8)
        .alias("title"), "market", pl.col("timestamp").cast(pl.Date), "y_pred", *quantiles,
        *[pl.when(pl.col(f)).then(pl.lit("yes")).otherwise(pl.lit("")).alias(f)
          for f in FLAGS])
    shown = (f"The first {MAX_ROWS:,} of {forecast.height:,} rows, largest series first."
             if forecast.height > MAX_ROWS else f"All {forecast.height:,} rows.")
    return f"<p class=\"note\">{shown}</p>" + html_table(table)
