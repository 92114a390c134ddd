"""Load the tables a spec names, map columns onto roles, and check them.

Ids are normalised here, once for every table (``cleaning.normalize_item_ids``: item ids by
``normalize_id``, market names stripped), because this is the one place every table of every spec
passes through before anything compares or joins ids: key uniqueness, the panel, the encoders and
the cross-table checks all see the same ids, so a shop with lower-case SKUs in both its sales and
its items tables keeps every product's text, image and attributes.

Every failure is an ``InputError`` whose one-line message names the file, the column and the
first offending rows (1-based data rows, header not counted), so a user can fix the input. How
each column is read and what is refused: ``data.io`` (files, CSV lines), ``data.columns``
(numbers: no inf, NaN or overflowing values; text) and ``data.dates`` (dates: ISO 8601 or a
declared format, never a guessed day/month order).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from salesfusion.data.columns import SHOWN_ROWS, cast_numeric, cast_text, first_rows
from salesfusion.data.dates import cast_time
from salesfusion.data.findings import Finding
from salesfusion.data.fx import long_rates
from salesfusion.data.io import read_raw
from salesfusion.data.order_fields import (
    ORDER_LEVEL_ROLES,
    blank,
    fill_order_fields,
    order_export_rows,
)
from salesfusion.data.promotions import promotion_ranges
from salesfusion.data.reviews import check_reviews
from salesfusion.data.spec import REQUIRED_ROLES, DatasetSpec, FxSpec, TableSpec
from salesfusion.errors import InputError

NUMERIC_ROLES = {"quantity", "price", "revenue", "promo", "rating", "audience", "duration"}
TIME_ROLES = {"timestamp", "launch_date", "end_date", "cancelled_at", "start", "end"}
TEXT_ROLES = {"item_id", "market", "title", "description", "text", "image", "invoice",
              "currency", "maturity", "region", "language", "channel", "kol_id", "attribute"}
# Tables whose rows belong to the spec's ``single_market`` when they map no market column.
MARKET_FILLED = ("sales", "events")
# Optional roles that key a table's rows: a blank one places a row nowhere. (An event's item id
# may be blank: the event is market-wide.)
BLANK_KEYS: dict[str, tuple[str, ...]] = {
    "sales": ("market", "currency"),
    "events": ("market",),
    "reviews": ("market",),
    "exogenous": ("market", "item_id", "attribute"),
    "promotions": ("market", "item_id", "attribute"),
}
KEY_ROLES: dict[str, tuple[str, ...]] = {
    "items": ("item_id",),
    "markets": ("market",),
}


@dataclass
class Tables:
    """The spec's tables with role columns renamed to their role names."""

    spec: DatasetSpec
    sales: pl.DataFrame
    items: pl.DataFrame | None = None
    markets: pl.DataFrame | None = None
    # One per spec.exogenous, then one per spec.promotions: its date ranges with the keys and
    # span they cover, which ``data.covariate_tables`` expands to the panel's periods.
    exogenous: list[pl.DataFrame] = field(default_factory=list)
    reviews: pl.DataFrame | None = None
    events: pl.DataFrame | None = None
    fx: pl.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    promotions: list[pl.DataFrame] = field(default_factory=list)  # as loaded, one per calendar
    # What loading found and did that is worth a line (cancelled orders dropped).
    findings: list[Finding] = field(default_factory=list)

    def named_frames(self) -> list[tuple[str, TableSpec, pl.DataFrame]]:
        """Every loaded table with its name and spec, as ``DatasetSpec.named_tables`` names
        them (``exogenous[i]`` for the exogenous ones)."""
        listed = {f"{kind}[{i}]": frame for kind in ("exogenous", "promotions")
                  for i, frame in enumerate(getattr(self, kind))}
        return [(name, table, listed[name] if name in listed else getattr(self, name))
                for name, table in self.spec.named_tables()]


def _check_required_values(frame: pl.DataFrame, roles: tuple[str, ...], table: TableSpec,
                           where: str, name: str) -> None:
    for role in roles:
        missing = frame[role].is_null()
        if missing.any():
            raise InputError(f"{where}: column '{table.columns[role]}' (role {role}) has empty "
                             f"values: {first_rows(missing, frame[role])}"
                             f"{_fill_hint(name, role, table)}")


def _fill_hint(name: str, role: str, table: TableSpec) -> str:
    """How to fill a blank order-level sales field, for the message refusing it."""
    if name != "sales" or role not in ORDER_LEVEL_ROLES:
        return ""
    if role in table.fill_order_fields:
        return ("; it is blank even after filling within each invoice (sales.fill_order_fields):"
                " those rows have no invoice or come before their order's first value")
    return (f"; if the export gives it on an order's first line only, set "
            f"'sales.fill_order_fields: [{role}]' to fill it within each invoice (the column "
            f"mapped to role invoice)")


def _any_duplicated(frame: pl.DataFrame, keys: tuple[str, ...]) -> bool:
    """Whether two rows share ``keys``. A marketplace's period-grain sales table has tens of
    millions of rows: hashing its text keys row by row took half the memory of the panel build,
    so text keys are coded (categoricals) and the coded rows sorted, and neighbours compared."""
    key_frame = frame.select(keys)
    if any(key_frame.null_count().row(0)):  # the sort below would not pair missing keys
        return bool(key_frame.is_duplicated().any())
    coded = key_frame.select(pl.col(k).cast(pl.Categorical).to_physical()
                             if key_frame.schema[k] == pl.String else pl.col(k) for k in keys)
    ordered = coded.sort(keys)
    return bool(ordered.select(pl.all_horizontal(pl.col(k) == pl.col(k).shift() for k in keys)
                               .any())
                .item())


def _check_unique(frame: pl.DataFrame, keys: tuple[str, ...], table: TableSpec,
                  where: str) -> None:
    if not _any_duplicated(frame, keys):
        return
    duplicated = frame.select(keys).is_duplicated()
    if duplicated.any():
        idx = duplicated.arg_true().head(SHOWN_ROWS).to_list()
        shown = ", ".join(f"row {i + 1} {tuple(frame.row(i, named=True)[k] for k in keys)}"
                          for i in idx)
        columns = ", ".join(f"'{table.columns.get(k, k)}'" for k in keys)
        raise InputError(f"{where}: duplicated key ({columns}): {int(duplicated.sum())} rows "
                         f"share a key, first: {shown}")


def normalize_id(value: str) -> str:
    """The one id rule (``cleaning.normalize_item_ids``), for a table's ids and for one posted
    id alike: surrounding whitespace stripped and letters upper-cased, but only where the case
    pair is one-to-one (the character's upper case is one character whose lower case is it
    again). Full Unicode upper-casing is lossy: ``straße`` becomes ``STRASSE``, dotless ``ı``
    and ``i`` both become ``I``, final ``ς`` and ``σ`` both ``Σ``, so two different ids would
    silently become one series. With this rule two raw ids meet only when they differ in
    reversible letter case, on any script; every other character is kept as it is."""
    stripped = value.strip()
    if stripped.isascii():
        return stripped.upper()
    return "".join(_folded(ch) for ch in stripped)


def _folded(ch: str) -> str:
    upper = ch.upper()
    return upper if len(upper) == 1 and upper.lower() == ch else ch


def normalize_ids(frame: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    """Apply the spec's id rule to one loaded table (any table with ``item_id``/``market``)."""
    return with_normal_ids(frame) if spec.cleaning.normalize_item_ids else frame


def with_normal_ids(frame: pl.DataFrame) -> pl.DataFrame:
    """Item ids by ``normalize_id``, market names stripped (where the columns exist)."""
    rules = []
    if "item_id" in frame.columns:
        # Applied per distinct id, not per row: a marketplace log has tens of millions of rows
        # but far fewer ids.
        ids = frame["item_id"].drop_nulls().unique()
        changed = {raw: normal for raw in ids if (normal := normalize_id(raw)) != raw}
        rules.append(pl.col("item_id").replace(list(changed), list(changed.values()))
                     if changed else pl.col("item_id"))
    if "market" in frame.columns:
        rules.append(pl.col("market").str.strip_chars())
    return frame.with_columns(rules)


def load_table(spec: DatasetSpec, name: str, required: tuple[str, ...],
               table: TableSpec | None = None) -> pl.DataFrame:
    """Read one table of the spec (``table``, else the spec's field ``name``), rename role
    columns to role names and cast their types."""
    table = table if table is not None else getattr(spec, name)
    path = spec.resolve(table.path)
    if table.is_sql:  # path is the label naming the database table
        from salesfusion.data.sql import read_spec_table

        where, raw = str(path), read_spec_table(table, name)
    else:
        where = str(path) if not table.table else f"{path}:{table.table}"
        raw = read_raw(path, table.resolved_format(), table.table, columns=table.source_columns())
    if raw.height == 0:
        raise InputError(f"{where}: table '{name}' is empty (no data rows)")
    # A covariate list may name a role (the sales table's price or promo) to set its kind.
    covariates = [c for c in [*table.static_categorical, *table.static_numeric, *table.past_only,
                              *table.future_known] if c not in table.columns]
    wanted = {**table.columns, **{c: c for c in covariates}}
    missing = [f"'{col}' (role {role})" if role != col else f"'{col}'"
               for role, col in wanted.items() if col not in raw.columns]
    if missing:
        raise InputError(f"{where}: column {', '.join(missing)} not found; the table has "
                         f"columns {raw.columns}")
    frame = raw.select([pl.col(col).alias(role) for role, col in table.columns.items()]
                       + [pl.col(c) for c in dict.fromkeys(covariates)
                          if c not in table.columns])
    for role, column in table.columns.items():
        if role in NUMERIC_ROLES:
            frame = cast_numeric(frame, role, column, where)
        elif role in TIME_ROLES:
            frame = cast_time(frame, role, column, where, table.timestamp_format,
                              key=f"{name}.timestamp_format")
        else:
            frame = cast_text(frame, role, column, where)
    for column in dict.fromkeys([*table.static_numeric, *table.past_only, *table.future_known]):
        if column not in table.columns and column in frame.columns:
            frame = cast_numeric(frame, column, column, where, nan_is_missing=True)
    for column in table.static_categorical:
        frame = cast_text(frame, column, column, where)
    if table.fill_order_fields:
        frame = fill_order_fields(frame, table.fill_order_fields)
    _check_required_values(frame, required, table, where, name)
    return frame


def _check_blank_keys(frame: pl.DataFrame, name: str, table: TableSpec, where: str) -> None:
    """A key cell left blank (a sale, event or exogenous value in no market, for no item or
    attribute) would attach its row to nothing, silently: refused, with the count."""
    for role in BLANK_KEYS.get(name.split("[")[0], ()):
        if role not in table.columns:
            continue
        missing = frame.select(blank(role, frame.schema[role])).to_series()
        if not missing.any():
            continue
        rows = ", ".join(str(i + 1) for i in missing.arg_true().head(SHOWN_ROWS).to_list())
        raise InputError(f"{where}: column '{table.columns[role]}' (role {role}) is blank in "
                         f"{int(missing.sum())} of {frame.height} row(s) (first: data row(s) "
                         f"{rows}){_fill_hint(name, role, table)}")


def load_fx(spec: DatasetSpec, fx: FxSpec) -> pl.DataFrame:
    """A long FX table: date, currency, rate (units of currency per 1 base currency)."""
    path = spec.resolve(fx.path)
    fmt = fx.format or TableSpec(path=fx.path, columns={}).resolved_format()
    raw = read_raw(path, fmt, fx.table)
    if raw.height == 0:
        raise InputError(f"{path}: exchange-rate table is empty")
    if fx.date_column not in raw.columns:
        raise InputError(f"{path}: date column '{fx.date_column}' not found; the table has "
                         f"columns {raw.columns}")
    frame = cast_time(raw, fx.date_column, fx.date_column, str(path), fx.date_format,
                      key="fx.date_format").rename({fx.date_column: "timestamp"})
    long = long_rates(frame, str(path))
    dates = frame["timestamp"].unique()
    derived = [pl.DataFrame({"timestamp": dates, "currency": fx.base_currency, "rate": 1.0})]
    for currency, peg in fx.pegs.items():
        anchor = long.filter(pl.col("currency") == peg.anchor)
        if anchor.height == 0:
            raise InputError(f"{path}: peg of {currency} names anchor currency '{peg.anchor}', "
                             f"which the table has no rates for")
        derived.append(anchor.select("timestamp", pl.lit(currency).alias("currency"),
                                     (pl.col("rate") * peg.units_per_anchor).alias("rate")))
    return pl.concat([long, *derived]).sort("currency", "timestamp")


def load_tables(spec: DatasetSpec) -> Tables:
    """Load and check every table the spec names."""
    loaded: dict[str, pl.DataFrame] = {}
    fx = load_fx(spec, spec.fx) if spec.fx else None
    findings: list[Finding] = []
    for name, table in spec.named_tables():
        if "[" in name:  # exogenous and promotions tables, below
            continue
        frame = normalize_ids(load_table(spec, name, REQUIRED_ROLES[name]), spec)
        _check_blank_keys(frame, name, table, str(spec.resolve(table.path)))
        if name == "reviews":
            check_reviews(frame, table, str(spec.resolve(table.path)))
        if name == "sales":
            frame, findings = order_export_rows(frame, spec, fx, str(spec.resolve(table.path)))
        if name in MARKET_FILLED and "market" not in frame.columns:
            frame = frame.with_columns(pl.lit(spec.single_market).alias("market"))
        loaded[name] = frame
    for name, keys in KEY_ROLES.items():
        if name in loaded:
            _check_unique(loaded[name], keys, getattr(spec, name), str(spec.resolve(
                getattr(spec, name).path)))
    exogenous = []
    for index, table in enumerate(spec.exogenous):
        frame = normalize_ids(load_table(spec, f"exogenous[{index}]", REQUIRED_ROLES["exogenous"],
                                         table), spec)
        _check_blank_keys(frame, "exogenous", table, str(spec.resolve(table.path)))
        keys = tuple(k for k in ("item_id", "market", "attribute") if k in table.columns)
        _check_unique(frame, (*keys, "timestamp"), table, str(spec.resolve(table.path)))
        exogenous.append(frame)
    if spec.sales_grain == "period":
        _check_unique(loaded["sales"], ("item_id", "market", "timestamp"), spec.sales,
                      str(spec.resolve(spec.sales.path)))
    promotions = []
    for index, table in enumerate(spec.promotions):
        name = f"promotions[{index}]"
        frame = normalize_ids(load_table(spec, name, REQUIRED_ROLES["promotions"], table), spec)
        _check_blank_keys(frame, name, table, str(spec.resolve(table.path)))
        promotions.append(frame)
    exogenous += promotion_ranges(spec, promotions, loaded)
    return Tables(spec=spec, fx=fx, exogenous=exogenous, promotions=promotions,
                  findings=findings, **loaded)
