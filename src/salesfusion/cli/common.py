"""What every command shares: the Typer apps, the error guard and panel loading.

Bad input ends with one line on stderr naming the file, column or value, exit code 2, and no
partial output (``cli.output`` stages every output and publishes it only once everything has
succeeded).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from salesfusion.data.crosscheck import crosscheck
from salesfusion.data.frequency import FREQUENCIES
from salesfusion.data.panel import Panel, build_panel
from salesfusion.data.selection import keep_active_series
from salesfusion.data.spec import load_spec
from salesfusion.data.splits import BacktestProtocol
from salesfusion.data.validate import load_tables
from salesfusion.datasets import Dataset, load_dataset
from salesfusion.errors import InputError

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Multimodal demand forecasting for cross-border e-commerce.")
data_app = typer.Typer(no_args_is_help=True, help="Check dataset specs and build panels.")
app.add_typer(data_app, name="data")
# soft_wrap: a log line stays one line whatever the terminal width (and when piped).
console = Console(stderr=True, soft_wrap=True)
# The database options of the commands that write forecasts (predict, backtest).
ToUrl = Annotated[str | None, typer.Option(
    "--to", help="postgresql://... or env:NAME (a variable holding the URL): upsert the "
                 "forecasts into this database.")]
ToTable = Annotated[str, typer.Option(
    "--to-table", help="[schema.]table --to writes (created when missing).")]
DEFAULT_TABLE = "salesfusion_forecasts"


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


def check_freq(freq: str) -> str:
    if freq.upper() not in FREQUENCIES:
        raise InputError(f"unknown frequency '{freq}'; use one of {', '.join(FREQUENCIES)}")
    return freq.upper()


def panel_from(dataset: str | Dataset | None, spec: Path | None, freq: str | None,
                protocol: BacktestProtocol | None, min_nonzero: int | None,
                lookback: int | None) -> Panel:
    """The panel of a bundled dataset (by name, or loaded) or of a spec. With ``min_nonzero``,
    only series active before ``protocol``'s test part; a bundled dataset's ``benchmark``
    supplies whichever of the protocol and the selection is not given."""
    if (dataset is None) == (spec is None):
        raise InputError("give exactly one of --dataset NAME or --spec SPEC")
    with console.status("Building the panel"):
        if dataset is not None:
            bundled = load_dataset(dataset) if isinstance(dataset, str) else dataset
            panel = bundled.panel(freq)
            if (benchmark := bundled.benchmark) is not None:
                protocol = protocol or BacktestProtocol.from_benchmark(benchmark)
                min_nonzero = benchmark.min_nonzero if min_nonzero is None else min_nonzero
                lookback = benchmark.lookback if lookback is None else lookback
        else:
            tables = load_tables(load_spec(spec))
            panel = build_panel(tables, freq)
            checked = crosscheck(tables, panel)
            for line in checked.summary():
                console.print(line, markup=False, highlight=False)
            checked.raise_for_errors()
        if min_nonzero:
            holdout = (protocol or BacktestProtocol()).test_length
            panel = keep_active_series(panel, holdout, lookback=lookback or len(panel.periods),
                                       min_nonzero=min_nonzero)
    console.print(f"Panel: {panel.n_series:,} series, {panel.data.height:,} rows, "
                  f"{len(panel.periods)} periods (freq {panel.freq})")
    return panel




# Where a command runs: `backtest`, `encode` and `train` share these options (`tune` has its own
# --jobs, the trials at once).
Backend = Annotated[str, typer.Option(
    help="local, or ray: run on a Ray cluster (--ray-address, else RAY_ADDRESS, else a local "
         "one of --workers CPUs).")]
Workers = Annotated[int | None, typer.Option(
    min=1, help="Ray workers, one CPU each (--backend ray; default 2).")]
RayAddress = Annotated[str | None, typer.Option(
    help="Ray cluster to join (--backend ray; else RAY_ADDRESS, else a local cluster).")]


def check_backend(backend: str, workers: int | None, address: str | None) -> None:
    """Refuse ``--backend`` values other than local/ray, and Ray options without ray."""
    if backend not in ("local", "ray"):
        raise InputError(f"--backend {backend!r}: use local or ray")
    if backend == "local" and (workers is not None or address is not None):
        raise InputError("--workers and --ray-address apply to --backend ray")


def backend_session(backend: str, workers: int | None,
                    address: str | None) -> AbstractContextManager[None]:
    """The Ray session a ``--backend ray`` command runs in (nothing for local), after checking
    the options and that Ray is installed."""
    check_backend(backend, workers, address)
    if backend == "local":
        return nullcontext()
    from salesfusion.distributed import ray_session, require_ray

    require_ray("ray")
    return ray_session(address, workers or 2)
