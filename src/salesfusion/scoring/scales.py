"""The scales a forecast's errors are divided by: per series from its history before the
origin (``origin_context``: MASE, RMSSE and WRMSSE's revenue weight), and per market from the
training launches for new series, which have no history of their own (``launch_scale``).

RMSSE of a launch: M5 scales a series' RMSE by its own in-sample one-step naive RMSE, which a
new series does not have. The launch backtest scales it instead by its market's **launch
scale** (``launch_scale``): the root mean squared one-step difference of the training
launches' first H periods from launch in that market (the series the model was fitted on,
pooled; the step from "not yet selling" to the first period is not a difference, as M5 starts
a series at its first sale). So a launch RMSSE of 1 is an error as large as a typical
week-to-week swing of a new item in that market. A market with no training launch (nothing to
scale by) has no RMSSE; MASE stays null, being the absolute-error scale's question.
"""

from __future__ import annotations

import polars as pl

from salesfusion.data.launches import launch_rows
from salesfusion.data.panel import SERIES_KEY, Panel


def origin_context(history: Panel, horizon: int = 1) -> pl.DataFrame:
    """Per series at the origin: the last observed value, the MASE and RMSSE scales
    (in-sample mean absolute, and root mean squared, one-step difference) and WRMSSE's weight,
    the series' revenue over the last ``horizon`` periods (null without revenue or prices)."""
    step = pl.col("y").diff()
    recent = history.periods.sort().tail(horizon).min()
    revenue = _revenue(history.data.columns)
    weight = (pl.lit(None, dtype=pl.Float64) if revenue is None
              else revenue.filter(pl.col("timestamp") >= recent).sum().cast(pl.Float64))
    return (history.data.sort(*SERIES_KEY, "timestamp").group_by(SERIES_KEY, maintain_order=True)
            .agg(pl.col("y").last().alias("y_last"), step.abs().mean().alias("mase_scale"),
                 (step**2).mean().sqrt().alias("rmsse_scale"), weight.alias("revenue_weight")))


def _revenue(columns: list[str]) -> pl.Expr | None:
    """A period's revenue in the seller's currency: the panel's ``revenue`` where known, else
    units times ``price``; None when the panel has neither."""
    units_at_price = pl.col("y") * pl.col("price") if "price" in columns else None
    if "revenue" in columns:
        return pl.col("revenue").fill_null(units_at_price if units_at_price is not None else 0.0)
    return units_at_price


def launch_scale(train: Panel, horizon: int) -> pl.DataFrame:
    """``market, rmsse_scale``: per market, the root mean squared one-step difference of the
    training launches' first ``horizon`` periods (``data.launches.launch_rows``), pooled over
    them; what a launch's RMSE is scaled by, new series having no in-sample scale of their own.
    Without true launches in ``train`` (every series starts with the panel) there is none."""
    rows, launched = launch_rows(train, horizon)
    if not launched:
        return pl.DataFrame(schema={"market": pl.String, "rmsse_scale": pl.Float64})
    steps = rows.sort(*SERIES_KEY, "period_since_launch").with_columns(
        pl.col("y").cast(pl.Float64).diff().over(SERIES_KEY).alias("_step"))
    return (steps.drop_nulls("_step").group_by("market")
            .agg((pl.col("_step") ** 2).mean().sqrt().alias("rmsse_scale"))
            .filter(pl.col("rmsse_scale") > 0).sort("market"))
