"""What-if plans: a file of future-known covariate values (planned prices, promotions) that a
forecast is made under (``salesfusion predict --plan FILE``).

A plan is a CSV or Parquet table with a ``timestamp`` column (ISO 8601 dates; each date stands
for the period holding it), the key columns of the covariates it sets (``item_id`` and
``market`` for the sales table's ``price`` and ``promo``; ``market`` for a market-keyed
exogenous column) and one column per covariate. Item ids are stripped and upper-cased as the
spec's default ``normalize_item_ids`` does; markets are stripped.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from salesfusion.data.columns import cast_numeric, cast_text, first_rows
from salesfusion.data.dates import cast_time
from salesfusion.data.frequency import truncate_to_period
from salesfusion.data.io import read_raw
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.data.validate import with_normal_ids
from salesfusion.errors import InputError

KEYS = ("item_id", "market", "timestamp")


def load_plan(path: Path, panel: Panel) -> pl.DataFrame:
    """The plan at ``path``, typed and checked against ``panel`` (one-line errors naming the
    file, the column and the first offending rows)."""
    suffix = path.suffix.lower()
    formats = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
    if suffix not in formats:
        raise InputError(f"{path}: a plan is a .csv or .parquet file")
    frame = read_raw(path, formats[suffix])
    where = str(path)
    if frame.height == 0:
        raise InputError(f"{where}: the plan has no rows")
    if "timestamp" not in frame.columns:
        raise InputError(f"{where}: a plan needs a 'timestamp' column; it has {frame.columns}")
    frame = cast_time(frame, "timestamp", "timestamp", where, None)
    for key in ("item_id", "market"):
        if key in frame.columns:
            frame = cast_text(frame, key, key, where)
            missing = frame[key].is_null()
            if missing.any():
                raise InputError(f"{where}: column '{key}' has empty values: "
                                 f"{first_rows(missing, frame[key])}")
    frame = with_normal_ids(frame)
    for column in [c for c in frame.columns if c not in KEYS]:
        frame = cast_numeric(frame, column, column, where)
    frame = frame.with_columns(truncate_to_period(pl.col("timestamp"), panel.freq))
    keys = [k for k in KEYS if k in frame.columns]
    repeated = frame.select(keys).is_duplicated()
    if repeated.any():
        raise InputError(f"{where}: the plan sets the same ({', '.join(keys)}) twice (periods "
                         f"at frequency {panel.freq}): {first_rows(repeated, frame['timestamp'])}")
    known = [k for k in SERIES_KEY if k in frame.columns]
    if known:
        unknown = frame.select(known).join(panel.data.select(known).unique(), on=known,
                                           how="anti")
        if unknown.height:
            raise InputError(f"{where}: the plan names {unknown.height} row(s) of "
                             f"({', '.join(known)}) the data has no series for, first: "
                             f"{unknown.row(0)}")
    return frame


def plan_vs_base(base: pl.DataFrame, planned: pl.DataFrame, plan: pl.DataFrame) -> pl.DataFrame:
    """Each planned series' forecast units over the horizon without the plan (``base``'s
    ``y_pred``) and with it (``planned``'s), and the difference in units and in % of the base
    (empty where the base is 0). A planned series is one the plan's key columns name (every
    series of a market for a market-keyed plan; every series when it names neither)."""
    keys = [k for k in SERIES_KEY if k in plan.columns]

    def units(frame: pl.DataFrame, name: str) -> pl.DataFrame:
        return frame.group_by(SERIES_KEY).agg(pl.col("y_pred").sum().alias(name))

    table = units(base, "base_units").join(units(planned, "plan_units"), on=SERIES_KEY,
                                           how="full", coalesce=True)
    if keys:
        table = table.join(plan.select(keys).unique(), on=keys, how="semi")
    difference = pl.col("plan_units") - pl.col("base_units")
    return (table.with_columns(pl.col("base_units", "plan_units").fill_null(0.0))
            .with_columns(difference.alias("diff_units"),
                          pl.when(pl.col("base_units") != 0)
                          .then(100 * difference / pl.col("base_units")).alias("diff_pct"))
            .sort(SERIES_KEY))
