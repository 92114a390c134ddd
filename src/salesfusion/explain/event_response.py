"""KOL / live-stream response curves: how much a featured item's demand rises after an event and
how fast the lift decays, estimated from the data (``event_study``) or from a fitted model's
counterfactual forecasts (``explain.model_response``).

Both aggregate per segment (a market, or a markets-table column such as ``maturity``) and return
an ``EventResponse``: ``curves`` (segment, lag, uplift, lo, hi, events), the log uplift at each
lag after the event, and ``summary`` (segment, events, excluded, outside, unmatched,
peak_uplift, peak_lo, peak_hi, time_to_peak, half_life, half_life_lo, half_life_hi).

Uplifts are log ratios of SUMS over a segment's events (a ratio of means), not means of
per-event log ratios: demand is counted in small units (a series selling 1 a week is common), so
``log((y + c) / (base + c))`` per event is pulled towards 0 by the constant ``c`` and by Jensen's
gap, while when events multiply an item's MEAN demand by ``exp(effect)`` (the synthetic
generator adds ``effect`` to the log mean) the ratio of summed demand to summed baseline
estimates ``exp(effect)`` without bias, weighting events by their volume.

Half-life: ``A * 2^(-lag/h)`` fitted by least squares to the curve on the lags from its peak on.
The fit is profiled: for each ``h`` on a fine log grid the best ``A`` is closed-form, and the
``h`` of least squared error wins. That is the nonlinear least-squares optimum to the grid's
resolution (0.3 %), vectorised over bootstrap replicates, and unlike iterative curve fitting it
cannot fail to converge on a noisy replicate; unlike a log-linear fit it keeps lags whose
estimated uplift is 0 or negative. A curve that does not decay within the lags seen reports the
grid's top (``50 * max_lag``); a peak at or below 0, or at the last lag, gives no half-life.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import polars as pl

from salesfusion.data.frequency import period_range
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.errors import InputError

SUMMARY_FLOATS = ("peak_uplift", "peak_lo", "peak_hi", "half_life", "half_life_lo",
                  "half_life_hi")


@dataclass
class EventResponse:
    """Response curves by segment and lag, and their summary per segment."""

    curves: pl.DataFrame
    summary: pl.DataFrame
    segment: str
    source: str  # "data" (event study) or "model" (counterfactual forecasts)


def _featured(panel: Panel) -> pl.DataFrame:
    """The events that feature an item (market-wide events lift no single series)."""
    events = panel.events
    if events is None or events.filter(pl.col("item_id").is_not_null()).height == 0:
        raise InputError("event response: the panel has no events featuring an item "
                         "(panel.events is empty or has no item_id values)")
    # A fixed order: period_events' rows come out of a group_by, and the bootstrap draws events
    # by position, so the same seed must meet the same order.
    return (events.filter(pl.col("item_id").is_not_null())
            .with_columns(pl.col("timestamp").cast(pl.Datetime("us")))
            .sort("market", "timestamp", "item_id"))


def _segment_of(panel: Panel, segment: str, markets: pl.Series) -> dict[str, str]:
    """Each market's segment label."""
    names = markets.unique().sort().to_list()
    if segment == "market":
        return {m: m for m in names}
    if panel.markets is None or segment not in panel.markets.columns:
        raise InputError(f"event response: segment {segment!r} is neither 'market' nor a "
                         f"column of the markets table")
    table = dict(panel.markets.select("market", pl.col(segment).cast(pl.String)).iter_rows())
    missing = [m for m in names if table.get(m) is None]
    if missing:
        raise InputError(f"event response: market {missing[0]!r} has no {segment!r} value in "
                         f"the markets table")
    return {m: table[m] for m in names}


def _to_int(values: pl.Series) -> np.ndarray:
    return values.cast(pl.Datetime("us")).to_numpy().astype("datetime64[us]").astype(np.int64)


def _fit_decay(curves: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peak, time to peak and half-life of each row of ``curves`` (n, lags); see the module
    docstring. NaN lags are left out of the fit."""
    lags = np.arange(curves.shape[1], dtype=float)
    known = np.isfinite(curves)
    filled = np.where(known, curves, -np.inf)
    peak_lag = np.argmax(filled, axis=1)
    peak = filled[np.arange(len(curves)), peak_lag]
    grid = np.geomspace(0.05, 50.0 * max(max_lag, 1), 3000)
    decay = 2.0 ** (-lags[None, :] / grid[:, None])  # (grid, lags)
    mask = (known & (lags[None, :] >= peak_lag[:, None])).astype(float)
    y = np.where(known, curves, 0.0) * mask
    num = y @ decay.T  # (n, grid)
    den = mask @ (decay**2).T
    with np.errstate(divide="ignore", invalid="ignore"):
        sse = (y**2).sum(axis=1, keepdims=True) - num**2 / den
    best = np.argmin(np.where(np.isfinite(sse), sse, np.inf), axis=1)
    amplitude = num[np.arange(len(curves)), best] / den[np.arange(len(curves)), best]
    usable = (mask.sum(axis=1) >= 2) & (peak > 0) & (amplitude > 0)
    half_life = np.where(usable, grid[best], np.nan)
    return np.where(np.isfinite(peak), peak, np.nan), peak_lag, half_life


def percentile_interval(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the central ``level`` percentile interval over the finite rows."""
    tail = (1.0 - level) / 2.0 * 100.0
    with warnings.catch_warnings():  # a column without a single value gives NaN, as it should
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(values, [tail, 100.0 - tail], axis=0)
    return lo, hi


def event_study(panel: Panel, max_lag: int = 8, pre: int = 4, controls: int = 5,
                segment: str = "market", bootstrap: int = 500, seed: int = 0,
                level: float = 0.95) -> EventResponse:
    """Event-study response curves of featured-item events, from the data.

    An event (an ``events`` row with an item, on a series of the panel) is used when its series
    has ``pre`` periods before it and ``max_lag`` after it inside the panel (else it counts as
    ``outside``), and no other event on that series within ``max_lag + pre`` periods either side
    nor a second event in its own period (else ``excluded``: overlapping lifts would add up).
    Its baseline is the mean of the ``pre`` periods before it. Each event is matched to the
    ``controls`` series of its market, alive over the window and without any event from
    ``max_lag + pre`` periods before it to ``max_lag`` after it, whose baseline is nearest to
    the event's (an event with none counts as ``unmatched``); ``controls=0`` skips the
    adjustment. Per segment and lag ``l``: ``log(sum y[t+l] / sum baseline)`` over the events
    minus the same ratio of the controls' mean demand (which removes growth and seasonality
    common to the market). Intervals: percentiles of ``bootstrap`` resamples of the segment's
    events, drawn from ``seed``.
    """
    if max_lag < 1 or pre < 1 or controls < 0 or bootstrap < 1 or not 0 < level < 1:
        raise InputError(f"event_study: need max_lag >= 1, pre >= 1, controls >= 0, "
                         f"bootstrap >= 1 and 0 < level < 1; got max_lag={max_lag}, pre={pre}, "
                         f"controls={controls}, bootstrap={bootstrap}, level={level}")
    events = _featured(panel)
    labels = _segment_of(panel, segment, pl.concat([events["market"],
                                                     panel.data["market"]]))
    stamps = pl.concat([panel.data["timestamp"].cast(pl.Datetime("us")), events["timestamp"]])
    grid = _to_int(period_range(stamps.min(), stamps.max(), panel.freq))
    keys = panel.data.select(SERIES_KEY).unique(maintain_order=True).with_row_index("s")
    rows = panel.data.join(keys, on=SERIES_KEY)
    y = np.full((keys.height, len(grid)), np.nan)
    y[rows["s"].to_numpy(), np.searchsorted(grid, _to_int(rows["timestamp"]))] = \
        rows["y"].to_numpy()

    found = events.join(keys, on=SERIES_KEY, how="left")
    on_series = found.filter(pl.col("s").is_not_null())
    s_idx = on_series["s"].to_numpy().astype(np.int64)
    t_idx = np.searchsorted(grid, _to_int(on_series["timestamp"]))
    span, width = max_lag + pre, pre + max_lag + 1

    # Overlap: the nearest other event on the same series (events sorted by series and time).
    order = np.lexsort((t_idx, s_idx))
    s_sorted, t_sorted = s_idx[order], t_idx[order]
    gap_prev = np.full(len(order), np.iinfo(np.int64).max)
    gap_next = gap_prev.copy()
    same = s_sorted[1:] == s_sorted[:-1]
    gap_prev[1:][same] = (t_sorted[1:] - t_sorted[:-1])[same]
    gap_next[:-1][same] = gap_prev[1:][same]
    alone = np.empty(len(order), dtype=bool)
    alone[order] = (gap_prev > span) & (gap_next > span)
    alone &= on_series["n_events"].to_numpy() == 1

    counts = np.zeros_like(y)
    np.add.at(counts, (s_idx, t_idx), on_series["n_events"].to_numpy())
    alive = np.isfinite(y)
    cum = {name: np.concatenate([np.zeros((len(y), 1)), np.cumsum(m, axis=1)], axis=1)
           for name, m in (("y", np.where(alive, y, 0.0)), ("alive", alive), ("event", counts))}
    in_grid = (t_idx >= pre) & (t_idx + max_lag < len(grid))
    start, stop = np.clip(t_idx - pre, 0, None), np.clip(t_idx + max_lag + 1, None, len(grid))
    full = in_grid & (cum["alive"][s_idx, stop] - cum["alive"][s_idx, start] == width)
    use = full & alone
    markets = on_series["market"].to_numpy()

    lags = np.arange(-pre, max_lag + 1)
    treated = y[s_idx[use, None], t_idx[use, None] + lags[None, :]]  # (events, pre + lags)
    control = _control_windows(y, cum, keys["market"].to_numpy(), markets[use], s_idx[use],
                               t_idx[use], pre, max_lag, controls)
    matched = np.isfinite(control[:, 0])
    market_used = markets[use][matched]
    treated, control = treated[matched], control[matched]

    status = pl.DataFrame({"market": np.concatenate([found.filter(pl.col("s").is_null())[
        "market"].to_numpy(), markets]).astype(str), "status": np.concatenate([
            np.full(found.height - on_series.height, "outside"),
            np.where(~full, "outside", np.where(~alone, "excluded", "used"))])})
    status = status.with_columns(
        pl.col("market").replace_strict(labels, return_dtype=pl.String).alias("segment"))
    used_status = status.filter(pl.col("status") == "used")
    seg_used = np.array([labels[m] for m in market_used], dtype=object)
    rng = np.random.default_rng(seed)
    curve_parts, summary_rows = [], []
    for name in sorted(set(labels.values())):
        counted = status.filter(pl.col("segment") == name)["status"].value_counts()
        tally = dict(counted.iter_rows())
        n_unmatched = used_status.filter(pl.col("segment") == name).height - int(
            (seg_used == name).sum())
        pick = seg_used == name
        n = int(pick.sum())
        row = {"segment": name, "events": n, "excluded": tally.get("excluded", 0),
               "outside": tally.get("outside", 0), "unmatched": n_unmatched}
        if n == 0:
            summary_rows.append(row | dict.fromkeys(SUMMARY_FLOATS, None)
                                | {"time_to_peak": None})
            continue
        weights = np.vstack([np.ones(n), rng.multinomial(n, np.full(n, 1.0 / n), bootstrap)])
        curves = _ratio_curves(weights, treated[pick], control[pick], pre, controls > 0)
        peak, peak_lag, half_life = _fit_decay(curves, max_lag)
        lo, hi = percentile_interval(curves[1:], level)
        curve_parts.append(pl.DataFrame({"segment": name, "lag": np.arange(max_lag + 1),
                                         "uplift": curves[0], "lo": lo, "hi": hi, "events": n}))
        peak_lo, peak_hi = percentile_interval(peak[1:], level)
        half_lo, half_hi = percentile_interval(half_life[1:], level)
        summary_rows.append(row | {
            "peak_uplift": peak[0], "peak_lo": peak_lo, "peak_hi": peak_hi,
            "time_to_peak": int(peak_lag[0]), "half_life": half_life[0],
            "half_life_lo": half_lo, "half_life_hi": half_hi})
    return EventResponse(curves=_curves_frame(curve_parts), summary=_summary_frame(summary_rows),
                         segment=segment, source="data")


def _control_windows(y: np.ndarray, cum: dict[str, np.ndarray], series_market: np.ndarray,
                     markets: np.ndarray, s_idx: np.ndarray, t_idx: np.ndarray, pre: int,
                     max_lag: int, controls: int) -> np.ndarray:
    """(events, pre + max_lag + 1): the mean demand of each event's matched controls over its
    window (NaN rows: no control; zeros when ``controls`` is 0, which disables the
    adjustment). Vectorised over a market's events x series."""
    lags = np.arange(-pre, max_lag + 1)
    out = np.full((len(s_idx), len(lags)), 0.0 if controls == 0 else np.nan)
    if controls == 0:
        return out
    n_periods = y.shape[1]
    for market in np.unique(markets):
        ev = np.flatnonzero(markets == market)
        pool = np.flatnonzero(series_market == market)
        t = t_idx[ev][:, None]
        start = t - pre
        level = (cum["y"][pool[None, :], t] - cum["y"][pool[None, :], start]) / pre
        alive = (cum["alive"][pool[None, :], t + max_lag + 1]
                 - cum["alive"][pool[None, :], start]) == len(lags)
        quiet_from = np.clip(t - pre - max_lag, 0, n_periods)
        quiet = (cum["event"][pool[None, :], t + max_lag + 1]
                 - cum["event"][pool[None, :], quiet_from]) == 0
        own = (cum["y"][s_idx[ev], t[:, 0]] - cum["y"][s_idx[ev], t[:, 0] - pre]) / pre
        distance = np.where(alive & quiet, np.abs(level - own[:, None]), np.inf)
        k = min(controls, len(pool))
        nearest = np.argpartition(distance, k - 1, axis=1)[:, :k]
        valid = np.isfinite(np.take_along_axis(distance, nearest, axis=1))  # (events, k)
        window = y[pool[nearest][:, :, None], t[:, :, None] + lags[None, None, :]]
        window = np.where(valid[:, :, None], window, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = window.sum(axis=1) / valid.sum(axis=1)[:, None]
        out[ev] = np.where(valid.any(axis=1)[:, None], mean, np.nan)
    return out


def _ratio_curves(weights: np.ndarray, treated: np.ndarray, control: np.ndarray, pre: int,
                  adjust: bool) -> np.ndarray:
    """Log ratio-of-sums uplift per lag for each row of event ``weights`` (replicates, events)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        own = np.log((weights @ treated[:, pre:])
                     / (weights @ treated[:, :pre].mean(axis=1))[:, None])
        if not adjust:
            return own
        base = np.log((weights @ control[:, pre:])
                      / (weights @ control[:, :pre].mean(axis=1))[:, None])
    return own - base


def _curves_frame(parts: list[pl.DataFrame]) -> pl.DataFrame:
    schema = {"segment": pl.String, "lag": pl.Int64, "uplift": pl.Float64, "lo": pl.Float64,
              "hi": pl.Float64, "events": pl.Int64}
    if not parts:
        return pl.DataFrame(schema=schema)
    frame = pl.concat([p.cast(schema) for p in parts])
    return frame.with_columns(pl.col(c).fill_nan(None) for c in ("uplift", "lo", "hi"))


def _summary_frame(rows: list[dict]) -> pl.DataFrame:
    schema = {"segment": pl.String, "events": pl.Int64, "excluded": pl.Int64,
              "outside": pl.Int64, "unmatched": pl.Int64,
              **dict.fromkeys(SUMMARY_FLOATS[:3], pl.Float64), "time_to_peak": pl.Int64,
              **dict.fromkeys(SUMMARY_FLOATS[3:], pl.Float64)}
    frame = pl.DataFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema,
                         orient="row")
    return frame.with_columns(pl.col(c).fill_nan(None) for c in SUMMARY_FLOATS)
