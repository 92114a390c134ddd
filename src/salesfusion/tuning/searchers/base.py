"""The searcher interface: a searcher proposes configurations (``ask``), hears their validation
scores (``tell``, lower is better) and may stop a hopeless trial early (``report``).

A searcher sees parameter values and scores only, never data: the runner scores each proposal
on the validation part (``tuning.objective``). Searchers are seeded and deterministic: the same
seed and the same scores give the same proposals, which is how a killed search is resumed
(``tuning.runner`` replays the logged scores through a fresh searcher) and why a repeated search
is reproducible. Several proposals may be outstanding at once (the Ray backend runs trials in
parallel); a tell names the proposal it answers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from salesfusion.components import SEARCHERS
from salesfusion.errors import InputError
from salesfusion.models.search_space import SearchSpace


@dataclass
class Proposal:
    """One configuration to try: ``number`` counts the searcher's proposals from 0."""

    number: int
    params: dict[str, Any]
    token: Any = field(default=None, repr=False)  # the searcher's own bookkeeping


class SearcherOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Searcher(ABC):
    """Base of every searcher; subclasses set ``name`` and their ``Options``."""

    name: ClassVar[str]
    Options: ClassVar[type[SearcherOptions]] = SearcherOptions
    # Whether a fresh searcher fed the logged scores in order reproduces its state (a resume
    # replays the log); a searcher with its own persistent store (Optuna's study) does not need it.
    replays: ClassVar[bool] = True

    def __init__(self, space: SearchSpace, seed: int = 0,
                 options: SearcherOptions | None = None, start: dict[str, Any] | None = None,
                 ) -> None:
        self.space = space
        self.seed = seed
        self.options = options if options is not None else self.Options()
        # The configuration the search starts from (the preset's values), for searchers that
        # move from a current configuration.
        self.start = dict(start or {})
        self._asked = 0
        # The search this searcher works for (its folder's id): marks its trials in a shared
        # store, so that a resumed search settles only its own.
        self.owner: str | None = None

    def ask(self) -> Proposal | None:
        """The next configuration to try, or None when the searcher has nothing left."""
        params = self._propose(self._asked)
        if params is None:
            return None
        proposal = Proposal(self._asked, params[0], params[1])
        self._asked += 1
        return proposal

    @abstractmethod
    def _propose(self, number: int) -> tuple[dict[str, Any], Any] | None:
        """(params, token) of proposal ``number``, or None when exhausted."""

    def tell(self, proposal: Proposal, score: float | None) -> None:  # noqa: B027 (optional)
        """The validation score of ``proposal``; None when it failed or was pruned."""

    def report(self, proposal: Proposal, epoch: int, value: float) -> bool:
        """An intermediate validation loss of a running trial; True: stop (prune) it."""
        return False

    def reference(self, proposal: Proposal) -> Any:
        """What identifies the proposal in the searcher's own store (logged when a trial starts,
        so that a resumed search can settle the trials a killed process left open)."""
        return None

    def recover(self, logged: dict[Any, tuple[str, float | None]]) -> None:  # noqa: B027
        """For a searcher with its own store (``replays`` False), on resume: settle this
        search's trials that a killed process left open in the store. ``logged`` maps the
        reference of each trial the log saw end to its (status, score); the others never
        finished."""

    def close(self) -> None:  # noqa: B027 (optional)
        """Release what the searcher holds (a study's storage)."""


def build_searcher(name: str, space: SearchSpace, seed: int, options: dict[str, Any],
                   start: dict[str, Any], *, source: str = "--searcher-option") -> Searcher:
    """A registered searcher with its options validated (one ``InputError`` naming the bad
    option)."""
    cls = SEARCHERS.get(name)
    try:
        parsed = cls.Options.model_validate(options)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(all)"
        message = str(first["msg"]).removeprefix("Value error, ")
        valid = ", ".join(sorted(cls.Options.model_fields)) or "none"
        raise InputError(f"{source}: searcher '{name}', option '{key}': {message} (its options: "
                         f"{valid})") from None
    return cls(space, seed, parsed, start)


def key_of(params: dict[str, Any]) -> str:
    """A configuration's identity in caches and logs (stable across runs and processes)."""
    import json

    return json.dumps(params, sort_keys=True, default=str)
