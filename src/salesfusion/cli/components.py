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
    """List the registered models, encoders, fusions, backbones, heads, losses, target
    transforms, searchers and content modalities (what a preset or config may name)."""
    if kind is not None and kind not in ALL:
        raise InputError(f"unknown component kind '{kind}'; the valid choices are "
                         f"{', '.join(ALL)}")
    console = Console(soft_wrap=True)
    for registry in [ALL[kind]] if kind else ALL.values():
        plural = (registry.kind[:-1] + "ies" if registry.kind.endswith("y")
                  else registry.kind + ("es" if registry.kind.endswith("s") else "s"))
        table = Table(title=plural, title_justify="left")
        table.add_column("name")
        # What a model's y_pred is, and what minimising a loss forecasts.
        point = registry.kind in ("model", "loss")
        if point:
            table.add_column("point")
        table.add_column("what it is")
        for name, summary in registry.describe():
            table.add_row(name, *([_point(registry.kind, name)] if point else []), summary)
        console.print(table)


def _point(kind: str, name: str) -> str:
    """A model's default point forecast ("mean, or median" where its configuration offers
    both), or the point forecast a loss gives."""
    if kind == "loss":
        return ALL["loss"].get(name).gives
    from salesfusion.models.registry import model_class

    model = model_class(name)
    default = getattr(model.default_config(), "point", None) or model.point_forecast
    return f"{default}, or median" if "point" in model.Config.model_fields else default
