"""What the LightGBM models share: the booster settings and the fit (rounds chosen by early
stopping on a validation part, then a refit on every row with that many rounds)."""

from __future__ import annotations

from typing import Any, Literal

import lightgbm as lgb
import numpy as np
from pydantic import Field, model_validator

from salesfusion.models.config import POINT_HELP, ModelConfig, PointForecast
from salesfusion.threads import default_threads
from salesfusion.training.fit_progress import boosting_callbacks, stage_finished

Objective = Literal["l1", "l2", "tweedie", "poisson"]
# The objective each point forecast trains on when none is named: l1's minimiser is the median;
# the mean objective is the one measured best by benchmarks/point_forecast.py.
DEFAULT_OBJECTIVE: dict[str, Objective] = {"median": "l1", "mean": "tweedie"}
# The two stages a fit reports to a progress listener (``training.fit_progress``).
PROBE, FINAL = "probe fit (early stopping)", "final fit"


class BoosterConfig(ModelConfig):
    point: PointForecast = Field("mean", description=POINT_HELP)
    objective: Objective | None = Field(None, description=(
        "LightGBM objective; l1 gives the median, l2/poisson/tweedie the mean. None: the "
        "point forecast's default (mean: tweedie, median: l1)."))
    learning_rate: float = Field(0.05, gt=0, le=1)
    num_leaves: int = Field(31, ge=2)
    min_data_in_leaf: int = Field(50, ge=1)
    feature_fraction: float = Field(0.8, gt=0, le=1)
    bagging_fraction: float = Field(0.8, gt=0, le=1)
    lambda_l2: float = Field(1.0, ge=0)
    max_rounds: int = Field(500, ge=1, description="Most boosting rounds.")
    early_stopping_rounds: int = Field(50, ge=1, description=(
        "Rounds without improvement on the validation part before stopping."))
    early_stopping: bool = Field(True, description=(
        "Choose the rounds by early stopping on the validation part, then refit on every row; "
        "False: one fit of max_rounds rounds on every row (half the work on a large panel)."))
    seed: int = 0
    threads: int | None = Field(None, ge=1, description=(
        "LightGBM threads; None: OMP_NUM_THREADS when set, else every core."))


    @model_validator(mode="before")
    @classmethod
    def _point_of_saved_objective(cls, data: Any) -> Any:
        """A configuration that names only an objective (every one saved before ``point``
        existed) keeps the point forecast that objective gives."""
        if isinstance(data, dict) and "point" not in data and data.get("objective"):
            return {**data, "point": "median" if data["objective"] == "l1" else "mean"}
        return data

    @model_validator(mode="after")
    def _objective_gives_point(self) -> BoosterConfig:
        if self.objective is not None and (self.objective == "l1") != (self.point == "median"):
            gives = "median" if self.objective == "l1" else "mean"
            fitting = "l1" if self.point == "median" else "l2, poisson or tweedie"
            raise ValueError(f"objective {self.objective} gives the {gives}, not the "
                             f"{self.point}: leave objective out or name one that gives the "
                             f"{self.point} ({fitting})")
        return self

    @property
    def booster_objective(self) -> Objective:
        return self.objective or DEFAULT_OBJECTIVE[self.point]


def booster_params(config: BoosterConfig, **extra: Any) -> dict[str, Any]:
    return {"objective": config.booster_objective, "learning_rate": config.learning_rate,
            "num_leaves": config.num_leaves, "min_data_in_leaf": config.min_data_in_leaf,
            "feature_fraction": config.feature_fraction,
            "bagging_fraction": config.bagging_fraction, "bagging_freq": 1,
            "lambda_l2": config.lambda_l2, "seed": config.seed,
            "num_threads": config.threads or default_threads(),
            "deterministic": True, "force_row_wise": True, "verbosity": -1, **extra}


def fit_booster(params: dict[str, Any], config: BoosterConfig, matrix: np.ndarray,
                label: np.ndarray, validation: np.ndarray | None, *, feature_names: list[str],
                categorical: list[str], weight: np.ndarray | None = None,
                init_score: np.ndarray | None = None) -> lgb.Booster:
    """Early stopping on the rows of ``validation`` (when it and the rest are both non-empty)
    picks the number of rounds; the returned booster is refit on every row. ``init_score``:
    each row's base score (on the objective's link scale), which the trees then correct."""
    return fit_booster_probed(params, config, matrix, label, validation,
                              feature_names=feature_names, categorical=categorical,
                              weight=weight, init_score=init_score)[0]


def fit_booster_probed(params: dict[str, Any], config: BoosterConfig, matrix: np.ndarray,
                       label: np.ndarray, validation: np.ndarray | None, *,
                       feature_names: list[str], categorical: list[str],
                       weight: np.ndarray | None = None,
                       init_score: np.ndarray | None = None,
                       ) -> tuple[lgb.Booster, np.ndarray | None]:
    """``fit_booster``, also returning the early-stopping model's predictions of the validation
    rows (None when there was no early stopping, or with ``init_score``): out-of-sample errors,
    which the forecast quantiles are drawn from."""

    def rows(mask: np.ndarray | None, **kwargs: Any) -> lgb.Dataset:
        if mask is None:  # every row: no copy of a matrix that can take gigabytes
            return lgb.Dataset(matrix, label, weight=weight, init_score=init_score, **kwargs)
        return lgb.Dataset(matrix[mask], label[mask],
                           weight=None if weight is None else weight[mask],
                           init_score=None if init_score is None else init_score[mask],
                           **kwargs)

    rounds = config.max_rounds
    probed = None
    if (config.early_stopping and validation is not None and validation.any()
            and (~validation).any()):
        train = rows(~validation, feature_name=feature_names, categorical_feature=categorical)
        probe = lgb.train(params, train, num_boost_round=rounds,
                          valid_sets=[rows(validation, reference=train)],
                          callbacks=[lgb.early_stopping(config.early_stopping_rounds,
                                                        verbose=False),
                                     *boosting_callbacks(PROBE, rounds, True)])
        # The probe is cut back to its best round; it ran until patience was out or to the end.
        ran = min(rounds, probe.best_iteration + config.early_stopping_rounds)
        stage_finished(PROBE, ran if probe.best_iteration else rounds, rounds, "rounds")
        rounds = max(1, probe.best_iteration)
        if init_score is None:  # with base scores the probe's own output is no forecast
            probed = probe.predict(matrix[validation], num_iteration=rounds)
    booster = lgb.train(params, rows(None, feature_name=feature_names,
                                     categorical_feature=categorical), num_boost_round=rounds,
                        callbacks=boosting_callbacks(FINAL, rounds, False))
    stage_finished(FINAL, rounds, rounds, "rounds")
    return booster, probed


def fit_booster_folds(params: dict[str, Any], config: BoosterConfig, matrix: np.ndarray,
                      label: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]], *,
                      feature_names: list[str], categorical: list[str],
                      init_score: np.ndarray | None = None) -> tuple[lgb.Booster, str | None]:
    """``fit_booster`` with the rounds chosen on several validation folds (``folds``: (train,
    validation) row masks) at once: early stopping on the folds' mean validation loss
    (LightGBM's ``cv``), then a refit on every row. Also returns a note giving the rounds and
    the spread of the validation loss across the folds at that round (None without folds)."""
    rounds = config.max_rounds
    note = None
    if config.early_stopping and folds:
        data = lgb.Dataset(matrix, label, init_score=init_score, feature_name=feature_names,
                           categorical_feature=categorical, free_raw_data=False)
        indices = [(np.nonzero(train)[0], np.nonzero(held)[0]) for train, held in folds]
        found = lgb.cv(params, data, num_boost_round=rounds, folds=indices,
                       callbacks=[lgb.early_stopping(config.early_stopping_rounds,
                                                     verbose=False),
                                  *boosting_callbacks(PROBE, rounds, True)])
        metric = next(k for k in found if k.endswith("-mean"))
        rounds = max(1, len(found[metric]))
        stage_finished(PROBE, rounds, config.max_rounds, "rounds")
        spread = found[metric.replace("-mean", "-stdv")][rounds - 1]
        note = (f"{rounds} rounds chosen on {len(folds)} validation folds "
                f"({metric.removeprefix('valid ').removesuffix('-mean')} "
                f"{found[metric][rounds - 1]:.4g}, sd across folds {spread:.3g})")
    booster = lgb.train(params, lgb.Dataset(matrix, label, init_score=init_score,
                                            feature_name=feature_names,
                                            categorical_feature=categorical),
                        num_boost_round=rounds, callbacks=boosting_callbacks(FINAL, rounds, False))
    stage_finished(FINAL, rounds, rounds, "rounds")
    return booster, note
