"""The ``salesfusion`` command line: one module per group of commands, all on one Typer app."""

from salesfusion.cli import backtest, components, data, encode, models  # noqa: F401 (commands)
from salesfusion.cli.backtest import BASELINES, DEMO_MODELS
from salesfusion.cli.common import app

__all__ = ["BASELINES", "DEMO_MODELS", "app"]
