"""Critical-difference ranking of models across datasets: Friedman test over the ranks within
each block and the Nemenyi critical difference (Demsar 2006), by autorank where it applies.

Blocks are datasets (trials averaged first) or dataset x trial; a CD diagram draws the mean
ranks and bars over the groups of models within one CD of each other.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from scipy import stats as sps

from salesfusion.errors import InputError
from salesfusion.experiments.stats import BLOCKS, _choice


@dataclass(frozen=True)
class CDResult:
    """Friedman test and Nemenyi critical difference over blocks. ``mean_ranks`` runs best first
    (rank 1 = best); ``groups`` are the maximal runs of models whose mean ranks lie within the CD
    of each other (the bars of a CD diagram), a model unlike all others standing alone.
    ``method`` says which computed it; ``autorank_result`` is autorank's own result where it ran,
    for ``autorank.plot_stats``."""

    mean_ranks: dict[str, float]
    critical_difference: float
    friedman_statistic: float
    friedman_p_value: float
    groups: list[tuple[str, ...]]
    n_models: int
    n_blocks: int
    alpha: float
    method: str
    autorank_result: Any = field(default=None, repr=False)


def critical_difference(scores: pl.DataFrame | pd.DataFrame, lower_is_better: bool = True,
                        alpha: float = 0.05, blocks: str = "dataset") -> CDResult:
    """Rank models within each block, Friedman test over the ranks, Nemenyi critical difference
    CD = q_alpha * sqrt(k(k+1) / (6N)) (Demsar 2006). ``scores`` has ``dataset, model, value``.

    ``blocks="dataset"`` averages the ``trial`` column (if any) per dataset first: trials of one
    dataset are not independent blocks, and counting them as such would shrink the CD.
    ``blocks="dataset_trial"`` ranks each (dataset, trial). autorank computes it where it can (3+
    models, 5+ blocks; forced to Friedman/Nemenyi, as it would otherwise pick ANOVA/Tukey for
    normal data); below that, where autorank refuses or switches to a two-sample test, the same
    formulas run here with statsmodels' ``qsturng``, the function autorank uses.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, float | int) or not 0.001 <= alpha <= 0.9:
        raise InputError(f"alpha must be a number from 0.001 to 0.9, got {alpha!r}")
    matrix = _score_matrix(scores, blocks)
    if not lower_is_better:
        matrix = -matrix
    n_blocks, k = matrix.shape
    all_tied = bool((matrix.nunique(axis=1) == 1).all())
    if k >= 3 and n_blocks >= 5 and not all_tied:
        return _with_autorank(matrix, float(alpha))
    return _demsar(matrix, float(alpha))


def _score_matrix(scores: Any, blocks: str) -> pd.DataFrame:
    """Blocks x models, lower is better as given; every model scored on every block."""
    if isinstance(scores, pd.DataFrame):
        scores = pl.from_pandas(scores)
    if not isinstance(scores, pl.DataFrame):
        raise InputError(f"scores must be a polars or pandas DataFrame, got {type(scores)}")
    _choice(blocks, BLOCKS, "blocks")
    key = ["dataset", "trial"] if blocks == "dataset_trial" else ["dataset"]
    needed = [*key, "model", "value"]
    missing = [c for c in needed if c not in scores.columns]
    if missing:
        raise InputError(f"the scores frame lacks column(s): {', '.join(missing)}")
    unit = [*key, "model", *(["trial"] if "trial" in scores.columns and blocks == "dataset"
                             else [])]
    scores = scores.select(*unit, "value").with_columns(
        pl.col("model").cast(pl.Utf8), pl.col("value").cast(pl.Float64))
    bad = scores.height - int(scores.select(pl.col("value").is_finite().fill_null(False).sum())
                              .item())
    if bad:
        raise InputError(f"the scores have {bad} missing or non-finite value(s)")
    repeated = int(scores.select(unit).is_duplicated().sum())
    if repeated:
        raise InputError(f"{repeated} score rows repeat a {'/'.join(unit)}: one value each")
    means = scores.group_by([*key, "model"]).agg(pl.col("value").mean()).sort([*key, "model"])
    wide = means.pivot(on="model", index=key, values="value").sort(key)
    models = sorted(means["model"].unique().to_list())
    if len(models) < 2 or wide.height < 2:
        raise InputError(f"critical difference needs 2+ models and 2+ blocks, got "
                         f"{len(models)} model(s) and {wide.height} block(s)")
    for model in models:
        holes = wide.filter(pl.col(model).is_null())
        if holes.height:
            block = holes.row(0, named=True)
            raise InputError(f"model {model!r} has no score for block "
                             f"{ {k: block[k] for k in key} }: every model needs every block")
    return pd.DataFrame(wide.select(models).to_numpy(), columns=models)


def _friedman(ranks: np.ndarray) -> tuple[float, float]:
    """Friedman chi-square with scipy's tie correction, for any k >= 2 (scipy wants k >= 3)."""
    n, k = ranks.shape
    ties = sum(float((c ** 3 - c).sum()) for c in
               (np.unique(row, return_counts=True)[1] for row in ranks))
    correction = 1.0 - ties / (k * (k * k - 1) * n)
    if correction <= 0.0:
        return 0.0, 1.0  # every block fully tied: no evidence of any difference
    sums = ranks.sum(axis=0)
    statistic = (12.0 / (k * n * (k + 1)) * float(sums @ sums) - 3 * n * (k + 1)) / correction
    return float(statistic), float(sps.chi2.sf(statistic, k - 1))


def _nemenyi_cd(alpha: float, k: int, n: int) -> float:
    from statsmodels.stats.libqsturng import qsturng
    return float(qsturng(1 - alpha, k, np.inf) / np.sqrt(2) * np.sqrt(k * (k + 1) / (6 * n)))


def _demsar(matrix: pd.DataFrame, alpha: float) -> CDResult:
    ranks = sps.rankdata(matrix.to_numpy(), axis=1)
    statistic, p_value = _friedman(ranks)
    mean_ranks = dict(zip(matrix.columns, ranks.mean(axis=0).tolist(), strict=True))
    cd = _nemenyi_cd(alpha, matrix.shape[1], matrix.shape[0])
    return _cd_result(mean_ranks, cd, statistic, p_value, matrix.shape, alpha, "demsar", None)


def _with_autorank(matrix: pd.DataFrame, alpha: float) -> CDResult:
    from autorank import autorank
    # autorank prints its table, and its normality and variance tests (moot once forced to
    # Friedman/Nemenyi) warn on constant columns: neither belongs in a library call's output.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = autorank(matrix, alpha=alpha, order="ascending", force_mode="nonparametric")
    mean_ranks = {str(m): float(r) for m, r in result.rankdf["meanrank"].items()}
    statistic = float(sps.friedmanchisquare(*matrix.to_numpy().T).statistic)
    return _cd_result(mean_ranks, float(result.cd), statistic, float(result.pvalue), matrix.shape,
                      alpha, "autorank", result)


def _cd_result(mean_ranks: dict[str, float], cd: float, statistic: float, p_value: float,
               shape: tuple[int, int], alpha: float, method: str, raw: Any) -> CDResult:
    order = sorted(mean_ranks, key=lambda m: (mean_ranks[m], m))
    ranks = [mean_ranks[m] for m in order]
    groups: list[tuple[str, ...]] = []
    reach = -1
    for i in range(len(order)):
        last = max(j for j in range(i, len(order)) if ranks[j] - ranks[i] <= cd)
        if last > reach:
            groups.append(tuple(order[i:last + 1]))
            reach = last
    return CDResult({m: mean_ranks[m] for m in order}, cd, statistic, p_value, groups, shape[1],
                    shape[0], alpha, method, raw)
