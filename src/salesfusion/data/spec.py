"""The YAML dataset spec: maps a user's tables and column names onto salesfusion's roles.

Nothing else in the code knows a dataset's own column names; everything reads them from here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from salesfusion.data.cleaning import CleaningPolicy
from salesfusion.data.frequency import FREQUENCIES, Frequency
from salesfusion.data.order_fields import check_fill_order_fields
from salesfusion.data.spec_roles import (
    LIST_TABLES,
    OPTIONAL_ROLES,
    REQUIRED_ROLES,
    check_exogenous_keys,
    check_promotion_keys,
)
from salesfusion.data.yamlfile import read_mapping, validated
from salesfusion.errors import InputError

FileFormat = Literal["csv", "parquet", "duckdb"]
TableFormat = Literal["csv", "parquet", "duckdb", "postgresql"]
# The environment variable holding a PostgreSQL table's connection URL when the spec names none:
# the URL (and its password) never lives in the YAML.
DEFAULT_URL_ENV = "SALESFUSION_DATABASE_URL"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_QUERY_START = re.compile(r"\s*(select|with|table|values)\b", re.IGNORECASE)

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TableSpec(_Strict):
    """Where one table lives (a file, or PostgreSQL) and which of its columns play which role."""

    # A file, or a folder of Parquet files (plain or hive-partitioned, ``data.partitioned``);
    # for a PostgreSQL table, DatasetSpec sets it to a label naming the table in messages
    # (e.g. "PostgreSQL table public.sales"), which nothing opens.
    path: str | None = None
    format: TableFormat | None = None  # inferred from the file extension when left out
    table: str | None = None  # table name inside a DuckDB file, or [schema.]name in PostgreSQL
    # PostgreSQL only: the environment variable holding the connection URL, and a SELECT to
    # read instead of a whole table.
    url_env: str | None = None
    query: str | None = None
    columns: dict[str, str]
    # strptime format of the table's date columns (timestamp, launch_date). Without one, dates
    # must be ISO 8601; "12/1/2010" is refused, never read in a guessed day/month order.
    timestamp_format: str | None = None
    # Covariate roles are declared, never guessed (DESIGN.md section 2).
    static_categorical: list[str] = Field(default_factory=list)
    static_numeric: list[str] = Field(default_factory=list)
    past_only: list[str] = Field(default_factory=list)
    future_known: list[str] = Field(default_factory=list)
    # Exogenous tables keyed by an item attribute: the items-table columns whose values the
    # table's ``attribute`` column holds (e.g. one trend series per category or colour term).
    attribute_of: list[str] = Field(default_factory=list)
    # Sales only: order-level roles an order export gives on an order's first line only,
    # forward-filled within each invoice (the column mapped to role ``invoice``).
    fill_order_fields: list[str] = Field(default_factory=list)

    @field_validator("url_env")
    @classmethod
    def _env_name(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not an environment variable name (letters, digits "
                             f"and _, not starting with a digit)")
        return name

    @field_validator("query")
    @classmethod
    def _select(cls, query: str | None) -> str | None:
        # Read in a read-only transaction anyway; this catches a pasted statement early.
        if query is not None and not _QUERY_START.match(query):
            raise ValueError("a query must be one SELECT (or WITH ... SELECT) statement")
        return query

    @model_validator(mode="after")
    def _one_source(self) -> TableSpec:
        if self.format == "postgresql":
            if self.path is not None:
                raise ValueError("'path' names a file; a 'format: postgresql' table names "
                                 "'table' ([schema.]name) or 'query' (SELECT ...) instead")
            if (self.table is None) == (self.query is None):
                raise ValueError("a 'format: postgresql' table needs exactly one of 'table' "
                                 "([schema.]name) or 'query' (SELECT ...)")
            if self.table is not None:
                table_parts(self.table)
            if self.url_env is None:
                self.url_env = DEFAULT_URL_ENV
            return self
        extra = [key for key in ("url_env", "query") if getattr(self, key) is not None]
        if extra:
            raise ValueError(f"'{extra[0]}' is for 'format: postgresql' tables")
        if self.path is None:
            raise ValueError("'path' is required (a CSV, Parquet or DuckDB file, or a folder "
                             "of Parquet files), or set 'format: postgresql' with 'table' or "
                             "'query'")
        return self

    @property
    def is_sql(self) -> bool:
        return self.format == "postgresql"

    def resolved_format(self) -> str:
        """The format, from the file extension when not set; a path without one names a folder
        of Parquet files (``data.partitioned``)."""
        if self.format:
            return self.format
        suffix = Path(str(self.path)).suffix.lower()
        if str(self.path).lower().endswith((".csv.gz", ".tsv.gz")):  # read decompressed
            return "csv"
        by_suffix = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet",
                     ".duckdb": "duckdb", ".db": "duckdb", "": "parquet"}
        if suffix not in by_suffix:
            raise InputError(f"{self.path}: cannot tell the table format from extension "
                             f"'{suffix}'; set 'format' to one of csv, parquet, duckdb, "
                             f"postgresql")
        return by_suffix[suffix]

    def source_columns(self) -> list[str]:
        """The table's own columns that loading it reads: the mapped ones and the declared
        covariates, in that order (what a Parquet source projects onto)."""
        # A covariate list may name a role (price, promo) rather than a column.
        covariates = [c for c in [*self.static_categorical, *self.static_numeric,
                                  *self.past_only, *self.future_known] if c not in self.columns]
        return list(dict.fromkeys([*self.columns.values(), *covariates]))


class PromotionSpec(TableSpec):
    """A promotion calendar: date ranges (roles ``start``, ``end``) expanded to the panel's
    periods as one future-known covariate, the share of the period's days on promotion
    (``data.promotions``)."""

    # The covariate's name (``<name>_by_<attribute>`` for an attribute-keyed calendar).
    name: str = Field("promo_share", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class ReviewTextEmbedding(_Strict):
    """How review texts become covariates: each period's reviews are encoded by ``encoder`` (a
    pretrained text encoder: minilm, e5), averaged, and reduced to ``dims`` channels
    ``review_text_1..dims`` by a projection each model fits on the reviews of its own training
    periods (``encoders.review_text``)."""

    encoder: str = "minilm"
    dims: int = Field(4, ge=1, le=32)


class ReviewsSpec(TableSpec):
    """Reviews over time (roles ``item_id``, ``timestamp``, ``text``, optionally ``rating``,
    ``market``), read as the past-only covariates ``review_count`` and ``review_rating``
    (``data.reviews``), and with ``text_embedding`` the texts' channels; the table itself is the
    covariate, so it declares no covariate columns."""

    text_embedding: ReviewTextEmbedding | None = None

    # The scale ratings are given on, both ends included (e.g. [1, 5] stars): a rating outside
    # it is an input error (a mapped column of helpful-votes counts would be read as ratings
    # otherwise). Left out, any finite rating is read.
    rating_range: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _review_fields(self) -> ReviewsSpec:
        declared = [f for f in ("static_categorical", "static_numeric", "past_only",
                                "future_known") if getattr(self, f)]
        if declared:
            raise ValueError(f"a reviews table declares no covariate columns ({declared[0]}); "
                             f"its covariates are review_count and review_rating")
        if self.rating_range is not None:
            if "rating" not in self.columns:
                raise ValueError("'rating_range' needs the 'rating' role mapped")
            if not self.rating_range[0] < self.rating_range[1]:
                raise ValueError(f"'rating_range' must be [lowest, highest] with lowest < "
                                 f"highest, got {list(self.rating_range)}")
        return self


def table_parts(name: str) -> tuple[str, ...]:
    """``[schema.]name`` as its parts (quoted as identifiers wherever they are used, so any
    characters but the dot are allowed); ValueError naming the value otherwise."""
    parts = tuple(name.split("."))
    if len(parts) > 2 or not all(part.strip() for part in parts):
        raise ValueError(f"table {name!r} is not [schema.]name")
    return parts


class CurrencyPeg(_Strict):
    anchor: str  # the currency it is fixed to
    units_per_anchor: float = Field(gt=0)


class FxSpec(_Strict):
    """A wide exchange-rate table: a date column plus one column per currency."""

    path: str
    format: FileFormat | None = None  # an FX table is a file (PostgreSQL is for TableSpec)
    table: str | None = None
    date_column: str = "Date"
    date_format: str | None = None  # strptime format of date_column; ISO 8601 without one
    base_currency: str = "EUR"  # rates are units of each currency per 1 base currency
    max_staleness_days: int = 10  # an as-of rate older than this is treated as missing
    # Currencies the table lacks but that are fixed to one it has (e.g. AED to USD).
    pegs: dict[str, CurrencyPeg] = Field(default_factory=dict)


class DatasetSpec(_Strict):
    name: str
    freq: Frequency = "W"
    # Currency of the sales prices (the seller's): with a per-row sales ``currency`` role, the
    # reporting currency every row is converted into (``data.fx.to_reporting_currency``).
    currency: str | None = None
    # "transaction": many rows per (item, market, period) are summed; "period": already a panel,
    # so a repeated (item, market, timestamp) key is an error.
    sales_grain: Literal["transaction", "period"] = "transaction"
    # The market of every sales and events row when those tables map no ``market`` column.
    single_market: str = Field("ALL", min_length=1)
    sales: TableSpec
    items: TableSpec | None = None
    markets: TableSpec | None = None
    # One table or a list of tables, each keyed its own way (see OPTIONAL_ROLES).
    exogenous: list[TableSpec] = Field(default_factory=list)
    reviews: ReviewsSpec | None = None
    events: TableSpec | None = None
    # One calendar or a list, each keyed its own way (roles as for exogenous tables).
    promotions: list[PromotionSpec] = Field(default_factory=list)
    fx: FxSpec | None = None
    cleaning: CleaningPolicy = Field(default_factory=CleaningPolicy)
    # Folder that image paths are relative to (the spec's folder when None); a path that
    # resolves outside it is rejected.
    image_root: str | None = None
    base_dir: Path = Field(default=Path("."), exclude=True)

    @field_validator("freq", mode="before")
    @classmethod
    def _upper_freq(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("exogenous", "promotions", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [] if value is None else [value] if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _check_roles(self) -> DatasetSpec:
        for table_name, table in self.named_tables():
            if table.is_sql and table.path is None:
                table.path = (f"PostgreSQL table {table.table}" if table.table
                              else f"PostgreSQL query of table '{table_name}'")
            kind = table_name.split("[")[0]
            missing = [r for r in REQUIRED_ROLES[kind] if r not in table.columns]
            if missing:
                raise ValueError(f"table '{table_name}' must map the role(s) {missing}")
            known = set(REQUIRED_ROLES[kind]) | set(OPTIONAL_ROLES[kind])
            unknown = sorted(set(table.columns) - known)
            if unknown:
                raise ValueError(f"table '{table_name}' maps unknown role(s) {unknown}; "
                                 f"known roles are {sorted(known)}")
            if kind not in LIST_TABLES and table.attribute_of:
                raise ValueError(f"table '{table_name}': 'attribute_of' is for exogenous and "
                                 f"promotions tables")
            check_fill_order_fields(table_name, table.columns, table.fill_order_fields)
        categorical = self.items.static_categorical if self.items else []
        for index, table in enumerate(self.exogenous):
            check_exogenous_keys(f"exogenous[{index}]", table, categorical)
        for index, table in enumerate(self.promotions):
            check_promotion_keys(f"promotions[{index}]", table, categorical)
        if "market" in self.sales.columns and self.events and \
                "market" not in self.events.columns:
            raise ValueError("the sales table maps 'market', so the events table must too")
        if self.fx is not None and (self.markets is None or "currency" not in self.markets.columns):
            raise ValueError("an 'fx' table needs a 'markets' table that maps the 'currency' role")
        if self.fx is not None and self.currency is None:
            raise ValueError("an 'fx' table needs the sales 'currency' (the prices' currency)")
        if "currency" in self.sales.columns and (self.fx is None or self.currency is None):
            raise ValueError("the sales table maps 'currency' (each row's price currency): the "
                             "spec needs an 'fx' table and 'currency' (the reporting currency "
                             "prices are converted into)")
        return self

    def named_tables(self) -> list[tuple[str, TableSpec]]:
        """Every table of the spec with its name (``exogenous[i]``, ``promotions[i]`` for the
        tables of a list)."""
        named = [(name, getattr(self, name)) for name in REQUIRED_ROLES
                 if name not in LIST_TABLES and getattr(self, name) is not None]
        return named + [(f"{kind}[{i}]", table) for kind in LIST_TABLES
                        for i, table in enumerate(getattr(self, kind))]

    def resolve(self, path: str) -> Path:
        """A table path relative to the spec file's folder (a PostgreSQL table's label as it
        is, so messages that name a table's path name the database table)."""
        candidate = Path(path)
        if any(table.is_sql and table.path == path for _, table in self.named_tables()):
            return candidate
        return candidate if candidate.is_absolute() else self.base_dir / candidate

    def images_dir(self) -> Path:
        return self.resolve(self.image_root).resolve() if self.image_root else self.base_dir


def load_spec(path: str | Path) -> DatasetSpec:
    """Read and validate a YAML dataset spec; errors name the file and the offending field."""
    path = Path(path)
    raw = read_mapping(path, "dataset spec")
    if "freq" in raw and str(raw["freq"]).upper() not in FREQUENCIES:
        raise InputError(f"{path}: unknown frequency '{raw['freq']}' in field 'freq'; "
                         f"use one of {', '.join(FREQUENCIES)}")
    spec = validated(DatasetSpec, raw, path, "spec")
    spec.base_dir = path.parent.resolve()
    return spec
