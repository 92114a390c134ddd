"""The backtest report's cold-start section: series with no history at a window's origin (new
items), the errors of any forecasts made for them, and how the models did on young series (a
few periods of history at the origin), with plots."""

from __future__ import annotations

import html

import polars as pl

from salesfusion.data.forecast_frame import model_rows
from salesfusion.data.panel import SERIES_KEY
from salesfusion.evaluation.report_html import Figures, html_table
from salesfusion.evaluation.report_media import ItemCatalogue
from salesfusion.evaluation.report_plots import series_figure
from salesfusion.evaluation.report_sections import reads_history
from salesfusion.evaluation.runner import BacktestRun
from salesfusion.scoring.metrics import evaluate

# Series with fewer periods than this at the origin count as young: launched within about two
# months of weekly data, when history-reading models have little of their own past to read.
YOUNG_PERIODS = 8
YOUNG_PLOTS = 3
COLD_ROWS = 40  # new series listed, the largest first


def history_at_origin(run: BacktestRun) -> pl.DataFrame:
    """``item_id, market, window, history_periods``: the periods each series had at each
    window's origin (series with none are absent)."""
    frames = [run.panel.data.filter(pl.col("timestamp") <= origin).group_by(SERIES_KEY)
              .agg(pl.len().cast(pl.Int64).alias("history_periods"))
              .with_columns(pl.lit(window, dtype=pl.Int64).alias("window"))
              for window, origin in enumerate(run.protocol.origins(run.panel.periods))]
    return pl.concat(frames).select(*SERIES_KEY, "window", "history_periods")


def cold_series(run: BacktestRun) -> pl.DataFrame:
    """Series with actuals in a test window but no history at its origin: ``item_id, market,
    first period, windows`` (1-based, as the report counts them) and ``units in test part``,
    the largest first."""
    data, periods = run.panel.data, run.panel.periods
    starts = run.panel.series().select(*SERIES_KEY, pl.col("start").alias("first period"))
    origins = run.protocol.origins(periods)
    parts = []
    for window, origin in enumerate(origins):
        end = periods.filter(periods > origin).head(run.protocol.horizon).max()
        present = data.filter(pl.col("timestamp").is_between(origin, end, closed="right"))
        parts.append(present.select(SERIES_KEY).unique().join(starts, on=SERIES_KEY)
                     .filter(pl.col("first period") > origin)
                     .with_columns(pl.lit(window + 1, dtype=pl.Int64).alias("window")))
    cold = pl.concat(parts).group_by(*SERIES_KEY, "first period").agg(
        pl.col("window").sort().cast(pl.Utf8).str.join(", ").alias("windows"))
    units = (data.filter(pl.col("timestamp") > origins[0]).group_by(SERIES_KEY)
             .agg(pl.col("y").sum().alias("units in test part")))
    return (cold.join(units, on=SERIES_KEY, how="left")
            .with_columns(pl.col("first period").cast(pl.Date))
            .sort("units in test part", *SERIES_KEY, descending=[True, False, False]))


def errors_by_model(rows: pl.DataFrame) -> pl.DataFrame:
    """WAPE, bias, MASE and interval coverage of each model on ``rows`` (forecast rows), with the
    number of points scored and whether the model reads history."""
    out = []
    for model in rows["model"].unique(maintain_order=True).to_list():
        scored = evaluate(model_rows(rows, model))
        values = dict(zip(scored["metric"].to_list(), scored["value"].to_list(), strict=True))
        out.append({"model": model, "reads history": "yes" if reads_history(model) else "no",
                    "points": model_rows(rows, model).height, "WAPE": values.get("WAPE"),
                    "bias_pct": values.get("bias_pct"), "MASE": values.get("MASE"),
                    "coverage": values.get("coverage")})
    schema = {"model": pl.Utf8, "reads history": pl.Utf8, "points": pl.Int64,
              "WAPE": pl.Float64, "bias_pct": pl.Float64, "MASE": pl.Float64,
              "coverage": pl.Float64}
    return pl.DataFrame(out, schema=schema).sort("WAPE", nulls_last=True)


def cold_start_section(run: BacktestRun, catalogue: ItemCatalogue, figures: Figures,
                       models: list[str], bands: dict[str, tuple[str, str]]) -> str:
    """The section's HTML (without its heading): cold series, their errors where any model
    forecast them, and the young series' errors and plots for ``models``."""
    aged = run.forecasts.join(history_at_origin(run), on=[*SERIES_KEY, "window"], how="left")
    aged = aged.with_columns(pl.col("history_periods").fill_null(0))
    cold = cold_series(run)
    parts = []
    if cold.height:
        shown = f" The {COLD_ROWS} largest:" if cold.height > COLD_ROWS else ""
        parts.append(
            f"<p>{cold.height:,} series had sales in a test window but no history at its "
            f"origin: items new to the market.{shown}</p>"
            + html_table(catalogue.with_item_cells(cold.head(COLD_ROWS)), raw=("item",)))
    else:
        parts.append("<p>Every series scored had history at each origin: no new item sold "
                     "in a test window.</p>")
    scored_cold = aged.filter(pl.col("history_periods") == 0)
    if scored_cold.height:
        parts.append("<h3>Errors on series with no history at the origin</h3>"
                     + html_table(errors_by_model(scored_cold), best_lowest=("WAPE", "MASE")))
    elif cold.height:
        parts.append(
            "<p class=\"note\">The rolling backtest scores only series with history at the "
            "origin, so these were not scored here; <code>salesfusion backtest --protocol "
            "launch</code> scores new items from their launch. Cold-start-only models never "
            "read a series' own sales, so their errors above stand for what a new item's "
            "forecast would get.</p>")
    young = aged.filter(pl.col("history_periods").is_between(1, YOUNG_PERIODS - 1))
    if young.height == 0:
        parts.append(f"<p>No series scored had fewer than {YOUNG_PERIODS} periods of history "
                     f"at an origin.</p>")
        return "".join(parts)
    parts.append(f"<h3>Young series: 1 to {YOUNG_PERIODS - 1} periods of history at the "
                 f"origin</h3>"
                 + html_table(errors_by_model(young), best_lowest=("WAPE", "MASE")))
    # One plot per item: a new item usually launches in every market at once.
    largest = (young.group_by(SERIES_KEY).agg(pl.col("y_true").sum().alias("units"),
                                              pl.col("history_periods").min().alias("periods"))
               .sort("units", *SERIES_KEY, descending=[True, False, False])
               .unique("item_id", keep="first", maintain_order=True).head(YOUNG_PLOTS))
    for row in largest.iter_rows(named=True):
        item, market = row["item_id"], row["market"]
        parts.append(f'<div class="series-head">{catalogue.cell(item)} in '
                     f'{html.escape(market)}: {row["periods"]} period(s) of history at its '
                     f'first scored origin</div>')
        parts.append(figures.html(series_figure(run, item, market, models, bands, catalogue)))
    return "".join(parts)
