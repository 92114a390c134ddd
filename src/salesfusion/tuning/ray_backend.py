"""The Ray Tune backend: any searcher's trials run in parallel on a Ray cluster (a local one by
default, ``ray.init(address=...)`` for a real one).

Our searcher stays in charge: a Ray Tune ``Searcher`` adapter asks it for each new trial and
tells it each result, with the same rules as the local loop (``tuning.runner``: one training per
configuration, the same budgets, the same log, so a search started locally can be resumed on Ray
and the other way round). Each trial is a Ray Tune function trainable that trains on the tuning
data and reports every epoch's validation loss with ``ray.tune.report`` (Ray's current reporting
API; its Lightning ``TuneReportCallback`` is deprecated), then its score. Pruning works through
a Ray ``Stopper`` that asks the searcher after each epoch's report.

Trials finish in an order that depends on timing, so with more than one trial at a time a
sequential searcher (msrl, optuna) sees results in a run-dependent order; with ``jobs=1`` the
search is the local one, trial for trial. On a real cluster every node needs salesfusion
installed and the model's embedding cache or encoders available.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

from ray.tune.search import Searcher as RaySearcher

from salesfusion.distributed import ray_session
from salesfusion.models.base import Forecaster
from salesfusion.models.presets import resolve_model
from salesfusion.tuning.log import TrialLog
from salesfusion.tuning.objective import TrialOutcome, TuningData, run_trial
from salesfusion.tuning.runner import (
    Budget,
    SearchResult,
    SearchState,
    budget_left,
    check_start,
    describe,
    finish,
    next_to_train,
    replay,
    trial_params,
)
from salesfusion.tuning.searchers.base import Proposal, Searcher


def _trainable(config: dict[str, Any], model: str, data: TuningData) -> None:
    """One trial on a Ray worker: per-epoch reports, then the final one."""
    from ray import tune

    def report(epoch: int, value: float) -> bool:
        tune.report({"epoch": epoch, "val_loss": value, "score": math.nan, "final": False})
        return False  # the driver's Stopper decides, and Ray ends the trial

    outcome = run_trial(resolve_model(model), config["params"], data, report)
    tune.report({"final": True, "status": outcome.status,
                 "score": math.nan if outcome.score is None else outcome.score,
                 "seconds": outcome.seconds, "epochs_seen": outcome.epochs,
                 "error": outcome.error or ""})


def run_search_ray(model_type: type[Forecaster], base: dict[str, Any], searcher: Searcher,
                   data: TuningData, log: TrialLog, budget: Budget, seed: int, *, jobs: int,
                   address: str | None = None, model_reference: str | None = None,
                   progress: Callable[[str], None] = print) -> SearchResult:
    """Run the search's trials on Ray Tune, ``jobs`` at a time."""
    from ray import tune

    # Ray's default console tables would interleave with our trial lines.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    state = SearchState()
    number = replay(searcher, log, state)
    with ray_session(address, jobs):
        adapter = _Adapter(model_type, base, searcher, data, log, budget, seed, state, number,
                           progress)
        tuner = tune.Tuner(
            tune.with_resources(
                tune.with_parameters(_trainable, model=model_reference or model_type.name,
                                     data=data), {"cpu": 1}),
            tune_config=tune.TuneConfig(
                search_alg=adapter, max_concurrent_trials=jobs, num_samples=-1),
            run_config=tune.RunConfig(
                name=f"session-{log.session}", storage_path=str(log.folder / "ray"),
                verbose=0, stop=_PruneStopper(adapter)))
        tuner.fit()
    return SearchResult(state.best(), state, adapter.stopped or "every trial ended")


class _Adapter(RaySearcher):
    """Ray Tune's view of our searcher (``suggest`` / ``on_trial_complete``)."""

    def __init__(self, model_type: type[Forecaster], base: dict[str, Any], searcher: Searcher,
                 data: TuningData, log: TrialLog, budget: Budget, seed: int, state: SearchState,
                 number: int, progress: Callable[[str], None]) -> None:
        super().__init__(metric="score", mode="min")
        # Not "self.searcher": Ray takes an attribute of that name for a wrapped searcher.
        self.model_type, self.base, self.ours = model_type, base, searcher
        self.data, self.log, self.budget, self.seed = data, log, budget, seed
        self.state, self.number, self.progress = state, number, progress
        self.running: dict[str, tuple[int, Proposal]] = {}
        self.losses: dict[str, list[float]] = {}
        self.stopped: str | None = None

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.stopped:
            return None if self.running else self.FINISHED
        # Running trials count against the trial budget as if finished.
        planned = Budget(self.budget.trials - len(self.running), self.budget.seconds)
        proposal, self.number, stopped = next_to_train(self.ours, self.log, self.state,
                                                       planned, self.number)
        if proposal is None:
            if budget_left(self.state, planned) is not None:
                stopped = (budget_left(self.state, self.budget)
                           or f"trial budget of {self.budget.trials} reached")
            return self._finish(stopped or "")
        self.log.started(self.number, proposal.params, self.ours.reference(proposal))
        self.running[trial_id] = (self.number, proposal)
        self.number += 1
        return {"params": trial_params(self.model_type, self.base, proposal.params, self.seed)}

    # Ray saves the search algorithm for its own experiment restore; a search resumes from our
    # log instead (the searcher replays it), so nothing of this driver-side object is saved.
    def __getstate__(self) -> dict[str, Any]:
        return {"_metric": self._metric, "_mode": self._mode}

    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        return None

    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        return None

    def _finish(self, reason: str) -> Any:
        self.stopped = reason
        return None if self.running else self.FINISHED

    def report(self, trial_id: str, result: dict[str, Any]) -> bool:
        """An intermediate result: whether the searcher prunes the trial."""
        if result.get("final") or trial_id not in self.running:
            return False
        self.losses.setdefault(trial_id, []).append(float(result["val_loss"]))
        return self.ours.report(self.running[trial_id][1], int(result["epoch"]),
                                    float(result["val_loss"]))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        if trial_id not in self.running:
            return
        number, proposal = self.running.pop(trial_id)
        outcome = _outcome(result, error, self.losses.pop(trial_id, []))
        end = finish(self.ours, proposal, outcome, self.log, number, self.state)
        self.progress(describe(end, self.state, self.budget, self.data.label))
        check_start(self.state)


def _outcome(result: dict[str, Any] | None, error: bool, losses: list[float]) -> TrialOutcome:
    result = result or {}
    if error:
        return TrialOutcome("failed", None, float(result.get("time_total_s", 0.0)), losses, [],
                            "the Ray trial raised an error (see the Ray logs in ray/)")
    if result.get("final"):
        score = result["score"]
        return TrialOutcome(result["status"], None if math.isnan(score) else score,
                            float(result["seconds"]), list(result["epochs_seen"]), [],
                            result["error"] or None)
    # Stopped after an epoch report: pruned.
    return TrialOutcome("pruned", None, float(result.get("time_total_s", 0.0)), losses, [],
                        None)


class _PruneStopper:
    """A Ray Tune stopper (any callable of trial id and result) that asks our searcher."""

    def __init__(self, adapter: _Adapter) -> None:
        self.adapter = adapter

    def __getstate__(self) -> dict[str, Any]:
        return {}  # driver-side only (see _Adapter.__getstate__)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return self.adapter.report(trial_id, result)

