"""Dominant demand cycles per market (or per markets-table segment), tested against red noise.

Per segment:

1. Series. ``aggregate="mean"`` (default): demand per live series, i.e. the sum of ``y`` over the
   segment's series in a period divided by how many of them exist then. ``"sum"``: the plain
   total. The mean is the default because the total also counts catalogue growth: on the
   synthetic shop (items launch over the first half) the linearly detrended log total puts ~60% of
   its variance in a spurious 156-week wave, the per-series mean puts 50-70% in the planted 52-week
   cycle. Then ``log1p`` (a cycle multiplies demand) and a least-squares linear trend is removed,
   so that steady growth (emerging markets) is not read as a long cycle. Periods inside the
   segment's span where none of its series exists are filled by linear interpolation (counted).
2. Periodogram (``scipy.signal.periodogram``, zero-padded 4x for a finer period grid) over
   periods from 2 to ``max_period`` (default: half the segment's length, so a cycle repeats at
   least twice). The null is red noise: an AR(1) process. Demand residuals are persistent
   (promotions, stock, slowly moving taste), so their spectrum falls with frequency; Fisher's
   g-test assumes a flat (white) spectrum and calls low-frequency bumps cycles (on 100 AR(1)
   series with phi 0.6 it flagged 71, this test 10 at most). The AR(1) coefficient is the lag-1
   autocorrelation after removing the largest in-band sinusoid (a cycle alone would inflate it
   and hide itself). The statistic is the periodogram divided by that AR(1) spectrum, normalised
   by its mean over frequencies; a peak's p-value is the share of ``surrogates`` seeded AR(1)
   series (detrended, cycle-removed and re-fitted exactly as the data; drawn at a
   bootstrap-bias-corrected coefficient) whose *largest* statistic over the period band reaches
   the peak's. The maximum over frequencies makes the test family-wise over the band; peaks
   after the first are judged against the same maximum, so conservatively. Measured false-
   positive rate at alpha 0.05 (400 series, 104 periods): 3% (phi 0), 4% (0.6), 6.5% (0.9).
   Segments are tested separately (no correction across segments).
3. For each peak: the autocorrelation at the rounded period (statsmodels ``acf``); for each
   significant one, the STL seasonal strength max(0, 1 - var(remainder) / var(seasonal +
   remainder)) (Wang, Smith & Hyndman 2006), STL robust at the rounded period.
4. ``comparison``: significant periods of all segments grouped (within one frequency bin of the
   shortest segment); for each group and segment, the least-squares sinusoid at the group's
   period: ``amplitude`` (log units, ~ relative swing of demand), ``power_share`` (variance of
   the detrended series it explains), ``first_peak`` (its first crest on or after the panel's
   first period, comparable across segments).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.signal import find_peaks, lfilter, periodogram
from statsmodels.tsa.seasonal import STL
from statsmodels.tsa.stattools import acf

from salesfusion.data.frequency import PERIOD_DAYS, offset, period_range
from salesfusion.data.panel import Panel
from salesfusion.errors import InputError

MIN_PERIODS = 8  # shorter than this, not even a period-4 cycle repeats twice
OVERSAMPLE = 4
MAX_PHI = 0.99  # a fitted AR(1) at 1 is a random walk: no stationary null to draw from


@dataclass
class CycleReport:
    """``periods``: segment, rank, period, period_days, power_share, amplitude, p_value, acf,
    strength, significant (the ``peaks`` largest peaks per segment). ``series``: segment,
    timestamp, demand, log_demand, trend, detrended. ``comparison``: cycle, cycle_days, segment,
    has_cycle, period, p_value, amplitude, power_share, first_peak. ``segments``: segment,
    n_series, n_periods, filled, max_period, phi, analysed."""

    periods: pl.DataFrame
    series: pl.DataFrame
    comparison: pl.DataFrame
    segments: pl.DataFrame
    settings: dict = field(default_factory=dict)


def market_cycles(panel: Panel, segment: str = "market", max_period: float | None = None,
                  alpha: float = 0.05, surrogates: int = 500, seed: int = 0,
                  aggregate: str = "mean", peaks: int = 3) -> CycleReport:
    """Dominant cycles of each segment's demand with p-values against an AR(1) null."""
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be between 0 and 1, got {alpha}")
    if surrogates < 1 or 1 / (surrogates + 1) > alpha:
        raise InputError(f"surrogates={surrogates} cannot give a p-value below alpha={alpha}; "
                         f"use at least {int(np.ceil(1 / alpha))}")
    if aggregate not in ("mean", "sum"):
        raise InputError(f"aggregate must be 'mean' or 'sum', got '{aggregate}'")
    if peaks < 1:
        raise InputError(f"peaks must be at least 1, got {peaks}")
    if panel.data.is_empty():
        raise InputError("the panel has no rows; cycles need at least 8 periods")
    grid = period_range(panel.data["timestamp"].min(), panel.data["timestamp"].max(), panel.freq)
    if len(grid) < MIN_PERIODS:
        raise InputError(f"the panel has {len(grid)} periods; cycles need at least {MIN_PERIODS}")
    frames = _aggregate(panel, segment, aggregate, grid)
    limit = max(f.height for f in frames.values()) / 2
    if max_period is not None and not 2 <= max_period <= limit:
        raise InputError(f"max_period must be between 2 and {limit:g} (half the longest "
                         f"segment, so a cycle repeats twice), got {max_period}")
    rng = np.random.default_rng(seed)
    rows, series, info, fits = [], [], [], {}
    for name, frame in sorted(frames.items()):
        n = frame.height
        top = min(max_period or n / 2, n / 2)
        x = frame["log_demand"].to_numpy()
        usable = bool(n >= MIN_PERIODS and np.ptp(x) > 0)
        trend = _trend(n) @ x if usable else np.full(n, np.nan)
        resid = x - trend
        series.append(frame.with_columns(pl.lit(name).alias("segment"), pl.Series("trend", trend),
                                         pl.Series("detrended", resid)))
        found, phi = _peaks(name, resid, top, surrogates, rng, peaks, panel.freq) if usable \
            else ([], None)
        rows += found
        info.append({"segment": name, "n_series": int(frame["n_series"].max()), "n_periods": n,
                     "filled": int(frame["filled"].sum()), "max_period": top, "phi": phi,
                     "analysed": usable})
        if usable:
            fits[name] = (resid, frame["index"].to_numpy())
    periods = pl.DataFrame(rows, schema=_PERIOD_SCHEMA, orient="row")
    periods = periods.with_columns((pl.col("p_value") < alpha).alias("significant"))
    strengths = [_strength(fits[s][0], p) if sig else None
                 for s, p, sig in periods.select("segment", "period", "significant").rows()]
    periods = periods.with_columns(pl.Series("strength", strengths, dtype=pl.Float64))
    return CycleReport(
        periods=periods.select(*_PERIOD_SCHEMA, "strength", "significant"),
        series=pl.concat(series).select("segment", "timestamp", "demand", "log_demand", "trend",
                                        "detrended"),
        comparison=_compare(periods, fits, grid[0], panel.freq),
        segments=pl.DataFrame(info, schema_overrides={"phi": pl.Float64}),
        settings={"segment": segment, "aggregate": aggregate, "max_period": max_period,
                  "alpha": alpha, "surrogates": surrogates, "seed": seed, "freq": panel.freq})


_PERIOD_SCHEMA = {"segment": pl.String, "rank": pl.Int64, "period": pl.Float64,
                  "period_days": pl.Float64, "power_share": pl.Float64, "amplitude": pl.Float64,
                  "p_value": pl.Float64, "acf": pl.Float64}


def _aggregate(panel: Panel, segment: str, how: str, grid: pl.Series) -> dict[str, pl.DataFrame]:
    """Per segment: its periods from first to last with demand, log_demand, n_series, filled and
    the period's index on the panel's grid."""
    data = panel.data.select("item_id", "market", "timestamp", "y")
    if segment != "market":
        if panel.markets is None or segment not in panel.markets.columns:
            raise InputError(f"segment '{segment}' is neither 'market' nor a markets-table column")
        labels = panel.markets.select("market", pl.col(segment).cast(pl.String).alias("_seg"))
        data = data.join(labels, on="market", how="left")
        missing = data.filter(pl.col("_seg").is_null())["market"].unique().sort().to_list()
        if missing:
            raise InputError(f"markets without a '{segment}' value: {', '.join(missing)}")
        data = data.drop("market").rename({"_seg": "market"})
    per_period = data.group_by("market", "timestamp").agg(
        pl.col("y").sum().alias("total"), pl.len().alias("n_series"))
    indexed = pl.DataFrame({"timestamp": grid, "index": np.arange(len(grid))})
    out = {}
    for (name,), part in per_period.group_by("market"):
        span = indexed.filter(pl.col("timestamp").is_between(part["timestamp"].min(),
                                                             part["timestamp"].max()))
        frame = span.join(part, on="timestamp", how="left").sort("timestamp")
        demand = pl.col("total") / pl.col("n_series") if how == "mean" else pl.col("total")
        out[str(name)] = frame.with_columns(
            demand.alias("demand"), pl.col("total").is_null().alias("filled"),
            demand.log1p().interpolate().alias("log_demand"),
            pl.col("n_series").fill_null(0))
    return out


def _trend(n: int) -> np.ndarray:
    """The hat matrix of a least-squares line: ``hat @ x`` is x's linear trend."""
    design = np.column_stack([np.ones(n), np.arange(n)])
    return design @ np.linalg.pinv(design)


def _phi(resid: np.ndarray) -> np.ndarray:
    """Lag-1 autocorrelation (Yule-Walker AR(1) coefficient) of each row."""
    centred = resid - resid.mean(axis=1, keepdims=True)
    num = (centred[:, 1:] * centred[:, :-1]).sum(axis=1)
    return np.clip(num / np.maximum((centred ** 2).sum(axis=1), 1e-300), -MAX_PHI, MAX_PHI)


def _background_phi(resid: np.ndarray, freqs: np.ndarray, power: np.ndarray,
                    band: np.ndarray) -> np.ndarray:
    """Each row's AR(1) coefficient once its largest in-band sinusoid is removed: a strong cycle
    alone gives a high lag-1 correlation (cos(2 pi / period)), which would make the red-noise
    null swallow the very cycle it tests. Surrogates go through the same step, so the null
    distribution includes it."""
    n = resid.shape[1]
    top = freqs[np.where(band, power, -np.inf).argmax(axis=1)]
    angle = 2 * np.pi * top[:, None] * np.arange(n)[None, :]
    design = np.stack([np.cos(angle), np.sin(angle), np.ones_like(angle)], axis=2)
    gram = np.einsum("snk,snl->skl", design, design)  # batched least squares, one per row
    coef = np.linalg.solve(gram, np.einsum("snk,sn->sk", design, resid)[..., None])[..., 0]
    fitted = np.einsum("snk,sk->sn", design, coef)
    return _phi(resid - fitted)


def _statistic(resid: np.ndarray, top: float) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                         np.ndarray]:
    """Frequencies, the band mask, per row the periodogram over the row's background AR(1)
    spectrum normalised by its mean over positive frequencies, and the rows' AR(1) coefficient."""
    n = resid.shape[1]
    freqs, power = periodogram(resid, nfft=OVERSAMPLE * n, detrend=False, axis=-1)
    band = (freqs >= 1 / top - 1e-12) & (freqs > 0)
    phi = _background_phi(resid, freqs, power, band)
    red = 1.0 / (1 + phi[:, None] ** 2 - 2 * phi[:, None] * np.cos(2 * np.pi * freqs[None, :]))
    white = power / red
    return freqs, band, white / white[:, 1:].mean(axis=1, keepdims=True), phi


def _peaks(name: str, resid: np.ndarray, top: float, surrogates: int, rng: np.random.Generator,
           peaks: int, freq: str) -> tuple[list[tuple], float]:
    """The segment's ``peaks`` largest in-band peaks as ``periods`` rows, and its background
    AR(1) coefficient."""
    n = resid.size
    freqs, band, stat, phi = _statistic(resid[None, :], top)
    # Peaks are searched on the whole spectrum, then kept in the band: a slope rising towards a
    # longer period outside the band is not a peak at the band's edge.
    found, _ = find_peaks(np.r_[0.0, stat[0], 0.0], distance=OVERSAMPLE)
    found = [i - 1 for i in found if band[i - 1]]
    found = sorted(found, key=lambda i: -stat[0, i])[:peaks]
    noise = rng.standard_normal((surrogates, n + 50))
    # The estimate (Yule-Walker on a short, detrended, cycle-removed series) is biased low, so
    # surrogates drawn at it would be whiter than the data's background and the test liberal.
    # One bootstrap bias correction: draw at phi + (phi - mean of the surrogates' estimates).
    _, _, _, estimated = _statistic(_ar1(noise, phi[0], n), top)
    corrected = float(np.clip(2 * phi[0] - estimated.mean(), -MAX_PHI, MAX_PHI))
    null_max = _statistic(_ar1(noise, corrected, n), top)[2][:, band].max(axis=1)
    lags = acf(resid, nlags=max(2, round(top)), fft=True)
    rows = []
    for rank, i in enumerate(found, start=1):
        period = 1 / freqs[i]
        amplitude, share, _ = _sinusoid(resid, np.arange(n), period)
        p_value = (1 + int((null_max >= stat[0, i]).sum())) / (1 + surrogates)
        rows.append((name, rank, float(period), float(period * PERIOD_DAYS[freq]), share,
                     amplitude, p_value, float(lags[min(round(period), lags.size - 1)])))
    return rows, float(phi[0])


def _ar1(noise: np.ndarray, phi: float, n: int) -> np.ndarray:
    """Detrended AR(1) series of length ``n``, one per row of ``noise`` (50 burn-in steps)."""
    draws = lfilter([1.0], [1.0, -phi], noise, axis=1)[:, -n:]
    return draws - draws @ _trend(n).T


def _sinusoid(resid: np.ndarray, index: np.ndarray, period: float) -> tuple[float, float, float]:
    """Amplitude, explained variance share and first crest (on the index scale, in [0, period))
    of the least-squares sinusoid of ``period``."""
    angle = 2 * np.pi * index / period
    design = np.column_stack([np.cos(angle), np.sin(angle), np.ones_like(angle)])
    (a, b, _), *_ = np.linalg.lstsq(design, resid, rcond=None)
    fitted = a * np.cos(angle) + b * np.sin(angle)
    share = float(fitted.var() / resid.var()) if resid.var() > 0 else 0.0
    crest = (np.arctan2(b, a) / (2 * np.pi) * period) % period
    return float(np.hypot(a, b)), share, float(crest)


def _strength(resid: np.ndarray, period: float) -> float:
    parts = STL(resid, period=max(2, round(period)), robust=True).fit()
    seasonal_plus = parts.seasonal + parts.resid
    return float(max(0.0, 1 - np.var(parts.resid) / np.var(seasonal_plus)))


def _compare(periods: pl.DataFrame, fits: dict, first: object, freq: str) -> pl.DataFrame:
    """Each group of significant periods against every segment (see the module docstring)."""
    significant = periods.filter(pl.col("significant")).sort("period")
    schema = {"cycle": pl.Float64, "cycle_days": pl.Float64, "segment": pl.String,
              "has_cycle": pl.Boolean, "period": pl.Float64, "p_value": pl.Float64,
              "amplitude": pl.Float64, "power_share": pl.Float64,
              "first_peak": pl.Datetime("us")}
    if significant.is_empty():
        return pl.DataFrame(schema=schema)
    width = 1 / min(resid.size for resid, _ in fits.values())
    groups: list[list[dict]] = []
    for row in significant.iter_rows(named=True):  # by period, so by falling frequency
        if groups and 1 / groups[-1][-1]["period"] - 1 / row["period"] <= width:
            groups[-1].append(row)
        else:
            groups.append([row])
    rows = []
    for group in groups:
        cycle = float(np.median([r["period"] for r in group]))
        for name, (resid, index) in sorted(fits.items()):
            own = min((r for r in group if r["segment"] == name), key=lambda r: r["p_value"],
                      default=None)
            amplitude, share, crest = _sinusoid(resid, index, cycle)
            peak = pl.select(offset(pl.lit(first), freq, round(crest))).item()
            rows.append((cycle, cycle * PERIOD_DAYS[freq], name, own is not None,
                         None if own is None else own["period"],
                         None if own is None else own["p_value"], amplitude, share, peak))
    return pl.DataFrame(rows, schema=schema, orient="row")
