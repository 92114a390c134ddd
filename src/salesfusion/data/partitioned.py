"""Folders of Parquet files as one table: read lazily as spec input, written as forecast output.

Input: a spec table's ``path`` may name a folder of Parquet files, plain or hive-partitioned
(``market=DE/part-0.parquet``). Every ``*.parquet`` file under it is a part; names starting with
``_`` or ``.`` (``_SUCCESS``, ``_partitions.json``, hidden files and folders) are skipped and
any other file is refused, since a stray CSV beside the parts is a broken export rather than
something to ignore. Partition values (``key=value`` folders) are read as text, like CSV cells,
so ``bucket=07`` stays ``"07"`` and the validator casts whatever role maps the column. Parts must
agree on the type of every column that is read: only the columns asked for when the caller
projects, every column otherwise.

Output: forecasts as a hive dataset ``forecasts/market=<m>/bucket=<k>/part-0.parquet`` where the
bucket is a stable hash of the item id (``series_bucket``), so every row of one series is in one
file and a reader loads one series by reading one file. Each part also holds its ``market``
column (polars reads the file's own column before the folder's), so reading the folder gives the
market as text whatever it looks like, and the frame written plus a ``bucket`` column.
``_partitions.json`` beside the dataset folder records the layout (see ``write_dataset``); it is
not inside the folder, because polars refuses a folder holding non-Parquet files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import polars as pl

from salesfusion.errors import InputError

BUCKETS = 64
HASH = "blake2b(digest_size=8) of the UTF-8 item_id, as a big-endian unsigned int, mod buckets"
MANIFEST = "_partitions.json"
PART = "part-0.parquet"
SKIPPED_PREFIXES = ("_", ".")
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"  # Hive's name for a null partition value


def _bucket(item_id: str, buckets: int) -> int:
    digest = hashlib.blake2b(item_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


def series_bucket(item_ids: pl.Series, buckets: int) -> pl.Series:
    """The bucket (0 .. buckets-1) of each item id; the same in every process and version,
    unlike Python's ``hash()``, which is salted per process. Null ids get a null bucket."""
    if buckets < 1:
        raise ValueError(f"buckets must be at least 1, got {buckets}")
    ids = item_ids.cast(pl.Utf8)
    # Hashed once per distinct id: a forecast frame repeats each id once per period.
    unique = ids.drop_nulls().unique()
    mapping = {item: _bucket(item, buckets) for item in unique.to_list()}
    return ids.replace_strict(mapping, default=None, return_dtype=pl.Int64).alias("bucket")


# ---- reading --------------------------------------------------------------------------------


def _hive_keys(path: Path) -> list[str]:
    """The ``key=value`` folder names on ``path`` (as polars parses them: the whole path)."""
    return [name for name, sep, _ in (part.partition("=") for part in path.parts[:-1])
            if sep and name]


def parquet_parts(folder: Path) -> list[Path]:
    """Every Parquet part under ``folder``, sorted; InputError naming the folder when it holds
    none, or naming a file that is neither a part nor a skipped marker."""
    parts = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).parts
        if any(name.startswith(SKIPPED_PREFIXES) for name in relative) or path.is_dir():
            continue
        if not path.is_file():
            raise InputError(f"{path}: is not a regular file (a FIFO, socket or device) in the "
                             f"Parquet folder {folder}")
        if path.suffix.lower() != ".parquet":
            raise InputError(f"{path}: not a Parquet file; a folder table holds only .parquet "
                             f"files (names starting with _ or . are skipped)")
        parts.append(path)
    if not parts:
        raise InputError(f"{folder}: the folder holds no .parquet files")
    return parts


def _schemas(parts: list[Path]) -> list[dict[str, pl.DataType]]:
    schemas = []
    for path in parts:
        try:
            schemas.append(dict(pl.read_parquet_schema(path)))
        except (pl.exceptions.PolarsError, OSError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"{path}: cannot read as parquet: {message}") from None
    return schemas


def _check_parts(folder: Path, parts: list[Path], schemas: list[dict[str, pl.DataType]],
                 columns: Sequence[str] | None) -> None:
    """Refuse parts whose partition folders or column types differ from the first part's."""
    first, keys = parts[0], _hive_keys(parts[0])
    for path in parts[1:]:
        if _hive_keys(path) != keys:
            raise InputError(f"{path}: partition folders {_hive_keys(path)} differ from "
                             f"{keys} of {first} (every part of {folder} must sit at the same "
                             f"depth under the same key=value folders)")
    names = set().union(*schemas)
    checked = sorted(names if columns is None else names & set(columns))
    for path, schema in zip(parts[1:], schemas[1:], strict=True):
        for name in checked:
            if schema.get(name) != schemas[0].get(name):
                here = schema.get(name, "missing")
                there = schemas[0].get(name, "missing")
                raise InputError(f"{path}: column '{name}' is {here} in this part but {there} "
                                 f"in {first}; every part of {folder} must have the same schema")


def scan_parquet_folder(folder: Path, columns: Sequence[str] | None = None) -> pl.LazyFrame:
    """A lazy scan of every part under ``folder``, partition columns included as text.

    With ``columns``, only those are type-checked across parts, so selecting them before
    collecting reads nothing else; without, every column must agree. Partition folders above
    ``folder`` (a ``key=value`` folder it sits in) are left out unless ``columns`` names them."""
    parts = parquet_parts(folder)
    schemas = _schemas(parts)
    _check_parts(folder, parts, schemas, columns)
    # polars parses every key=value folder of the whole (absolute) path, so the keys above the
    # folder are declared too; a value is text, never guessed into a number or a date.
    absolute = [p.absolute() for p in parts]
    frame = pl.scan_parquet([str(p) for p in absolute], hive_partitioning=True,
                            hive_schema=dict.fromkeys(_hive_keys(absolute[0]), pl.Utf8),
                            try_parse_hive_dates=False, extra_columns="ignore",
                            missing_columns="insert")
    outside = set(_hive_keys(absolute[0])) - set(_hive_keys(parts[0].relative_to(folder)))
    return frame.drop(sorted(outside - set().union(*schemas) - set(columns or ())))


# ---- writing --------------------------------------------------------------------------------


def _hive_value(value: object) -> str:
    # Percent-encoded as Hive does, so a market such as "A/B" stays one folder; polars decodes it.
    return NULL_PARTITION if value is None else quote(str(value), safe="")


def write_dataset(frame: pl.DataFrame, root: Path, name: str = "forecasts",
                  buckets: int = BUCKETS) -> dict[str, int]:
    """Write ``frame`` (with ``item_id`` and ``market``) as ``root/name/market=<m>/bucket=<k>/
    part-0.parquet`` and ``root/_partitions.json`` (bucket count, hash, rows per part, written
    last so its presence means the parts are complete); returns the rows per part."""
    width = len(str(buckets - 1))
    keyed = frame.with_columns(series_bucket(frame["item_id"], buckets).alias("__bucket"))
    groups = keyed.partition_by("market", "__bucket", as_dict=True, maintain_order=True)
    if not groups:  # no rows: one empty part keeps the schema readable
        groups = {(None, 0): keyed}
    counts: dict[str, int] = {}
    for (market, bucket), part in groups.items():
        bucket_name = NULL_PARTITION if bucket is None else f"{bucket:0{width}d}"
        relative = f"market={_hive_value(market)}/bucket={bucket_name}/{PART}"
        (root / name / relative).parent.mkdir(parents=True, exist_ok=True)
        part.drop("__bucket").write_parquet(root / name / relative)
        counts[relative] = part.height
    manifest = {"dataset": name, "partition_by": ["market", "bucket"], "buckets": buckets,
                "hash": HASH, "rows": frame.height, "partitions": dict(sorted(counts.items()))}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return counts
