"""``optuna``: Bayesian search with Optuna's TPE sampler, optional median or Hyperband pruning,
and an RDB storage that several processes or machines can share.

Reproducibility: TPE draws from its own random stream, which a restarted process would reseed.
Each proposal therefore gets a fresh sampler seeded from (seed, number of finished trials in
the study, number of trials running), so a proposal depends on the seed and the trials only: a
search resumed after a kill (whose abandoned trial is marked failed first) proposes what the
uninterrupted search would have, and trials asked for at once (the Ray backend) differ.
Processes sharing one study should each have their own ``--seed`` (two processes with one seed
and one history would propose the same configuration).

Pruning uses the trials' per-epoch validation losses (``tuning.objective`` hears them through
``training.hooks``, a small Lightning callback of our own: Optuna's stock Lightning callback has
broken across Lightning versions). Models without epochs (LightGBM, the statistical baselines)
are never pruned.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import numpy as np
from pydantic import Field

from salesfusion.components import SEARCHERS
from salesfusion.errors import InputError
from salesfusion.models.search_space import CategoricalDimension, FloatDimension
from salesfusion.tuning.searchers.base import Proposal, Searcher, SearcherOptions

OWNER = "salesfusion_search"  # user attribute naming the search folder that asked a trial
ORPHAN_SECONDS = 60


class OptunaOptions(SearcherOptions):
    storage: str | None = Field(None, description=(
        "RDB storage URL (sqlite:///path.db, postgresql://...) shared by the processes of one "
        "study; None: in memory (the CLI defaults to optuna.db in the search folder)."))
    study: str = Field("salesfusion", description="Study name in the storage.")
    pruner: Literal["none", "median", "hyperband"] = "median"
    startup_trials: int = Field(5, ge=1, description="Random trials before TPE models them.")
    warmup_epochs: int = Field(2, ge=0, description=(
        "Epochs a trial always runs: it may be pruned from the next one on."))
    discrete: bool = Field(False, description=(
        "Search the discrete values (action sets, as ordered indices) instead of the "
        "distributions: the same space the grid and msrl searchers see."))


@SEARCHERS.register
class OptunaSearcher(Searcher):
    """Optuna TPE with median / Hyperband pruning and shared RDB studies."""

    name = "optuna"
    Options = OptunaOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self._pruned: set[int] = set()  # trial numbers report() pruned (told PRUNED, not FAIL)
        self.replays = self.options.storage is None
        try:
            self.study = optuna.create_study(
                storage=self.options.storage, study_name=self.options.study,
                direction="minimize", load_if_exists=True, pruner=self._pruner(),
                sampler=self._sampler(0))
        except Exception as exc:  # sqlalchemy's and Optuna's many connection errors
            raise InputError(f"optuna storage {self.options.storage!r}: cannot open the study "
                             f"({str(exc).splitlines()[0][:200]})") from None
        self.distributions = self._distributions()

    def _pruner(self) -> Any:
        pruners = self._optuna.pruners
        if self.options.pruner == "median":
            # Steps are 1-based epochs, and Optuna may prune from step n_warmup_steps on.
            return pruners.MedianPruner(n_startup_trials=3,
                                        n_warmup_steps=self.options.warmup_epochs + 1)
        if self.options.pruner == "hyperband":
            top = (max(self.space.values("epochs")) if "epochs" in self.space.dimensions
                   else "auto")
            return pruners.HyperbandPruner(min_resource=max(1, self.options.warmup_epochs),
                                           max_resource=top)
        return pruners.NopPruner()

    def _sampler(self, finished: int, running: int = 0) -> Any:
        seed = int(np.random.SeedSequence([self.seed, finished, running]).generate_state(1)[0])
        return self._optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=self.options.startup_trials)

    def _distributions(self) -> dict[str, Any]:
        d = self._optuna.distributions
        found: dict[str, Any] = {}
        for name, dim in self.space.dimensions.items():
            if isinstance(dim, CategoricalDimension):
                found[name] = d.CategoricalDistribution(
                    dim.choices if _plain(dim.choices) else list(range(len(dim.choices))))
            elif self.options.discrete:  # ordered action indices keep TPE's notion of distance
                found[name] = d.IntDistribution(0, len(self.space.values(name)) - 1)
            elif isinstance(dim, FloatDimension):
                found[name] = d.FloatDistribution(dim.low, dim.high, log=dim.log)
            else:
                found[name] = d.IntDistribution(dim.low, dim.high, log=dim.log,
                                                step=1 if dim.log else dim.step)
        return found

    def _propose(self, number: int) -> tuple[dict[str, Any], Any] | None:
        states = self._optuna.trial.TrialState
        finished = len(self.study.get_trials(deepcopy=False,
                                             states=(states.COMPLETE, states.PRUNED)))
        running = len(self.study.get_trials(deepcopy=False, states=(states.RUNNING,)))
        self.study.sampler = self._sampler(finished, running)
        trial = self.study.ask(self.distributions)
        if self.owner is not None:
            trial.set_user_attr(OWNER, self.owner)
        params = {}
        for name, value in trial.params.items():
            dim = self.space.dimensions[name]
            if isinstance(dim, CategoricalDimension):
                value = value if _plain(dim.choices) else dim.choices[int(value)]
            elif self.options.discrete:
                value = self.space.values(name)[int(value)]
            params[name] = value
        return {n: params[n] for n in self.space.names}, trial

    def tell(self, proposal: Proposal, score: float | None) -> None:
        states = self._optuna.trial.TrialState
        if score is not None:
            self.study.tell(proposal.token, score, skip_if_finished=True)
        else:
            pruned = proposal.token.number in self._pruned
            self.study.tell(proposal.token, state=states.PRUNED if pruned else states.FAIL,
                            skip_if_finished=True)

    def report(self, proposal: Proposal, epoch: int, value: float) -> bool:
        trial = proposal.token
        trial.report(value, epoch)
        if trial.should_prune():
            self._pruned.add(trial.number)
            return True
        return False

    def recover(self, logged: dict[Any, tuple[str, float | None]]) -> None:
        """This search's trials still running in the study: those the log saw end get their
        logged outcome (the process died between logging and telling), the others failed
        (it died during the trial, or between asking and logging its start)."""
        states = self._optuna.trial.TrialState
        now = datetime.now()
        trials = self.study.get_trials(deepcopy=False)
        shared = any(t.user_attrs.get(OWNER) not in (None, self.owner) for t in trials)
        for trial in (t for t in trials if t.state == states.RUNNING):
            owner = trial.user_attrs.get(OWNER)
            # A trial without an owner was created by a process killed before it could mark
            # it (an instant after asking): ours when no other search uses the study, and
            # abandoned by anyone after ORPHAN_SECONDS.
            orphan = owner is None and (not shared or (
                trial.datetime_start is not None
                and (now - trial.datetime_start).total_seconds() > ORPHAN_SECONDS))
            if not orphan and (self.owner is None or owner != self.owner):
                continue  # another process's trial in a shared study
            status, score = logged.get(trial.number, ("failed", None))
            if status in ("complete", "cached") and score is not None:
                self.study.tell(trial.number, score, skip_if_finished=True)
            else:
                self.study.tell(trial.number, skip_if_finished=True,
                                state=states.PRUNED if status == "pruned" else states.FAIL)

    def reference(self, proposal: Proposal) -> int:
        return int(proposal.token.number)


def _plain(choices: list[Any]) -> bool:
    """Whether Optuna can store the choices themselves (None, bool, int, float or str); others
    (lists, mappings) are searched by their index."""
    return all(c is None or isinstance(c, bool | int | float | str) for c in choices)
