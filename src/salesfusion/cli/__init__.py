"""The ``salesfusion`` command line: one module per group of commands, all on one Typer app.

``main`` is the installed entry point: a bad option, a missing argument or an invalid value is
one ``error:`` line and exit code 2, as every other input error (click would print a usage box).
"""

import sys

import typer
from typer.exceptions import TyperException

from salesfusion.cli import (  # noqa: F401 (commands)
    backtest,
    components,
    data,
    encode,
    experiment,
    explain,
    models,
    serve,
    tune,
)
from salesfusion.cli.backtest import BASELINES, DEMO_MODELS
from salesfusion.cli.common import app

__all__ = ["BASELINES", "DEMO_MODELS", "app", "main"]


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except TyperException as exc:  # click's usage errors, as typer ships them
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        context = getattr(exc, "ctx", None)
        hint = f" (see {context.command_path} --help)" if context is not None else ""
        print(f"error: {' '.join(message.split())}{hint}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2) or 2)
    sys.exit(code if isinstance(code, int) else 0)
