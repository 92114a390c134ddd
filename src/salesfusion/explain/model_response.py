"""KOL / live-stream response curves implied by a fitted model: its counterfactual forecasts with
each event removed, in the same tables as the data-driven ``event_study``
(``explain.event_response``, whose docstring defines the uplift and the half-life fit)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl

from salesfusion.data.frequency import periods_after
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.errors import InputError
from salesfusion.explain.event_response import (
    EventResponse,
    _curves_frame,
    _featured,
    _fit_decay,
    _segment_of,
    _summary_frame,
)
from salesfusion.models.base import Forecaster


def model_response(model: Forecaster, history: Panel, max_lag: int = 8,
                   segment: str = "market") -> EventResponse:
    """Response curves a fitted model implies: for each featured event in the forecast window
    after ``history`` (the periods ``origin + 1 .. origin + max_lag + 1``, origin being the
    history's last period; ``history.events`` is kept whole by ``Panel.until``, so it holds
    them), the forecast with all events minus the forecast with that one event row removed, as
    the log ratio of summed forecasts per lag and segment. The model must forecast
    ``max_lag + 1`` periods (lightgbm: ``horizon=max_lag + 1``).

    Limitations: one origin, so lag ``l`` is seen only for events in the window's first
    ``max_lag + 1 - l`` periods (``events`` per lag falls with the lag, and late lags are
    noisier); the model is asked one forecast per event, which is exact for any model (removing
    several events at once would also move market-wide event channels); no intervals (``lo``,
    ``hi`` null). Events on series the history lacks count as ``outside``.
    """
    if max_lag < 1:
        raise InputError(f"model_response: max_lag must be at least 1, got {max_lag}")
    events = _featured(history).with_row_index("_event")
    horizon = max_lag + 1
    origin = history.data["timestamp"].max()
    window = periods_after(origin, history.freq, horizon).cast(pl.Datetime("us"))
    inside = events.filter(pl.col("timestamp").is_in(window.implode()))
    series = history.data.select(SERIES_KEY).unique()
    known = inside.join(series, on=SERIES_KEY, how="semi")
    if known.height == 0:
        raise InputError(f"model_response: no featured event on a series of the history falls "
                         f"in the {horizon} periods after its last period {origin:%Y-%m-%d}")
    labels = _segment_of(history, segment, pl.concat([inside["market"],
                                                       history.data["market"]]))
    base = model.predict(horizon, history).select(*SERIES_KEY, "timestamp", "y_pred")
    full_events = history.events
    parts = []
    for event_id, item, market, stamp in known.select(
            "_event", "item_id", "market", "timestamp").iter_rows():
        without = replace(history, events=full_events.with_row_index("_event").filter(
            pl.col("_event") != event_id).drop("_event"))
        keys = pl.DataFrame({"item_id": [item], "market": [market]})
        counter = model.predict(horizon, without, series=keys).select(
            "timestamp", pl.col("y_pred").alias("y_without"))
        step = window.search_sorted(stamp)
        parts.append(base.join(keys, on=SERIES_KEY, how="semi").join(counter, on="timestamp")
                     .sort("timestamp").with_row_index("_step")
                     .with_columns((pl.col("_step").cast(pl.Int64) - step).alias("lag"))
                     .filter(pl.col("lag") >= 0))
    rows = (pl.concat(parts).with_columns(
        pl.col("market").replace_strict(labels, return_dtype=pl.String).alias("segment"))
        .group_by("segment", "lag").agg(pl.col("y_pred").sum(), pl.col("y_without").sum(),
                                        pl.len().alias("events")).sort("segment", "lag"))
    # Every (segment, lag), as in event_study: a lag no event reached has a null uplift.
    every = pl.DataFrame({"segment": sorted(set(labels.values()))}).join(
        pl.DataFrame({"lag": np.arange(horizon)}), how="cross")
    curves = every.join(rows, on=["segment", "lag"], how="left").select(
        "segment", "lag", (pl.col("y_pred") / pl.col("y_without")).log().alias("uplift"),
        pl.lit(None, pl.Float64).alias("lo"), pl.lit(None, pl.Float64).alias("hi"),
        pl.col("events").fill_null(0))
    summary_rows = []
    counts = inside.with_columns(pl.col("market").replace_strict(labels, return_dtype=pl.String)
                                 .alias("segment"))
    for name in sorted(set(labels.values())):
        part = curves.filter((pl.col("segment") == name) & pl.col("uplift").is_not_null())
        n_used = known.filter(pl.col("market").replace_strict(labels, return_dtype=pl.String)
                              == name).height
        row = {"segment": name, "events": n_used, "excluded": 0,
               "outside": counts.filter(pl.col("segment") == name).height - n_used,
               "unmatched": 0}
        if part.height == 0:
            summary_rows.append(row)
            continue
        curve = np.full((1, horizon), np.nan)
        curve[0, part["lag"].to_numpy()] = part["uplift"].to_numpy()
        peak, peak_lag, half_life = _fit_decay(curve, max_lag)
        summary_rows.append(row | {"peak_uplift": peak[0], "time_to_peak": int(peak_lag[0]),
                                   "half_life": half_life[0]})
    return EventResponse(curves=_curves_frame([curves]), summary=_summary_frame(summary_rows),
                         segment=segment, source="model")
