"""The report's bias sections: whether each model's forecasts add up to the demand that came,
per market, and how error and bias grow with the horizon step.

A planner orders from totals: a model whose forecasts sum to far less than actual demand runs
the shelf empty however good its WAPE (a median forecast of intermittent demand does exactly
that), so the report says it in a sentence per market beyond ``BIAS_FLAG_PCT``."""

from __future__ import annotations

import html

import polars as pl

from salesfusion.data.forecast_frame import model_rows
from salesfusion.scoring.metrics import evaluate

BIAS_FLAG_PCT = 10.0  # |bias_pct| past this in a market is worth a planner's attention
STEP_METRICS = ("WAPE", "bias_pct", "RMSSE")


def bias_flags(metrics: pl.DataFrame, threshold: float = BIAS_FLAG_PCT) -> pl.DataFrame:
    """``model, market, bias_pct`` over all windows where |bias_pct| exceeds ``threshold``,
    worst first."""
    return (metrics.filter((pl.col("window") == "all") & (pl.col("segment") != "all")
                           & (pl.col("metric") == "bias_pct") & pl.col("value").is_not_null()
                           & (pl.col("value").abs() > threshold))
            .select("model", pl.col("segment").alias("market"), pl.col("value").alias("bias_pct"))
            .sort(pl.col("bias_pct").abs(), "model", "market", descending=[True, False, False]))


def bias_sentence(model: str, market: str, bias_pct: float) -> str:
    """``forecasts 46 % below actual demand in SE over the backtest`` for one flag."""
    side = "below" if bias_pct < 0 else "above"
    return (f"{model} forecasts {abs(bias_pct):.0f} % {side} actual demand in {market} over "
            f"the backtest")


def bias_section(metrics: pl.DataFrame, models: list[str]) -> str:
    """The flags of ``models`` as sentences, or a line saying none was flagged."""
    flags = bias_flags(metrics).filter(pl.col("model").is_in(models))
    definition = ("<p>Bias is 100 x (total forecast / total actual - 1): negative means the "
                  "forecasts add up to less than the demand that came (stock-outs if ordered "
                  "from), positive to more.</p>")
    if flags.height == 0:
        return (definition + f"<p>No market of the models shown is off by more than "
                             f"{BIAS_FLAG_PCT:g} % in total.</p>")
    items = "".join(f"<li>{html.escape(bias_sentence(*row))}.</li>"
                    for row in flags.iter_rows())
    return (definition + f"<p>Markets off by more than {BIAS_FLAG_PCT:g} % either way:</p>"
            f"<ul class=\"bias-flags\">{items}</ul>")


def per_step(forecasts: pl.DataFrame, models: list[str]) -> pl.DataFrame:
    """WAPE, bias and RMSSE of each of ``models`` per horizon step (1 = the first period after
    the origin), over all windows and series."""
    parts = []
    for model in models:
        rows = model_rows(forecasts, model)
        if rows.height == 0:
            continue
        stepped = rows.with_columns(
            pl.col("timestamp").rank("dense").over("window").cast(pl.Int64).alias("step"))
        scored = evaluate(stepped, ["step"]).filter(pl.col("metric").is_in(STEP_METRICS))
        parts.append(scored.pivot(on="metric", index="step", values="value")
                     .with_columns(pl.lit(model).alias("model")))
    if not parts:
        return pl.DataFrame()
    frame = pl.concat(parts, how="diagonal")
    return frame.select("model", "step", *[m for m in STEP_METRICS if m in frame.columns]) \
        .sort("model", "step")
