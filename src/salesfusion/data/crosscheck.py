"""Checks across a spec's tables: the one summary every command that loads a spec prints.

Each check gives ``Finding``s (level, count, first ids, message). The rule for the level: an
**error** is something that makes the run wrong, so the command stops (``InputError``, exit 2,
nothing written); a **warning** is worth knowing but the run is still right, so it is counted and
the command goes on.

Errors:

- a sold market whose currency is unknown (no markets-table row, or no currency), or a sales
  currency missing from the FX table, when the spec declares an FX table: the spec itself is
  inconsistent;
- a join that matches nothing: no sold item is in the items table, no image path exists, every
  event names an unknown item or market. The ids (or ``image_root``) of the two tables do not
  agree, and every product would silently lose its content;
- a future-known exogenous column without values for a period a forecast will need (the
  ``horizon`` periods after the last sales period, in every market), in a command that
  forecasts past the data (``data validate``, ``predict``): the model would read made-up values.

Warnings:

- items without sales (products not launched yet: they only get cold-start forecasts);
- some sold items missing from the items table (forecast without text, image or attributes);
- some image paths missing (those images are masked);
- a market currency without an exchange rate in some or all periods of the sales
  (``price_local`` is missing there; the bundled ECB table has no ISK rates for 2010-11, so
  Online Retail's Iceland is such a market);
- some events naming unknown items or markets (they affect no series);
- future-known gaps in commands that do not forecast past the data (backtest, train, encode).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from salesfusion.data.frequency import periods_after
from salesfusion.data.panel import Panel
from salesfusion.data.validate import Tables
from salesfusion.errors import InputError

Level = Literal["error", "warning"]
SHOWN = 5


@dataclass(frozen=True)
class Finding:
    level: Level
    check: str  # a stable name, e.g. "items_without_sales"
    count: int
    first: tuple[str, ...]
    message: str  # one line, with the count and the first ids

    def line(self) -> str:
        return f"{self.level}: {self.message}"


@dataclass
class CrossCheck:
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    def summary(self) -> list[str]:
        """The lines to print: a count line, then one line per finding, errors first."""
        if not self.findings:
            return ["Cross-table check: no problems found"]
        head = (f"Cross-table check: {len(self.errors)} error(s), "
                f"{len(self.warnings)} warning(s)")
        return [head, *(f"  {f.line()}" for f in [*self.errors, *self.warnings])]

    def raise_for_errors(self) -> None:
        if self.errors:
            more = f" (and {len(self.errors) - 1} more, listed above)" if len(self.errors) > 1 \
                else ""
            raise InputError(f"cross-table check failed: {self.errors[0].message}{more}")


def crosscheck(tables: Tables, panel: Panel, horizon: int = 4,
               forecasting: bool = False) -> CrossCheck:
    """Check ``tables`` against each other and against the ``panel`` built from them.

    ``horizon``: periods after the data that a forecast needs future-known values for;
    ``forecasting``: whether the command forecasts past the data (missing values are then errors).
    """
    findings = [*_items_vs_sales(tables, panel), *_images(tables), *_fx(tables, panel),
                *_future_known(panel, horizon, forecasting), *_events(tables, panel)]
    return CrossCheck(findings)


def _first(values: Iterable[object]) -> tuple[str, ...]:
    return tuple(str(v) for v in list(values)[:SHOWN])


def _shown(first: tuple[str, ...]) -> str:
    return ", ".join(first)


def _items_vs_sales(tables: Tables, panel: Panel) -> list[Finding]:
    if tables.items is None:
        return []
    catalogue = tables.items["item_id"].drop_nulls().unique(maintain_order=True)
    sold = panel.data["item_id"].unique(maintain_order=True)
    unsold = catalogue.filter(~catalogue.is_in(sold.implode()))
    unlisted = sold.filter(~sold.is_in(catalogue.implode()))
    found = []
    if unlisted.len() and unlisted.len() == sold.len():
        first = _first(unlisted)
        found.append(Finding("error", "sales_without_items", unlisted.len(), first,
                             f"none of the {sold.len()} sold item(s) is in the items table "
                             f"(first sold: {_shown(first)}; first listed: "
                             f"{_shown(_first(catalogue))}); the two tables' item ids do not "
                             f"match"))
        return found
    if unsold.len():
        first = _first(unsold)
        found.append(Finding("warning", "items_without_sales", unsold.len(), first,
                             f"{unsold.len()} item(s) of the items table have no sales "
                             f"(first: {_shown(first)}); not launched yet, they get cold-start "
                             f"forecasts only"))
    if unlisted.len():
        first = _first(unlisted)
        found.append(Finding("warning", "sales_without_items", unlisted.len(), first,
                             f"{unlisted.len()} sold item(s) are not in the items table "
                             f"(first: {_shown(first)}); they are forecast without text, image "
                             f"or attributes"))
    return found


def _images(tables: Tables) -> list[Finding]:
    if tables.items is None or "image" not in tables.items.columns:
        return []
    root = tables.spec.images_dir().resolve()
    paths = tables.items["image"].drop_nulls().to_list()
    missing = [p for p in paths if not _inside_and_present(root, p)]
    if not missing:
        return []
    first = _first(missing)
    level: Level = "error" if len(missing) == len(paths) else "warning"
    return [Finding(level, "missing_images", len(missing), first,
                    f"{len(missing)} of {len(paths)} image path(s) do not exist under the image "
                    f"root {root} (first: {_shown(first)})"
                    + ("; check 'image_root' in the spec" if level == "error"
                       else "; those images are masked"))]


def _inside_and_present(root: Path, reference: str) -> bool:
    path = (root / reference).resolve()
    return path.is_relative_to(root) and path.is_file()


def _fx(tables: Tables, panel: Panel) -> list[Finding]:
    spec = tables.spec
    if tables.fx is None or tables.markets is None or "fx_rate" not in panel.data.columns:
        return []
    where = spec.resolve(spec.fx.path)
    if spec.currency not in set(tables.fx["currency"].unique()):
        return [Finding("error", "fx_sales_currency", 1, (str(spec.currency),),
                        f"the sales currency {spec.currency} has no rates in the FX table "
                        f"{where}; no price can be converted")]
    currencies = tables.markets.select("market", "currency").unique("market", keep="first")
    cells = (panel.data.select("market", "timestamp", "fx_rate")
             .join(currencies, on="market", how="left"))
    found = []
    unknown = cells.filter(pl.col("currency").is_null())["market"].unique(maintain_order=True)
    if unknown.len():
        first = _first(unknown)
        found.append(Finding("error", "markets_without_currency", unknown.len(), first,
                             f"{unknown.len()} sold market(s) have no currency in the markets "
                             f"table (first: {_shown(first)}); their prices cannot be "
                             f"converted"))
    per_period = (cells.drop_nulls("currency").group_by("currency", "timestamp")
                  .agg(pl.col("fx_rate").is_not_null().any().alias("covered"))
                  .sort("currency", "timestamp"))
    coverage = per_period.group_by("currency", maintain_order=True).agg(
        pl.col("covered").sum().alias("covered"), pl.len().alias("periods"))
    never = coverage.filter(pl.col("covered") == 0)["currency"]
    if never.len():
        first = _first(never)
        found.append(Finding("warning", "fx_currency_uncovered", never.len(), first,
                             f"{never.len()} market currenc(y/ies) have no exchange rate in any "
                             f"sales period (first: {_shown(first)}) in {where}; price_local "
                             f"is missing in those markets"))
    gaps = per_period.filter(~pl.col("covered") & ~pl.col("currency").is_in(never.implode()))
    if gaps.height:
        first = _first(f"{c} {t:%Y-%m-%d}" for c, t in gaps.select("currency", "timestamp")
                       .iter_rows())
        found.append(Finding("warning", "fx_gaps", gaps.height, first,
                             f"{gaps.height} (currency, period) pair(s) of the sales have no "
                             f"exchange rate within {spec.fx.max_staleness_days} days (first: "
                             f"{_shown(first)}); price_local is missing there"))
    return found


def _future_known(panel: Panel, horizon: int, forecasting: bool) -> list[Finding]:
    """Future-known exogenous channels without values for the periods a forecast needs. The
    sales table's own covariates (prices, promotions) are left out: without a plan
    (``predict --plan``) their last values carry forward, by design."""
    if not panel.future_known or panel.data.height == 0:
        return []
    future = pl.DataFrame({"timestamp": periods_after(panel.data["timestamp"].max(), panel.freq,
                                                      horizon)}).cast(pl.Datetime("us"))
    level: Level = "error" if forecasting else "warning"
    found = []
    for table in panel.covariate_tables:
        columns = [c for c in table.channels if c in panel.future_known]
        if table.source == "sales" or not columns:
            continue
        others = [k for k in table.keys if k != "timestamp"]
        if table.attribute is not None and panel.items is not None:
            values = panel.items.join(panel.data.select("item_id").unique(), on="item_id",
                                      how="semi").select(table.attribute).drop_nulls().unique()
        else:
            values = panel.data.select(others).unique(maintain_order=True) if others else None
        needed = future.join(values, how="cross") if values is not None else future
        needed = needed.join(table.frame.with_columns(pl.col("timestamp").cast(
            pl.Datetime("us"))), on=list(table.keys), how="left")
        shown_keys = ["timestamp", *others]
        for column in columns:
            missing = needed.filter(pl.col(column).is_null())
            if missing.height == 0:
                continue
            first = _first(" ".join([f"{row[0]:%Y-%m-%d}", *map(str, row[1:])])
                           for row in missing.select(shown_keys).iter_rows())
            found.append(Finding(level, "future_known_missing", missing.height, first,
                                 f"future-known column '{column}' has no value for "
                                 f"{missing.height} of the {needed.height} "
                                 f"({', '.join(['period', *others])}) cell(s) a "
                                 f"{horizon}-period forecast needs (first: "
                                 f"{_shown(first)})"))
    return found


def _events(tables: Tables, panel: Panel) -> list[Finding]:
    events = tables.events
    if events is None:
        return []
    known_items = panel.data["item_id"].unique()
    if tables.items is not None:
        known_items = pl.concat([known_items, tables.items["item_id"]]).unique()
    known_markets = panel.data["market"].unique()
    if tables.markets is not None:
        known_markets = pl.concat([known_markets, tables.markets["market"]]).unique()
    found = []
    for role, known, noun in (("item_id", known_items, "item"),
                              ("market", known_markets, "market")):
        if role not in events.columns:
            continue
        named = events[role].drop_nulls()
        unknown = named.filter(~named.is_in(known.implode()))
        if unknown.len() == 0:
            continue
        first = _first(unknown.unique(maintain_order=True))
        level: Level = "error" if unknown.len() == named.len() else "warning"
        tail = (f"; no event matches a known {noun}: the ids do not match" if level == "error"
                else "; they affect no series")
        found.append(Finding(level, f"events_unknown_{noun}s", unknown.len(), first,
                             f"{unknown.len()} event(s) name an unknown {noun} (first: "
                             f"{_shown(first)}){tail}"))
    return found

