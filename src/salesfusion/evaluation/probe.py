"""Linear probes: does an encoder's output carry a known ground-truth factor?

A ridge regression (regularisation chosen by internal cross-validation) predicts the factor from
the vectors; the score is the out-of-fold R² over k folds, so 0 is chance and 1 is perfect.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def probe_r2(vectors: np.ndarray, target: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """Out-of-fold R² of a ridge probe from ``vectors`` (n, d) to ``target`` (n,)."""
    flat = vectors.reshape(len(vectors), -1)
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
    predicted = cross_val_predict(model, flat, target,
                                  cv=KFold(folds, shuffle=True, random_state=seed))
    residual = ((target - predicted) ** 2).sum()
    total = ((target - target.mean()) ** 2).sum()
    return float(1 - residual / total)
