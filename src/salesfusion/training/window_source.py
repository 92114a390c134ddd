"""Windows gathered from the panel as the loader asks, never materialised all at once.

A ``WindowSource`` holds what every sample reads, once per panel: the dense (series x period)
values, the calendar, the covariate cube, the cold-start level and the ``abroad`` matrix. A
sample is only its (series, origin) pair; ``SampleIndex`` is a set of them with the cuts and the
target transform a training applies, and ``gather`` builds the ``Windows`` of any subset with
the arithmetic of ``make_windows`` (which is ``gather`` over every sample), so a batch built
here equals the same rows of the materialised windows bit for bit.

Why: the materialised history tensor is samples x lookback x channels floats. On a
marketplace panel (1M series x 50 origins x 16 periods x 3 channels) that is 9.6 GB of float32
before any copy; here memory is the panel itself plus two int32 per sample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from salesfusion.features.covariates import Covariates

CHUNK = 262_144  # samples per chunk when a statistic is taken over every sample


@dataclass
class Windows:
    """Arrays of n samples: history (n, L, F), history_mask (n, L), target (n, H), target_mask
    (n, H), level (n,), series (n,) row in the wide panel, origin (n,) period index, future
    (n, H, G) known inputs of the forecast periods, abroad (n,) log(1 + the item's mean demand
    per period in the other markets over the window)."""

    history: np.ndarray
    history_mask: np.ndarray
    target: np.ndarray
    target_mask: np.ndarray
    level: np.ndarray
    series: np.ndarray
    origin: np.ndarray
    future: np.ndarray
    abroad: np.ndarray

    def __len__(self) -> int:
        return len(self.series)

    def subset(self, keep: np.ndarray) -> Windows:
        return Windows(*(getattr(self, f)[keep] for f in self.__dataclass_fields__))

    def transformed(self, forward: Callable[[np.ndarray], np.ndarray]) -> Windows:
        """The windows with ``forward`` applied to the observed scaled values (the history's
        first channel and the targets); masked entries stay 0."""
        history = self.history.copy()
        history[..., 0] = np.where(self.history_mask, forward(history[..., 0]), 0.0)
        target = np.where(self.target_mask, forward(self.target), 0.0).astype(np.float32)
        return replace(self, history=history, target=target)


@dataclass
class WindowSource:
    """Per-panel arrays the samples are gathered from.

    ``cold`` is either (series, period) (the market level of each series' market at each
    origin) or (series, 1) (one level per series); ``abroad`` likewise (series, period) or
    (series, 1), already log(1 + mean) and float32.
    """

    y: np.ndarray
    calendar: np.ndarray
    lookback: int
    horizon: int
    covariates: Covariates | None
    cold: np.ndarray
    abroad: np.ndarray

    def _scaled(self, s_idx: np.ndarray, t_idx: np.ndarray) -> dict[str, np.ndarray]:
        """The values every window is made of: history and targets divided by the level known
        at the origin, their masks, and the history and target period indices."""
        y, lookback, horizon = self.y, self.lookback, self.horizon
        n_periods = y.shape[1]
        offsets = np.arange(-lookback + 1, 1)
        positions = t_idx[:, None] + offsets[None, :]
        inside = positions >= 0
        history = np.where(inside, y[s_idx[:, None], np.clip(positions, 0, None)], np.nan)
        history_mask = ~np.isnan(history)
        observed_count = history_mask.sum(1)
        cold = self.cold[s_idx, t_idx if self.cold.shape[1] > 1 else 0]
        level = np.where(observed_count > 0,
                         np.nansum(np.where(history_mask, history, 0.0), 1) / np.maximum(
                             observed_count, 1),
                         cold) + 1.0
        future = t_idx[:, None] + np.arange(1, horizon + 1)[None, :]
        in_panel = future < n_periods
        target = np.where(in_panel, y[s_idx[:, None], np.clip(future, None, n_periods - 1)],
                          np.nan)
        target_mask = ~np.isnan(target)
        return {"history": np.where(history_mask, history / level[:, None], 0.0),
                "history_mask": history_mask, "level": level,
                "target": np.where(target_mask, target / level[:, None], 0.0),
                "target_mask": target_mask, "past_at": np.clip(positions, 0, n_periods - 1),
                "future": future}

    def scaled_targets(self, s_idx: np.ndarray, t_idx: np.ndarray) -> tuple[np.ndarray,
                                                                            np.ndarray]:
        """(``gather(...).target``, ``gather(...).target_mask``) without building the rest of
        the windows."""
        scaled = self._scaled(s_idx.astype(np.int64, copy=False),
                              t_idx.astype(np.int64, copy=False))
        return scaled["target"].astype(np.float32), scaled["target_mask"]

    def gather(self, s_idx: np.ndarray, t_idx: np.ndarray) -> Windows:
        """The windows of samples (series ``s_idx``, origin ``t_idx``)."""
        s_idx = s_idx.astype(np.int64, copy=False)
        t_idx = t_idx.astype(np.int64, copy=False)
        scaled = self._scaled(s_idx, t_idx)
        past_at, future = scaled["past_at"], scaled["future"]
        history_parts = [scaled["history"][..., None], self.calendar[past_at]]
        future_parts = [self.calendar[future]]
        covariates = self.covariates
        if covariates is not None and covariates.width:
            history_parts.append(covariates.values[s_idx[:, None], past_at])
            future_parts.append(covariates.values[s_idx[:, None], future][
                ..., covariates.future_known])
        abroad = self.abroad[s_idx, t_idx if self.abroad.shape[1] > 1 else 0]
        return Windows(history=np.concatenate(history_parts, axis=-1).astype(np.float32),
                       history_mask=scaled["history_mask"],
                       target=scaled["target"].astype(np.float32),
                       target_mask=scaled["target_mask"],
                       level=scaled["level"].astype(np.float32), series=s_idx, origin=t_idx,
                       future=np.concatenate(future_parts, axis=-1).astype(np.float32),
                       abroad=abroad.astype(np.float32))

    def target_mask(self, s_idx: np.ndarray, t_idx: np.ndarray) -> np.ndarray:
        """(samples, horizon): which targets are observed (``gather(...).target_mask``)."""
        n_periods = self.y.shape[1]
        future = t_idx[:, None].astype(np.int64) + np.arange(1, self.horizon + 1)[None, :]
        inside = future < n_periods
        values = self.y[s_idx[:, None], np.clip(future, None, n_periods - 1)]
        return inside & ~np.isnan(values)

    def history_observed(self, s_idx: np.ndarray, t_idx: np.ndarray) -> np.ndarray:
        """(samples,): whether any history period is observed (``history_mask.any(1)``)."""
        positions = t_idx[:, None].astype(np.int64) + np.arange(-self.lookback + 1, 1)[None, :]
        values = self.y[s_idx[:, None], np.clip(positions, 0, None)]
        return ((positions >= 0) & ~np.isnan(values)).any(axis=1)

    def nbytes(self) -> int:
        """Bytes held by the source's arrays."""
        arrays = [self.y, self.calendar, self.cold, self.abroad]
        if self.covariates is not None:
            arrays.append(self.covariates.values)
        return int(sum(a.nbytes for a in arrays))


@dataclass
class SampleIndex:
    """Samples of a ``WindowSource`` as (series, origin) pairs, with what a training does to
    them: targets at period indices ``>= target_until`` masked (the validation part), and the
    target transform applied to the observed scaled values (``Windows.transformed``)."""

    source: WindowSource
    series: np.ndarray
    origin: np.ndarray
    target_until: int | None = None
    transform: Callable[[np.ndarray], np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.series)

    def subset(self, keep: np.ndarray) -> SampleIndex:
        """The samples selected by ``keep`` (a boolean mask or positions, repeats allowed)."""
        return replace(self, series=self.series[keep], origin=self.origin[keep])

    def with_targets_until(self, period: int) -> SampleIndex:
        return replace(self, target_until=period)

    def with_transform(self, forward: Callable[[np.ndarray], np.ndarray]) -> SampleIndex:
        return replace(self, transform=forward)

    def gather(self, positions: np.ndarray | slice | None = None) -> Windows:
        """The windows of the samples at ``positions`` (all of them by default)."""
        chosen = slice(None) if positions is None else positions
        windows = self.source.gather(self.series[chosen], self.origin[chosen])
        if self.target_until is not None:
            windows.target_mask = windows.target_mask & ~self._cut(windows.origin)
        if self.transform is not None:
            windows = windows.transformed(self.transform)
        return windows

    def _cut(self, origin: np.ndarray) -> np.ndarray:
        target_index = origin[:, None] + np.arange(1, self.source.horizon + 1)[None, :]
        return target_index >= self.target_until

    def chunks(self) -> Iterator[slice]:
        for start in range(0, len(self), CHUNK):
            yield slice(start, min(start + CHUNK, len(self)))

    def target_masks(self) -> np.ndarray:
        """(samples, horizon) observed-target masks after the cut, computed chunk by chunk."""
        parts = []
        for part in self.chunks():
            mask = self.source.target_mask(self.series[part], self.origin[part])
            if self.target_until is not None:
                mask &= ~self._cut(self.origin[part].astype(np.int64))
            parts.append(mask)
        return np.concatenate(parts) if parts else np.zeros((0, self.source.horizon), bool)

    def history_observed(self) -> np.ndarray:
        parts = [self.source.history_observed(self.series[p], self.origin[p])
                 for p in self.chunks()]
        return np.concatenate(parts) if parts else np.zeros(0, bool)

    def observed_targets(self) -> np.ndarray:
        """The observed scaled targets (``target[target_mask]`` of every sample, untransformed,
        row-major), chunk by chunk."""
        parts = []
        for part in self.chunks():
            target, mask = self.source.scaled_targets(self.series[part], self.origin[part])
            if self.target_until is not None:
                mask &= ~self._cut(self.origin[part].astype(np.int64))
            parts.append(target[mask])
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def nbytes(self) -> int:
        return int(self.series.nbytes + self.origin.nbytes)
