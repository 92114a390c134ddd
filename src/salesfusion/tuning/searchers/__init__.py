"""The built-in searchers, registered in ``components.SEARCHERS`` when this package loads."""

from salesfusion.tuning.searchers import basic, msrl, optuna_tpe  # noqa: F401 (registration)
from salesfusion.tuning.searchers.base import Proposal, Searcher, build_searcher

__all__ = ["Proposal", "Searcher", "build_searcher"]
