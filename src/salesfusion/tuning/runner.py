"""The search loop: ask the searcher, score the proposal on the validation part, tell the
searcher, log the trial; until the trial budget, the time budget or the searcher runs out.

Rules every searcher gets from here:

- **One training per configuration.** A configuration already scored in this search (by any
  trial) is answered from the log without training; the answer is logged as ``cached`` and
  does not count against the budget. A searcher that keeps proposing scored configurations
  (``STALE_ASKS`` in a row: the space is exhausted, or the agent has settled) ends the search.
- **Budgets**: ``trials`` counts trainings (complete, pruned and failed trials); ``seconds``
  counts their wall time, summed over the sessions of a resumed search, and is checked before a
  trial starts (a trial is never cut short by the time budget).
- **Resume.** A fresh searcher replays the log: each of its proposals must be the logged one
  (else the search cannot be continued: the code, options or seed differ) and hears the logged
  score, so it is in the state it had when the process died, and the search goes on exactly as
  an uninterrupted one. A searcher with its own persistent store (Optuna with a storage URL)
  is not replayed; the trials the dead process left open in it are settled from the log.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from salesfusion.errors import InputError
from salesfusion.models.base import Forecaster
from salesfusion.tuning.log import TRAINED, TrialEnd, TrialLog
from salesfusion.tuning.objective import TrialOutcome, TuningData, run_trial
from salesfusion.tuning.searchers.base import Proposal, Searcher, key_of

STALE_ASKS = 200
FAILED_START = 3  # the first trials all failing means the search itself is wrong


@dataclass(frozen=True)
class Budget:
    trials: int
    seconds: float | None = None


@dataclass
class SearchState:
    """What the loop knows: the finished trials by number, and each configuration's result."""

    ends: dict[int, TrialEnd] = field(default_factory=dict)
    results: dict[str, TrialEnd] = field(default_factory=dict)

    def add(self, end: TrialEnd) -> None:
        self.ends[end.trial] = end
        if end.status in TRAINED:
            self.results.setdefault(key_of(end.params), end)

    @property
    def trained(self) -> list[TrialEnd]:
        return [e for e in self.ends.values() if e.status in TRAINED]

    @property
    def seconds(self) -> float:
        return sum(e.seconds for e in self.trained)

    def best(self) -> TrialEnd | None:
        scored = [e for e in self.trained if e.status == "complete" and e.score is not None]
        return min(scored, key=lambda e: (e.score, e.trial)) if scored else None


@dataclass(frozen=True)
class SearchResult:
    best: TrialEnd | None
    state: SearchState
    stopped: str  # why the search ended


Progress = Callable[[str], None]
TrialRunner = Callable[[Proposal, dict[str, Any]], TrialOutcome]


def trial_params(model_type: type[Forecaster], base: dict[str, Any],
                 proposal_params: dict[str, Any], seed: int) -> dict[str, Any]:
    """The model parameters of a trial: the fixed ones, the proposal's, and the search's seed
    (every trial's model is seeded alike, so configurations are compared on equal terms)."""
    params = {**base, **proposal_params}
    if "seed" in model_type.Config.model_fields:
        params["seed"] = seed
    return params


def replay(searcher: Searcher, log: TrialLog, state: SearchState) -> int:
    """Bring a fresh searcher to the state the logged search had; the next trial number."""
    searcher.owner = log.search_id
    ends = log.ends()
    for end in ends.values():
        state.add(end)
    if not searcher.replays:
        searcher.recover(log.outcomes_by_reference())
        return max(ends, default=-1) + 1
    number = 0
    while number in ends:
        proposal = searcher.ask()
        logged = ends[number]
        if proposal is None or key_of(proposal.params) != key_of(logged.params):
            got = None if proposal is None else proposal.params
            raise InputError(f"{log.trials_path}: trial {number} was {logged.params} but the "
                             f"searcher now proposes {got}: the log was written by other code, "
                             f"options or seed and cannot be continued; start a new search")
        searcher.tell(proposal, logged.score if logged.status in ("complete", "cached")
                      else None)
        number += 1
    return number


def run_search(model_type: type[Forecaster], base: dict[str, Any], searcher: Searcher,
               data: TuningData, log: TrialLog, budget: Budget, seed: int,
               progress: Progress = print, trial: TrialRunner | None = None) -> SearchResult:
    """The local backend: trials one after another in this process. ``trial`` replaces the
    training of a proposal (the searcher benchmark looks scores up in a table it measured)."""

    def train(proposal: Proposal, params: dict[str, Any]) -> TrialOutcome:
        if trial is not None:
            return trial(proposal, params)
        return run_trial(model_type, params, data,
                         lambda epoch, value: searcher.report(proposal, epoch, value))

    state = SearchState()
    number = replay(searcher, log, state)
    if state.ends:
        progress(f"resumed: {len(state.trained)} trial(s) trained before, best "
                 f"{_score(state.best(), data.label)}")
    while True:
        proposal, number, stopped = next_to_train(searcher, log, state, budget, number)
        if proposal is None:
            return SearchResult(state.best(), state, stopped or "")
        log.started(number, proposal.params, searcher.reference(proposal))
        outcome = train(proposal, trial_params(model_type, base, proposal.params, seed))
        end = finish(searcher, proposal, outcome, log, number, state)
        progress(describe(end, state, budget, data.label))
        check_start(state)
        number += 1


def next_to_train(searcher: Searcher, log: TrialLog, state: SearchState, budget: Budget,
                  number: int) -> tuple[Proposal | None, int, str | None]:
    """Ask until the searcher proposes a configuration not scored yet: (it, its trial number,
    None), or (None, the next trial number, why the search stops). A repeat is answered from
    the log and logged as ``cached``; a spent budget, an exhausted searcher or ``STALE_ASKS``
    repeats in a row stop the search."""
    stale = 0
    while True:
        if (reason := budget_left(state, budget)) is not None:
            return None, number, reason
        proposal = searcher.ask()
        if proposal is None:
            return None, number, "the searcher has no configuration left"
        earlier = state.results.get(key_of(proposal.params))
        if earlier is None:
            return proposal, number, None
        # Logged before the searcher is told, as ``finish`` does.
        state.add(log.ended(number, proposal.params, "cached", earlier.score, 0.0, [],
                            f"same configuration as trial {earlier.trial}",
                            searcher.reference(proposal)))
        searcher.tell(proposal, earlier.score if earlier.status == "complete" else None)
        number += 1
        stale += 1
        if stale >= STALE_ASKS:
            return None, number, (f"the last {STALE_ASKS} proposals had all been tried (the "
                                  f"searcher has settled)")


def finish(searcher: Searcher, proposal: Proposal, outcome: TrialOutcome, log: TrialLog,
           number: int, state: SearchState) -> TrialEnd:
    """Log a trial's outcome, then tell the searcher (a kill between the two leaves the log
    ahead, and a resumed search tells it from the log)."""
    end = log.ended(number, proposal.params, outcome.status, outcome.score, outcome.seconds,
                    outcome.epochs, outcome.error)
    searcher.tell(proposal, outcome.score)
    state.add(end)
    return end


def check_start(state: SearchState) -> None:
    trained = sorted(state.trained, key=lambda e: e.trial)
    if len(trained) == FAILED_START and all(e.status == "failed" for e in trained):
        raise InputError(f"the first {FAILED_START} trials all failed (first: "
                         f"{trained[0].error}); check the search space and the data")


def budget_left(state: SearchState, budget: Budget) -> str | None:
    """Why the search must stop now, or None."""
    if len(state.trained) >= budget.trials:
        return f"trial budget of {budget.trials} reached"
    if budget.seconds is not None and state.seconds >= budget.seconds:
        return f"time budget of {budget.seconds:,.0f} s reached"
    return None


def describe(end: TrialEnd, state: SearchState, budget: Budget, metric: str) -> str:
    """A trial's progress line: its settings and score, the best so far and the time left."""
    settings = " ".join(f"{k}={_value(v)}" for k, v in end.params.items())
    result = (f"{metric} {end.score:.4g}" if end.status == "complete"
              else f"{end.status}{f' ({end.error})' if end.error else ''}")
    done = len(state.trained)
    mean = state.seconds / max(done, 1)
    left = mean * (budget.trials - done)
    if budget.seconds is not None:
        left = min(left, max(budget.seconds - state.seconds, 0.0))
    return (f"trial {end.trial} [{done}/{budget.trials}] {settings}: {result} in "
            f"{end.seconds:,.1f} s; best {_score(state.best(), metric)}; about "
            f"{_duration(left)} left")


def _score(end: TrialEnd | None, metric: str) -> str:
    return "none yet" if end is None else f"{metric} {end.score:.4g} (trial {end.trial})"


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"
