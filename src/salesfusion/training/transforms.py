"""Invertible transforms of the level-scaled target (mlforecast-style target transforms),
registered by name.

The scaled values are >= 0 (units divided by a positive level), so both transforms act on
``x + 1``: ``log1p`` and Box-Cox with its lambda fitted by maximum likelihood on the training
targets only (``scipy.stats.boxcox_normmax``). Inversion is exact: ``inverse(forward(x)) == x``
up to floating point; network outputs outside the transform's range are clipped to its
boundary before inverting (Box-Cox with a negative lambda is bounded above).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy import stats

from salesfusion.components import TARGET_TRANSFORMS


class TransformMethod:
    """How one kind of transform fits its parameter and maps values both ways."""

    name: ClassVar[str]

    @staticmethod
    def fit_lambda(targets: np.ndarray) -> float:
        return 0.0

    @staticmethod
    def forward(x: np.ndarray, lam: float) -> np.ndarray:
        return x

    @staticmethod
    def inverse(y: np.ndarray, lam: float) -> np.ndarray:
        return y


@TARGET_TRANSFORMS.register
class Identity(TransformMethod):
    """No transform."""

    name = "none"


@TARGET_TRANSFORMS.register
class Log1p(TransformMethod):
    """log(1 + x)."""

    name = "log1p"

    @staticmethod
    def forward(x: np.ndarray, lam: float) -> np.ndarray:
        return np.log1p(x)

    @staticmethod
    def inverse(y: np.ndarray, lam: float) -> np.ndarray:
        return np.expm1(y)


@TARGET_TRANSFORMS.register
class BoxCox(TransformMethod):
    """Box-Cox of 1 + x with lambda fitted by maximum likelihood on the training targets."""

    name = "boxcox"

    @staticmethod
    def fit_lambda(targets: np.ndarray) -> float:
        values = np.asarray(targets, dtype=np.float64) + 1.0
        if values.size < 2 or np.ptp(values) == 0:
            return 0.0
        return float(stats.boxcox_normmax(values, method="mle"))

    @staticmethod
    def forward(x: np.ndarray, lam: float) -> np.ndarray:
        if abs(lam) < 1e-8:
            return np.log1p(x)
        return (np.power(x + 1.0, lam) - 1.0) / lam

    @staticmethod
    def inverse(y: np.ndarray, lam: float) -> np.ndarray:
        if abs(lam) < 1e-8:
            return np.expm1(y)
        base = np.maximum(lam * y + 1.0, 1e-12)
        return np.power(base, 1.0 / lam) - 1.0


@dataclass(frozen=True)
class TargetTransform:
    """A fitted transform: its kind (a registered name) and parameter."""

    kind: str = "none"
    lam: float = 0.0  # Box-Cox lambda (log1p is lambda 0)

    @classmethod
    def fit(cls, kind: str, targets: np.ndarray) -> TargetTransform:
        return cls(kind, TARGET_TRANSFORMS.get(kind).fit_lambda(targets))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return TARGET_TRANSFORMS.get(self.kind).forward(x, self.lam)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return TARGET_TRANSFORMS.get(self.kind).inverse(y, self.lam)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "lam": self.lam}
