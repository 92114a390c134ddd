"""``msrl``: the multilevel Q-learning hyperparameter agent of seed 000 (section 4.3, eq. 15-19).

How the paper's agent is read here
----------------------------------
- **States** (eq. 15): one per tuned quantity, in the order the search space declares them
  (for ``msrl_bigru``: s1 hidden units, s2 epochs, s3 learning rate). The agent walks
  s1 -> s2 -> s3 -> s1 ... ("when the final state s3 is attained, the approach refreshes the
  state, and starts the cyclic search through s1").
- **Actions**: the state's action set (the dimension's ``actions``, or its grid values). An
  action sets that quantity in the current configuration; the other quantities keep the values
  last chosen (the search starts from the preset's values, snapped to the nearest action).
- **Reward** (eq. 18-19): the validation RMSE of the model trained with the configuration (any
  metric the search minimises). The agent *minimises*: "the minimum Q-value is expected", so
  the greedy action is the one with the lowest Q, and exploration is epsilon-greedy.
- **Update, ``update: paper``** (the default: eq. 16-17 as printed)::

      target = R(s, a) - gamma * max_a' Q(s', a')      (s' the next state; R alone after s3)
      Q(s, a) <- Q(s, a) - alpha * (target - Q(s, a))

  Both signs are the paper's. Read literally, eq. 16 moves Q *away* from the target, so a
  visited action's Q falls below the unvisited ones' and a minimising greedy policy keeps
  choosing it: the agent exploits its first choices and moves only when it explores. The
  search still returns the best configuration seen. **``update: standard``** is ordinary
  Q-learning for a cost: ``target = R + gamma * min_a' Q(s', a')`` and
  ``Q <- Q + alpha * (target - Q)``. Both are unit-tested against hand-computed tables.
- **Discount** gamma = 0.1 (section 5); alpha and epsilon are not given in the paper.
- **Multilevel** (section 3 describes a multilevel policy and a multilevel reward only for its
  vision-language network; for hyperparameters we make it concrete): with ``levels: 2`` each
  state's ordered action set is cut into ``ranges`` contiguous ranges. A coarse Q-table (state x
  range) picks a range, a fine Q-table (state x action) picks a value inside it, each
  epsilon-greedily. Both tables are updated by the same rule; the fine level's reward is the
  trial's RMSE, the coarse level's reward combines the two levels: the mean of the trial's RMSE
  and the best RMSE seen so far in that range, so a range is valued by its typical and its best
  outcome. ``levels: 1`` is a single table (the plain tabular agent).
- **Never the same configuration twice**: the runner scores a configuration once and answers a
  repeat from its cache (the agent still learns from the cached reward), so a revisit costs no
  training; the budget counts trainings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field

from salesfusion.components import SEARCHERS
from salesfusion.models.search_space import CategoricalDimension
from salesfusion.tuning.searchers.base import Proposal, Searcher, SearcherOptions


class MsrlOptions(SearcherOptions):
    update: Literal["paper", "standard"] = Field("paper", description=(
        "paper: eq. 16-17 as printed; standard: Q-learning for a cost (see the module)."))
    levels: Literal[1, 2] = Field(2, description="2: coarse ranges + fine values; 1: one table.")
    ranges: int | None = Field(None, ge=1, description=(
        "Ranges per state at the coarse level (default: ceil(sqrt(actions)))."))
    alpha: float = Field(0.5, gt=0, le=1, description="Q-table learning rate.")
    gamma: float = Field(0.1, ge=0, le=1, description="Discount factor (0.1 in seed 000).")
    epsilon: float = Field(0.2, ge=0, le=1, description="Exploration probability per choice.")


@dataclass(frozen=True)
class Step:
    """One action of the agent: in state ``state`` it chose range ``group`` and action
    ``action`` (an index into the state's action set)."""

    state: int
    group: int
    action: int


def q_update(q: float, reward: float, next_values: np.ndarray | None, alpha: float,
             gamma: float, rule: Literal["paper", "standard"]) -> float:
    """The new Q(s, a) after reward ``reward``; ``next_values`` is Q(s', .) (None: terminal)."""
    if rule == "paper":  # eq. 17 then eq. 16, signs as printed
        target = reward if next_values is None else reward - gamma * float(np.max(next_values))
        return q - alpha * (target - q)
    target = reward if next_values is None else reward + gamma * float(np.min(next_values))
    return q + alpha * (target - q)


@SEARCHERS.register
class MsrlSearcher(Searcher):
    """Seed 000's multilevel Q-learning agent: states = tuned quantities, walked cyclically."""

    name = "msrl"
    Options = MsrlOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rng = np.random.default_rng(self.seed)
        self.actions = [self.space.values(n) for n in self.space.names]
        options = self.options
        # Action indices of each range at the coarse level (one range when levels is 1).
        self.groups: list[list[np.ndarray]] = []
        for values in self.actions:
            count = 1 if options.levels == 1 else min(
                options.ranges or math.ceil(math.sqrt(len(values))), len(values))
            self.groups.append(np.array_split(np.arange(len(values)), count))
        self.fine = [np.zeros(len(values)) for values in self.actions]
        self.coarse = [np.zeros(len(groups)) for groups in self.groups]
        self.best_in_group = [np.full(len(groups), math.inf) for groups in self.groups]
        self.current = [self._start_index(i) for i in range(len(self.actions))]
        self.worst = -math.inf

    def _start_index(self, state: int) -> int:
        """The action nearest the start configuration's value (the preset's), else the middle."""
        name = self.space.names[state]
        values = self.actions[state]
        value = self.start.get(name)
        if value is None:
            return len(values) // 2
        if isinstance(self.space.dimensions[name], CategoricalDimension):
            return values.index(value) if value in values else 0
        dimension = self.space.dimensions[name]
        scale = math.log if getattr(dimension, "log", False) and value > 0 else (lambda x: x)
        return int(np.argmin([abs(scale(v) - scale(value)) for v in values]))

    def _choose(self, values: np.ndarray, candidates: np.ndarray) -> int:
        """Epsilon-greedy among ``candidates`` (indices into ``values``): the lowest Q, ties
        broken at random."""
        if self._rng.random() < self.options.epsilon:
            return int(candidates[self._rng.integers(len(candidates))])
        scores = values[candidates]
        lowest = candidates[np.flatnonzero(scores == scores.min())]
        return int(lowest[self._rng.integers(len(lowest))])

    def _propose(self, number: int) -> tuple[dict[str, Any], Any] | None:
        state = number % len(self.actions)
        group = self._choose(self.coarse[state], np.arange(len(self.groups[state])))
        action = self._choose(self.fine[state], self.groups[state][group])
        self.current[state] = action
        params = {name: self.actions[i][self.current[i]]
                  for i, name in enumerate(self.space.names)}
        return params, Step(state, group, action)

    def tell(self, proposal: Proposal, score: float | None) -> None:
        step: Step = proposal.token
        if score is None or not math.isfinite(score):
            # A failed or pruned trial is worth the worst reward seen (nothing before any).
            if not math.isfinite(self.worst):
                return
            score = self.worst
        self.worst = max(self.worst, score)
        options = self.options
        terminal = step.state == len(self.actions) - 1
        following = (step.state + 1) % len(self.actions)
        self.fine[step.state][step.action] = q_update(
            self.fine[step.state][step.action], score,
            None if terminal else self.fine[following], options.alpha, options.gamma,
            options.update)
        if options.levels == 2:
            best = min(self.best_in_group[step.state][step.group], score)
            self.best_in_group[step.state][step.group] = best
            self.coarse[step.state][step.group] = q_update(
                self.coarse[step.state][step.group], (score + best) / 2,
                None if terminal else self.coarse[following], options.alpha, options.gamma,
                options.update)
        else:
            self.best_in_group[step.state][0] = min(self.best_in_group[step.state][0], score)
