"""What every command shares: the Typer apps, the error guard, staged output and panel loading.

Bad input ends with one line on stderr naming the file, column or value, exit code 2, and no
partial output: results are written to a staging folder that replaces the output only once
everything has succeeded.
"""

from __future__ import annotations

import functools
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from salesfusion.data.panel import Panel, build_panel
from salesfusion.data.spec import FREQUENCIES, load_spec
from salesfusion.data.validate import load_tables
from salesfusion.datasets import load_dataset
from salesfusion.datasets.online_retail import OR_WEEKLY_LOOKBACK, OR_WEEKLY_MIN_NONZERO
from salesfusion.errors import InputError
from salesfusion.evaluation.protocol import BacktestProtocol, keep_active_series

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Multimodal demand forecasting for cross-border e-commerce.")
data_app = typer.Typer(no_args_is_help=True, help="Check dataset specs and build panels.")
app.add_typer(data_app, name="data")
console = Console(stderr=True)
DEFAULT_CACHE = Path.home() / ".cache" / "salesfusion" / "embeddings"


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an ``InputError`` into one line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            message = " ".join(str(exc).split())
            print(f"error: {message}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper


@contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` that becomes ``out`` only if the block succeeds."""
    out = out.resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: output path exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    out.mkdir(exist_ok=True)
    for item in staging.iterdir():
        target = out / item.name
        if target.is_dir():
            shutil.rmtree(target)
        item.replace(target)
    staging.rmdir()


def check_freq(freq: str) -> str:
    if freq.upper() not in FREQUENCIES:
        raise InputError(f"unknown frequency '{freq}'; use one of {', '.join(FREQUENCIES)}")
    return freq.upper()


def panel_from(dataset: str | None, spec: Path | None, freq: str | None,
                protocol: BacktestProtocol, min_nonzero: int | None,
                lookback: int | None) -> Panel:
    if (dataset is None) == (spec is None):
        raise InputError("give exactly one of --dataset NAME or --spec SPEC")
    with console.status("Building the panel"):
        if dataset is not None:
            panel = load_dataset(dataset).panel(freq)
            if dataset == "online_retail":  # the standard OR-weekly selection
                min_nonzero = OR_WEEKLY_MIN_NONZERO if min_nonzero is None else min_nonzero
                lookback = OR_WEEKLY_LOOKBACK if lookback is None else lookback
        else:
            panel = build_panel(load_tables(load_spec(spec)), freq)
        if min_nonzero:
            panel = keep_active_series(panel, protocol, lookback=lookback or len(panel.periods),
                                       min_nonzero=min_nonzero)
    console.print(f"Panel: {panel.n_series:,} series, {panel.data.height:,} rows, "
                  f"{len(panel.periods)} periods (freq {panel.freq})")
    return panel


