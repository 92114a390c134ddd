"""The launches ``salesfusion predict --launch`` forecasts: which items (named, or every item of
the items table without sales), in which markets, from which launch date."""

from __future__ import annotations

from typing import Any

from salesfusion.errors import InputError


def _launch_models() -> list[str]:
    from salesfusion.models.registry import model_class, registered_models

    return [n for n in registered_models() if model_class(n).supports_launch]


def _names(option: str, value: str) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    if not names:
        raise InputError(f"{option}: give one or more names separated by commas")
    return names


def _launches(panel: Any, launch_date: str | None, items: str | None,
              markets: str | None) -> Any:
    """``item_id, market, launch`` of the launches ``predict --launch`` asks for."""
    from datetime import datetime

    import polars as pl

    if panel.items is None:
        raise InputError("--launch needs an items table in the dataset")
    catalogue = panel.items.unique("item_id", keep="first", maintain_order=True)
    if items is not None:
        wanted = _names("--items", items)
        unknown = [i for i in wanted if i not in set(catalogue["item_id"].to_list())]
        if unknown:
            raise InputError(f"--items: item {unknown[0]!r} is not in the items table "
                             f"({catalogue.height:,} items, e.g. "
                             f"{catalogue['item_id'].head(3).to_list()})")
    else:
        wanted = catalogue.join(panel.data.select("item_id").unique(), on="item_id",
                                how="anti")["item_id"].to_list()
        if not wanted:
            raise InputError("every item of the items table has sales: name the items to "
                             "launch with --items")
    known = panel.data["market"].unique(maintain_order=True).to_list()
    chosen = known if markets is None else _names("--markets", markets)
    unknown = [m for m in chosen if m not in known]
    if unknown:
        raise InputError(f"--markets: market {unknown[0]!r} is not in the panel (markets: "
                         f"{', '.join(known)})")
    frame = pl.DataFrame({"item_id": wanted})
    if launch_date is not None:
        try:
            when = datetime.strptime(launch_date, "%Y-%m-%d")
        except ValueError:
            raise InputError(f"--launch-date: {launch_date!r} is not a date YYYY-MM-DD") from None
        frame = frame.with_columns(pl.lit(when).alias("launch"))
    else:
        if "launch_date" not in catalogue.columns:
            raise InputError("no launch date: the items table maps no launch_date; give "
                             "--launch-date YYYY-MM-DD")
        frame = frame.join(catalogue.select("item_id", pl.col("launch_date").alias("launch")),
                           on="item_id", how="left", maintain_order="left")
        undated = frame.filter(pl.col("launch").is_null())
        if undated.height:
            raise InputError(f"item {undated['item_id'][0]!r} has no launch_date in the items "
                             f"table ({undated.height:,} items without one); give "
                             f"--launch-date YYYY-MM-DD")
    return frame.join(pl.DataFrame({"market": chosen}), how="cross")
