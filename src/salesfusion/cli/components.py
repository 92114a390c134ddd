"""``salesfusion components``: every registered component of every kind, with its summary."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from salesfusion.cli.common import app, guarded
from salesfusion.components import ALL
from salesfusion.errors import InputError


@app.command()
@guarded
def components(
    kind: Annotated[str | None, typer.Argument(
        help=f"One kind: {', '.join(ALL)} (all when omitted).")] = None,
) -> None:
    """List the registered models, encoders, fusions, backbones, heads, losses and target
    transforms (what a preset or config may name)."""
    if kind is not None and kind not in ALL:
        raise InputError(f"unknown component kind '{kind}'; the valid choices are "
                         f"{', '.join(ALL)}")
    console = Console(soft_wrap=True)
    for registry in [ALL[kind]] if kind else ALL.values():
        table = Table(title=f"{registry.kind}s", title_justify="left")
        table.add_column("name")
        table.add_column("what it is")
        for name, summary in registry.describe():
            table.add_row(name, summary)
        console.print(table)
