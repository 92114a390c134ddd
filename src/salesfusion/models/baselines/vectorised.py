"""Closed-form statsforecast forecasts of many series at once: the same numbers as the models'
own per-series ``forecast`` (mean and normal-interval half-widths), computed on a matrix of
series instead of one call per series.

On 20k series a per-series call costs far more than its arithmetic: ``Naive.forecast`` with a
level builds a scipy distribution for its interval each time (about 0.6 ms), so OR-weekly's 18k
series took 12 s a window for a last-value forecast (0.2 s here). Here each series is a row of
a matrix, right-aligned (the last period in the last column, zeros before a series' first
period), and every formula is the one statsforecast 2.x applies (``statsforecast.models``,
``statsforecast.utils``):

- Naive: the last value; sigma from the one-step residuals, ``sqrt(sum(e^2) / (n - 1))`` (0 for
  one value), widening by ``sqrt(step)``.
- SeasonalNaive (series of a season or more): the last season repeated; sigma from the
  season-lag residuals over ``n - season``, widening by ``sqrt(floor((step - 1) / season) + 1)``.
- WindowAverage: the mean of the last ``window`` values (no interval: statsforecast gives none).
- HistoricAverage (the adapter's fallback, on the last ``window`` values): their mean; sigma
  from the residuals around it over ``k - 1``, times ``sqrt(1 + 1 / k)`` at every step.
- CrostonClassic and TSB: simple exponential smoothing, run over all rows period by period with
  statsforecast's recursion and operation order (``alpha * x + (1 - alpha) * level`` from the
  first value), on the demand sizes and intervals (Croston) or sizes and occurrence (TSB).

A row a formula does not cover (TSB on a series of only negative values, which statsforecast
refuses) is returned as unsupported, and the adapter forecasts it the per-series way. Sums of
squares run over zero-padded rows, not numpy's per-series pairwise order, so on fractional data
results can differ in the last bits (on OR-weekly they are identical).

ADIDA and iMAPA are not here: their smoothing weight comes from a golden-section search per
series and aggregation level that stops at the first tie of two floating-point sums, so a
vectorised copy would have to reproduce every sum bit for bit; they run per series (in
parallel on large panels) and are fast already (about 70 us a series).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import norm

if TYPE_CHECKING:
    from salesfusion.models.baselines.series_pool import FallbackTally, _Job
    from salesfusion.models.baselines.statsforecast_adapter import StatsForecastModel

CROSTON_ALPHA = 0.1  # CrostonClassic's fixed smoothing weight
BLOCK_VALUES = 1 << 22  # matrix cells (32 MB) per block of series: bounds memory on 1M series


@dataclass(frozen=True)
class SeriesMatrix:
    """Series of unequal length as the rows of one matrix, right-aligned: row i holds its
    ``lengths[i]`` values in the last columns and zeros before them."""

    values: np.ndarray
    lengths: np.ndarray

    @classmethod
    def from_flat(cls, y: np.ndarray, lengths: np.ndarray) -> SeriesMatrix:
        """The series stored one after another in ``y`` (``lengths[i]`` values each)."""
        lengths = np.asarray(lengths, dtype=np.int64)
        width = int(lengths.max()) if len(lengths) else 0
        ends = np.repeat(np.cumsum(lengths), lengths)
        rows = np.repeat(np.arange(len(lengths)), lengths)
        values = np.zeros((len(lengths), width))
        values[rows, np.arange(len(y)) - ends + width] = y
        return cls(values, lengths)

    def rows(self, keep: np.ndarray) -> SeriesMatrix:
        lengths = self.lengths[keep]
        width = int(lengths.max()) if len(lengths) else 0
        return SeriesMatrix(self.values[keep][:, self.values.shape[1] - width:], lengths)

    @property
    def valid(self) -> np.ndarray:
        """True where a row holds a value of its series."""
        width = self.values.shape[1]
        return np.arange(width) >= (width - self.lengths)[:, None]

    @property
    def last(self) -> np.ndarray:
        return self.values[:, -1]


@dataclass
class PanelForecast:
    """Means (series, horizon), interval half-widths per unit z (None: no interval) and the rows
    left to the per-series path."""

    mean: np.ndarray
    sigmah: np.ndarray | None = None
    unsupported: np.ndarray | None = None


def forecast_panel(model: StatsForecastModel, job: _Job, lengths: np.ndarray, out: np.ndarray,
                   tally: FallbackTally) -> np.ndarray:
    """Fills ``out`` (series, horizon, 1 or 3) with ``model``'s forecasts of the series its
    closed form covers, routed as the adapter's ``forecast_one`` routes them (seasonal or not,
    too short: the fallback), and counts the short ones in ``tally``; returns the rows left to
    the per-series path (those the formula does not cover or gives non-finite values on)."""
    season = job.season
    seasonal = ((season > 1) & (lengths >= model.seasons_needed * season)
                & (lengths >= model.series_min_length(season, 0)))
    seasons = np.where(seasonal, season, 1)
    short = lengths < np.where(seasonal, model.series_min_length(season, 0),
                               model.series_min_length(1, 0))
    tally.short = int(short.sum())
    tally.longest_short = int(lengths[short].max(initial=0))
    # the normal quantile as statsforecast's ``_quantiles`` computes it (scipy, unit scale)
    z = float(norm.ppf(0.5 + job.level[0] / 200)) if job.level else None
    left = [np.arange(0)]
    step = max(1, BLOCK_VALUES // int(lengths.max(initial=1)))
    for start in range(0, len(lengths), step):
        block = np.arange(start, min(start + step, len(lengths)))
        matrix = SeriesMatrix.from_flat(job.y[job.starts[block[0]]:job.ends[block[-1]]],
                                        lengths[block])
        keep = short[block]
        if keep.any():  # the fallback's values are kept whatever they are, as per series
            out[block[keep]] = _compose(historic_average(
                matrix.rows(keep), job.horizon, model.fallback_window()), z)
        for season_length in np.unique(seasons[block][~short[block]]):
            keep = ~short[block] & (seasons[block] == season_length)
            result = model.panel_forecast(matrix.rows(keep), job.horizon, int(season_length))
            values = _compose(result, z)
            bad = ~np.isfinite(values).all(axis=(1, 2))
            if result.unsupported is not None:
                bad |= result.unsupported
            out[block[keep][~bad]] = values[~bad]
            left.append(block[keep][bad])
    return np.sort(np.concatenate(left))  # in series order, as one loop would meet them


def _compose(result: PanelForecast, z: float | None) -> np.ndarray:
    """(series, horizon, 1 or 3): mean[, lo, hi], the bounds as statsforecast's
    ``_calculate_intervals`` computes them (mean -/+ z * sigmah)."""
    if z is None:
        return result.mean[..., None]
    assert result.sigmah is not None, "a model with intervals gives their widths"
    spread = z * result.sigmah
    return np.stack([result.mean, result.mean - spread, result.mean + spread], axis=-1)


def _sigma(squares: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """statsforecast's ``_calculate_sigma``: sqrt(sum / dof), 0 where dof <= 0."""
    total = squares.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(dof > 0, np.sqrt(total / np.maximum(dof, 1)), 0.0)


def _repeat(value: np.ndarray, horizon: int) -> np.ndarray:
    return np.repeat(value[:, None], horizon, axis=1)


def naive(matrix: SeriesMatrix, horizon: int) -> PanelForecast:
    values, width = matrix.values, matrix.values.shape[1]
    # A residual needs the value and the one before it inside the series.
    pairs = np.arange(1, width) >= (width - matrix.lengths + 1)[:, None]
    squares = np.where(pairs, np.diff(values, axis=1) ** 2, 0.0)
    sigma = _sigma(squares, matrix.lengths - 1)
    return PanelForecast(_repeat(matrix.last, horizon),
                         sigma[:, None] * np.sqrt(np.arange(1, horizon + 1)))


def seasonal_naive(matrix: SeriesMatrix, horizon: int, season: int) -> PanelForecast:
    """Rows of at least one season only (shorter ones are the Naive's)."""
    values, width = matrix.values, matrix.values.shape[1]
    mean = values[:, width - season + np.arange(horizon) % season]
    pairs = np.arange(season, width) >= (width - matrix.lengths + season)[:, None]
    squares = np.where(pairs, (values[:, season:] - values[:, :-season]) ** 2, 0.0)
    sigma = _sigma(squares, matrix.lengths - season)
    steps = np.floor(np.arange(horizon) / season) + 1
    return PanelForecast(mean, sigma[:, None] * np.sqrt(steps))


def window_average(matrix: SeriesMatrix, horizon: int, window: int) -> PanelForecast:
    """Rows of at least ``window`` values only (shorter ones go to the fallback)."""
    return PanelForecast(_repeat(matrix.values[:, -window:].mean(axis=1), horizon))


def historic_average(matrix: SeriesMatrix, horizon: int, window: int) -> PanelForecast:
    """HistoricAverage of each row's last ``window`` values (all of them when fewer)."""
    count = np.minimum(matrix.lengths, window)
    tail = matrix.values[:, -window:]  # the whole matrix when narrower than the window
    inside = np.arange(tail.shape[1]) >= (tail.shape[1] - count)[:, None]
    mean = tail.sum(axis=1) / count
    squares = np.where(inside, (tail - mean[:, None]) ** 2, 0.0)
    sigmah = _sigma(squares, count - 1) * np.sqrt(1 + 1 / count)
    return PanelForecast(_repeat(mean, horizon), _repeat(sigmah, horizon))


def _compact(values: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kept values of each row moved to its start, in order, and how many each row has."""
    counts = keep.sum(axis=1)
    rows, columns = np.nonzero(keep)
    rank = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    out = np.zeros((values.shape[0], max(int(counts.max(initial=0)), 1)))
    out[rows, rank] = values[rows, columns]
    return out, counts


def ses(values: np.ndarray, counts: np.ndarray, alpha: float) -> np.ndarray:
    """statsforecast's ``ses_forecast`` of each row's first ``counts`` values (left-aligned):
    the level starts at the first value and is updated by every value in turn; a single value
    is its own forecast. Rows with no value get 0."""
    complement = 1.0 - alpha
    level = values[:, 0].copy()
    for column in range(values.shape[1]):
        level = np.where(column < counts, alpha * values[:, column] + complement * level, level)
    return np.where(counts == 1, values[:, 0], np.where(counts == 0, 0.0, level))


def croston(matrix: SeriesMatrix, horizon: int) -> PanelForecast:
    valid = matrix.valid
    sizes, n_sizes = _compact(matrix.values, valid & (matrix.values > 0))
    # A demand interval counts the periods since the previous non-zero value (the first one's
    # since the series' start): differences of 1-based positions, with 0 before the first.
    width = matrix.values.shape[1]
    positions = np.arange(1, width + 1) - (width - matrix.lengths)[:, None]
    nonzero, n_nonzero = _compact(positions.astype(np.float64),
                                  valid & (matrix.values != 0))
    intervals = np.diff(nonzero, axis=1, prepend=0.0)
    size = ses(sizes, n_sizes, CROSTON_ALPHA)
    interval = ses(intervals, n_nonzero, CROSTON_ALPHA)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(interval != 0.0, size / interval, size)
    # No positive value at all: statsforecast's Croston forecasts the last value (naive).
    return PanelForecast(_repeat(np.where(n_sizes == 0, matrix.last, ratio), horizon))


def tsb(matrix: SeriesMatrix, horizon: int, alpha_d: float, alpha_p: float) -> PanelForecast:
    valid = matrix.valid
    occurrence, n = _compact((matrix.values != 0).astype(np.float64), valid)
    sizes, n_sizes = _compact(matrix.values, valid & (matrix.values > 0))
    all_zero = ~(valid & (matrix.values != 0)).any(axis=1)
    mean = np.where(all_zero, 0.0, ses(occurrence, n, alpha_p) * ses(sizes, n_sizes, alpha_d))
    # Non-zero values but none positive: statsforecast raises (no demand size to smooth).
    return PanelForecast(_repeat(mean, horizon), unsupported=~all_zero & (n_sizes == 0))
