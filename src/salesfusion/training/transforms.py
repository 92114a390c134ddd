"""Invertible transforms of the level-scaled target (mlforecast-style target transforms).

The scaled values are >= 0 (units divided by a positive level), so both transforms act on
``x + 1``: ``log1p`` and Box-Cox with its lambda fitted by maximum likelihood on the training
targets only (``scipy.stats.boxcox_normmax``). Inversion is exact: ``inverse(forward(x)) == x``
up to floating point; network outputs outside the transform's range are clipped to its
boundary before inverting (Box-Cox with a negative lambda is bounded above).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from salesfusion.errors import InputError

TRANSFORMS = ("none", "log1p", "boxcox")


@dataclass(frozen=True)
class TargetTransform:
    kind: str = "none"
    lam: float = 0.0  # Box-Cox lambda (log1p is lambda 0)

    @classmethod
    def fit(cls, kind: str, targets: np.ndarray) -> TargetTransform:
        if kind not in TRANSFORMS:
            raise InputError(f"target_transform must be one of {', '.join(TRANSFORMS)}, "
                             f"got {kind!r}")
        if kind != "boxcox":
            return cls(kind)
        values = np.asarray(targets, dtype=np.float64) + 1.0
        if values.size < 2 or np.ptp(values) == 0:
            return cls("boxcox", 0.0)
        return cls("boxcox", float(stats.boxcox_normmax(values, method="mle")))

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "none":
            return x
        if self.kind == "log1p" or abs(self.lam) < 1e-8:
            return np.log1p(x)
        return (np.power(x + 1.0, self.lam) - 1.0) / self.lam

    def inverse(self, y: np.ndarray) -> np.ndarray:
        if self.kind == "none":
            return y
        if self.kind == "log1p" or abs(self.lam) < 1e-8:
            return np.expm1(y)
        base = np.maximum(self.lam * y + 1.0, 1e-12)
        return np.power(base, 1.0 / self.lam) - 1.0

    def to_dict(self) -> dict:
        return {"kind": self.kind, "lam": self.lam}
