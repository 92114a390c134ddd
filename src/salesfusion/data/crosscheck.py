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
  event (or every review) names an unknown item or market. The ids (or ``image_root``) of the
  two tables do not agree, and every product would silently lose its content;
- a future-known exogenous column without values for a period a forecast will need (the
  ``horizon`` periods after the last sales period, in every market), in a command that
  forecasts past the data (``data validate``, ``predict``): the model would read made-up values.

Warnings:

- items without sales (products not launched yet: they only get cold-start forecasts);
- some sold items missing from the items table (forecast without text, image or attributes);
- some image paths missing, empty image cells, and (``data validate``, which decodes every
  image) images that cannot be decoded: those items are forecast without an image
  (``data.image_check``);
- a market currency without an exchange rate in some or all periods of the sales
  (``price_local`` is missing there; the bundled ECB table has no ISK rates for 2010-11, so
  Online Retail's Iceland is such a market);
- some events or reviews naming unknown items or markets (they affect no series);
- future-known gaps in commands that do not forecast past the data (backtest, train, encode).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from salesfusion.data.columns import shown
from salesfusion.data.covariate_tables import CovariateTable
from salesfusion.data.findings import Finding, Level, first_ids, listed
from salesfusion.data.frequency import periods_after
from salesfusion.data.image_check import ReadImage, image_findings
from salesfusion.data.panel import Panel
from salesfusion.data.validate import Tables
from salesfusion.errors import InputError


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


def crosscheck(tables: Tables, panel: Panel, horizon: int = 4, forecasting: bool = False,
               read_image: ReadImage | None = None) -> CrossCheck:
    """Check ``tables`` against each other and against the ``panel`` built from them.

    ``horizon``: periods after the data that a forecast needs future-known values for;
    ``forecasting``: whether the command forecasts past the data (missing values are then errors);
    ``read_image``: the encoders' image decoder, to count images that cannot be decoded (see
    ``data.image_check``; left out, only empty cells and missing files are counted).
    """
    images = (image_findings(tables.items, tables.spec.items.columns.get("image", "image"),
                             tables.spec.images_dir(), read_image)
              if tables.items is not None else [])
    # What loading the tables found (cancelled orders dropped) comes first, for every command.
    findings = [*tables.findings, *_items_vs_sales(tables, panel), *images, *_fx(tables, panel),
                *_future_known(panel, horizon, forecasting), *_events(tables, panel)]
    return CrossCheck(findings)


def _items_vs_sales(tables: Tables, panel: Panel) -> list[Finding]:
    if tables.items is None:
        return []
    catalogue = tables.items["item_id"].drop_nulls().unique(maintain_order=True)
    sold = panel.data["item_id"].unique(maintain_order=True)
    unsold = catalogue.filter(~catalogue.is_in(sold.implode()))
    unlisted = sold.filter(~sold.is_in(catalogue.implode()))
    found = []
    if unlisted.len() and unlisted.len() == sold.len():
        first = first_ids(unlisted)
        found.append(Finding("error", "sales_without_items", unlisted.len(), first,
                             f"none of the {sold.len()} sold item(s) is in the items table "
                             f"(first sold: {listed(first)}; first listed: "
                             f"{listed(first_ids(catalogue))}); the two tables' item ids do not "
                             f"match"))
        return found
    if unsold.len():
        first = first_ids(unsold)
        found.append(Finding("warning", "items_without_sales", unsold.len(), first,
                             f"{unsold.len()} item(s) of the items table have no sales "
                             f"(first: {listed(first)}); not launched yet, they get cold-start "
                             f"forecasts only"))
    if unlisted.len():
        first = first_ids(unlisted)
        found.append(Finding("warning", "sales_without_items", unlisted.len(), first,
                             f"{unlisted.len()} sold item(s) are not in the items table "
                             f"(first: {listed(first)}); they are forecast without text, image "
                             f"or attributes"))
    return found


def _fx(tables: Tables, panel: Panel) -> list[Finding]:
    spec = tables.spec
    if tables.fx is None or tables.markets is None or "fx_rate" not in panel.data.columns:
        return []
    where = spec.resolve(spec.fx.path)
    if spec.currency not in set(tables.fx["currency"].unique()):
        return [Finding("error", "fx_sales_currency", 1, first_ids([spec.currency]),
                        f"the sales currency {shown(spec.currency)} has no rates in the FX table "
                        f"{where}; no price can be converted")]
    currencies = tables.markets.select("market", "currency").unique("market", keep="first")
    cells = (panel.data.select("market", "timestamp", "fx_rate")
             .join(currencies, on="market", how="left"))
    found = []
    unknown = cells.filter(pl.col("currency").is_null())["market"].unique(maintain_order=True)
    if unknown.len():
        first = first_ids(unknown)
        found.append(Finding("error", "markets_without_currency", unknown.len(), first,
                             f"{unknown.len()} sold market(s) have no currency in the markets "
                             f"table (first: {listed(first)}); their prices cannot be "
                             f"converted"))
    per_period = (cells.drop_nulls("currency").group_by("currency", "timestamp")
                  .agg(pl.col("fx_rate").is_not_null().any().alias("covered"))
                  .sort("currency", "timestamp"))
    coverage = per_period.group_by("currency", maintain_order=True).agg(
        pl.col("covered").sum().alias("covered"), pl.len().alias("periods"))
    never = coverage.filter(pl.col("covered") == 0)["currency"]
    if never.len():
        first = first_ids(never)
        found.append(Finding("warning", "fx_currency_uncovered", never.len(), first,
                             f"{never.len()} market currenc(y/ies) have no exchange rate in any "
                             f"sales period (first: {listed(first)}) in {where}; price_local "
                             f"is missing in those markets"))
    gaps = per_period.filter(~pl.col("covered") & ~pl.col("currency").is_in(never.implode()))
    if gaps.height:
        first = first_ids(f"{c} {t:%Y-%m-%d}" for c, t in gaps.select("currency", "timestamp")
                       .iter_rows())
        found.append(Finding("warning", "fx_gaps", gaps.height, first,
                             f"{gaps.height} (currency, period) pair(s) of the sales have no "
                             f"exchange rate within {spec.fx.max_staleness_days} days (first: "
                             f"{listed(first)}); price_local is missing there"))
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
        values = _needed_keys(panel, table, others) if others else None
        needed = future.join(values, how="cross") if values is not None else future
        needed = needed.join(table.frame.with_columns(pl.col("timestamp").cast(
            pl.Datetime("us"))), on=list(table.keys), how="left")
        shown_keys = ["timestamp", *others]
        for column in columns:
            missing = needed.filter(pl.col(column).is_null())
            if missing.height == 0:
                continue
            first = first_ids(" ".join([f"{row[0]:%Y-%m-%d}", *map(str, row[1:])])
                           for row in missing.select(shown_keys).iter_rows())
            found.append(Finding(level, "future_known_missing", missing.height, first,
                                 f"future-known column '{column}' has no value for "
                                 f"{missing.height} of the {needed.height} "
                                 f"({', '.join(['period', *others])}) cell(s) a "
                                 f"{horizon}-period forecast needs (first: "
                                 f"{listed(first)})"))
    return found


def _needed_keys(panel: Panel, table: CovariateTable, others: list[str]) -> pl.DataFrame:
    """The key values (``others``: any of item, market, attribute) of the sold series, which a
    forecast reads ``table`` at. Taken from the series themselves, not key by key, so a table
    keyed by market and attribute needs only the pairs some series has."""
    series = panel.data.select("item_id", "market").unique(maintain_order=True)
    if table.attribute is not None:
        if panel.items is None or table.attribute not in panel.items.columns:
            return pl.DataFrame(schema={k: pl.Utf8 for k in others})  # no item has the attribute
        series = series.join(panel.items.select("item_id", table.attribute)
                             .unique("item_id", keep="first", maintain_order=True),
                             on="item_id", how="inner", maintain_order="left")
    return series.select(others).drop_nulls().unique(maintain_order=True)


def _events(tables: Tables, panel: Panel) -> list[Finding]:
    return [*_unknown_keys(tables.events, "event", tables, panel),
            *_unknown_keys(tables.reviews, "review", tables, panel)]


def _unknown_keys(frame: pl.DataFrame | None, row_noun: str, tables: Tables,
                  panel: Panel) -> list[Finding]:
    """Rows of ``frame`` (events, reviews) naming an item or market no table knows: a warning,
    an error when none of them matches (the ids are spelt differently)."""
    if frame is None:
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
        if role not in frame.columns:
            continue
        named = frame[role].drop_nulls()
        unknown = named.filter(~named.is_in(known.implode()))
        if unknown.len() == 0:
            continue
        first = first_ids(unknown.unique(maintain_order=True))
        level: Level = "error" if unknown.len() == named.len() else "warning"
        tail = (f"; no {row_noun} matches a known {noun}: the ids do not match"
                if level == "error" else "; they affect no series")
        found.append(Finding(level, f"{row_noun}s_unknown_{noun}s", unknown.len(), first,
                             f"{unknown.len()} {row_noun}(s) name an unknown {noun} (first: "
                             f"{listed(first)}){tail}"))
    return found

