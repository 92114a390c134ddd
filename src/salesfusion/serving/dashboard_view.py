"""One series as the dashboard's ``/v1/dashboard/view`` shows it: its history, each picked
model's forecast with its quantile band, those models' backtest forecasts, its title, its item's
content by registered modality, and all of it as rows (what ``?format=csv`` returns)."""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from salesfusion.data.forecast_frame import quantile_columns
from salesfusion.data.panel import SERIES_KEY
from salesfusion.errors import InputError
from salesfusion.serving import dashboard_data as data
from salesfusion.serving.dependencies import check_horizon
from salesfusion.serving.errors import ApiError
from salesfusion.serving.security import Limits
from salesfusion.serving.store import Insights, ServedModel

DEFAULT_HORIZON = 8  # periods shown for a model that forecasts any horizon
TABLE_COLUMNS = ["series", "model", "window", "timestamp", "y", "y_pred", "lower", "upper"]


def floats(values: list[Any]) -> list[float | None]:
    """``values`` as JSON numbers: a missing or non-finite value is null."""
    return [None if v is None or not math.isfinite(v) else float(v) for v in values]


def stamps(frame: pl.DataFrame) -> list[str]:
    return frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S").to_list()


def served_backtest(insights: Insights) -> pl.DataFrame:
    """The served backtest's forecasts, else a 404 saying why there are none."""
    if insights.backtest is None:
        raise ApiError(404, "no_backtest", "no backtest is served (start the server with "
                                           "--backtest DIR)")
    try:
        return data.read_backtest(insights.backtest)
    except InputError as exc:
        raise ApiError(404, "no_backtest", str(exc)) from None


def backtest_overlays(frame: pl.DataFrame, picked: list[ServedModel], item_id: str,
                      market: str) -> list[dict[str, Any]]:
    """One series' backtest forecasts for each picked model, one entry per window. A served
    model's backtest rows are those under its name, else under its kind (the forecaster's
    name, which ``salesfusion backtest`` uses)."""
    offered = set(frame["model"].unique().to_list())
    overlays = []
    for model in picked:
        source = next((n for n in (model.name, model.forecaster.name) if n in offered), None)
        if source is None:
            continue
        rows = data.series_backtest(frame, item_id, market, [source])
        for (window,), part in rows.group_by(["window"], maintain_order=True):
            overlays.append({"model": model.name, "source": source, "window": window,
                             "timestamps": stamps(part),
                             "y_true": floats(part["y_true"].to_list()),
                             "y_pred": floats(part["y_pred"].to_list())})
    return overlays


def shown_content(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Content parts (``dashboard_data.item_contents``) as the page shows them: a part that
    reads a file carries its thumbnail as ``photo`` (None when unreadable), never a path."""
    return [{"modality": p["modality"], "about": p["about"], "value": p["value"],
             "photo": data.thumbnail(p["file"]) if p["reads_files"] else None} for p in parts]


def series_view(picked: list[ServedModel], series: dict[str, Any],
                content: list[dict[str, Any]], horizon: int | None, limits: Limits,
                insights: Insights) -> dict[str, Any]:
    """The view of ``series`` (a row of the series catalogue) through the ``picked`` models,
    each forecasting ``horizon`` periods (its own horizon when None); ``content`` is its
    item's content parts."""
    item_id, market = series["item_id"], series["market"]
    keys = pl.DataFrame({"item_id": [item_id], "market": [market]})
    steps = {m.name: check_horizon(horizon or m.max_horizon or DEFAULT_HORIZON, m, limits,
                                   "horizon") for m in picked}
    history = pl.DataFrame(schema={"timestamp": pl.Datetime("us"), "y": pl.Float64})
    for model in picked:
        rows = model.history.data.join(keys, on=SERIES_KEY, how="semi")
        if rows.height:
            history = rows.select("timestamp", pl.col("y").cast(pl.Float64)).sort("timestamp")
            break
    table_rows = [["history", None, None, t, y, None, None, None]
                  for t, y in zip(stamps(history), floats(history["y"].to_list()), strict=True)]
    forecasts, notes = [], []
    for model in picked:
        frame = model.forecast(steps[model.name], keys).sort("timestamp")
        if not frame.height:
            notes.append(f"{model.name}: {model.unknown_reason(item_id, market)}")
            continue
        band = quantile_columns(frame.columns)
        lower, upper = (band[0], band[-1]) if len(band) >= 2 else (None, None)
        times, point = stamps(frame), floats(frame["y_pred"].to_list())
        low = floats(frame[lower].to_list()) if lower else [None] * len(times)
        high = floats(frame[upper].to_list()) if upper else [None] * len(times)
        forecasts.append({"model": model.name, "kind": model.forecaster.name,
                          "cold_start": bool(frame["cold_start"].any())
                          if "cold_start" in frame.columns else False,
                          "band": f"{lower}-{upper}" if lower else None,
                          "timestamps": times, "y_pred": point, "lower": low, "upper": high})
        table_rows += [["forecast", model.name, None, t, None, p, lo, hi]
                       for t, p, lo, hi in zip(times, point, low, high, strict=True)]
    overlays: list[dict[str, Any]] = []
    if insights.backtest is not None:
        try:
            frame = served_backtest(insights)
        except ApiError as exc:  # the forecasts stand without their overlay
            notes.append(f"backtest overlay: {exc.message}")
            frame = None
        if frame is not None:
            overlays = backtest_overlays(frame, picked, item_id, market)
    for o in overlays:
        table_rows += [["backtest", o["model"], o["window"], t, y, p, None, None]
                       for t, y, p in zip(o["timestamps"], o["y_true"], o["y_pred"],
                                          strict=True)]
    parts = shown_content(content)
    # ``photo`` stays beside ``content`` for the route's clients that read it: its first photo.
    photo = next((p["photo"] for p in parts if p["photo"] is not None), None)
    return {"item_id": item_id, "market": market, "title": series["title"],
            "cold_start": series["cold_start"], "photo": photo, "content": parts,
            "history": {"timestamps": stamps(history), "y": floats(history["y"].to_list())},
            "forecasts": forecasts, "backtest": overlays, "notes": notes,
            "table": {"columns": TABLE_COLUMNS, "rows": table_rows}}
