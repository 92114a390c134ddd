"""The data behind the dashboard: series search, each item's content as the registered
modalities read it, thumbnails, backtest errors and explanation tables, as polars frames and
the ``{"columns", "rows"}`` tables the page renders and exports.

Every table the page shows travels as ``{"columns": [...], "rows": [[...], ...]}`` and its CSV
(``table_csv``) is written from those same rows, so a CSV download (the page's, or a route's
``?format=csv``) holds exactly the values displayed.
"""

from __future__ import annotations

import csv
import io
import math
import threading
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from salesfusion.data.panel import SERIES_KEY
from salesfusion.data.partitioned import MANIFEST
from salesfusion.encoders.inputs import title_column
from salesfusion.errors import InputError
from salesfusion.explain.errors import segment_errors

THUMBNAIL_SIDE = 320  # pixels; the page shows the photo at most this large
KEPT_THUMBNAILS = 512  # encoded photos kept in memory (oldest dropped first)
# The explanation tables the dashboard shows (file stem -> heading), in page order; a fixed
# list, so a route parameter never becomes a path.
EXPLAIN_TABLES = {
    "shares_by_step": "Modality shares by forecast step",
    "shares_by_segment": "Modality shares by segment",
    "shares_by_age": "Modality shares by age since launch",
    "importance": "Permutation importance (WAPE increase when a group is permuted)",
    "errors_by_segment": "Holdout errors by segment",
    "errors_by_segment_step": "Holdout errors by segment and step",
    "segments": "Segment of each market",
}
METRIC_COLUMNS = ["wape", "bias", "mae", "n_series", "n_rows", "actual_total"]


def _cell(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf; the page shows a blank cell
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return value


def table_json(frame: pl.DataFrame) -> dict[str, Any]:
    """A frame as the page's table: column names and rows of JSON-safe cells."""
    return {"columns": frame.columns,
            "rows": [[_cell(v) for v in row] for row in frame.iter_rows()]}


def table_csv(table: dict[str, Any]) -> str:
    """The CSV of a ``table_json`` table: a header, then its rows (None as an empty cell)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table["columns"])
    writer.writerows(["" if v is None else v for v in row] for row in table["rows"])
    return out.getvalue()


def series_catalogue(histories: list[Any], cold_start: list[bool]) -> pl.DataFrame:
    """Every series the given models can show: ``item_id, market, title, cold_start``.

    A series with history in any of them is a warm one; an item of an items table without
    sales in a market of the history is a cold start, listed only for the models that forecast
    cold starts (``cold_start[i]`` for ``histories[i]``)."""
    warm = pl.concat([h.data.select(SERIES_KEY).unique() for h in histories]).unique()
    item_frames = [h.items for h in histories if h.items is not None]
    cold_parts = []
    for history, cold in zip(histories, cold_start, strict=True):
        if cold and history.items is not None:
            markets = history.data.select("market").unique()
            cold_parts.append(history.items.select("item_id").unique().join(markets,
                                                                             how="cross"))
    cold_keys = (pl.concat(cold_parts).unique().join(warm, on=SERIES_KEY, how="anti")
                 if cold_parts else warm.clear())
    series = pl.concat([warm.with_columns(pl.lit(False).alias("cold_start")),
                        cold_keys.with_columns(pl.lit(True).alias("cold_start"))])
    if item_frames:
        # One row per item: the first model's items table that describes it.
        titled = pl.concat(
            [f.select("item_id", (pl.col(title_column(f)) if title_column(f) else pl.lit(None))
                      .cast(pl.String).alias("title")) for f in item_frames],
            how="vertical").unique("item_id", keep="first", maintain_order=True)
        series = series.join(titled, on="item_id", how="left")
    else:
        series = series.with_columns(pl.lit(None, pl.String).alias("title"))
    return series.select(*SERIES_KEY, "title", "cold_start").sort(SERIES_KEY)


def described_items(histories: list[Any]) -> pl.DataFrame:
    """One row per item of the models' items tables (the first table that describes it): its
    id and whichever columns of the registered content modalities the tables hold."""
    from salesfusion.encoders.modalities import content_modalities

    read = dict.fromkeys(column for source in content_modalities() for column in source.columns)
    frames = [h.items.select("item_id", *[c for c in read if c in h.items.columns])
              for h in histories if h.items is not None]
    if not frames:
        return pl.DataFrame(schema={"item_id": pl.String})
    return pl.concat(frames, how="diagonal_relaxed").unique("item_id", keep="first",
                                                            maintain_order=True)


def item_contents(items: pl.DataFrame, image_root: Path | None) -> list[list[dict[str, Any]]]:
    """Each row's content as every registered content modality reads it (``inputs``, what its
    encoder is given), built-ins first: one part per modality holding something for the item,
    ``{"modality", "about", "value", "reads_files", "file"}``. A modality whose inputs need
    ``image_root`` reads files under that root: its part's ``file`` is the resolved image (None
    when it leaves the root or is missing), which the page shows as a photo."""
    from salesfusion.encoders.inputs import Catalogue
    from salesfusion.encoders.modalities import content_modalities

    catalogue = Catalogue("dashboard", items, image_root or Path("."))
    parts: list[list[dict[str, Any]]] = [[] for _ in range(items.height)]
    for source in content_modalities():
        if not source.present_in(catalogue):
            continue
        values, needs = source.inputs(catalogue)
        about = next(iter((source.__doc__ or "").strip().splitlines()), "")
        reads_files = "image_root" in needs
        for part, value in zip(parts, values, strict=True):
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            part.append({"modality": source.name, "about": about, "reads_files": reads_files,
                         "file": resolve_image(image_root, str(value)) if reads_files else None,
                         "value": _cell(value) if isinstance(value, (str, int, float, date))
                         else str(value)})
    return parts


def search_series(catalogue: pl.DataFrame, query: str, market: str | None,
                  limit: int) -> tuple[pl.DataFrame, int]:
    """Series whose id or title holds ``query`` (case-insensitive, literal), in ``market`` when
    given: the first ``limit`` (exact id matches first) and the number that matched."""
    found = catalogue
    if market is not None:
        found = found.filter(pl.col("market") == market)
    needle = query.strip().lower()
    if needle:
        found = found.filter(
            pl.col("item_id").str.to_lowercase().str.contains(needle, literal=True)
            | pl.col("title").fill_null("").str.to_lowercase().str.contains(needle, literal=True))
        found = (found.with_columns((pl.col("item_id").str.to_lowercase() != needle)
                                    .alias("_rank"))
                 .sort("_rank", *SERIES_KEY).drop("_rank"))
    return found.head(limit), found.height


def resolve_image(image_root: Path | None, reference: str | None) -> Path | None:
    """The image file of an item, or None when there is no root, no reference, or the
    reference leaves the root or names no file."""
    from salesfusion.encoders.image.loading import resolve_inside

    if image_root is None or not reference:
        return None
    try:
        path = resolve_inside(image_root, reference)
    except (ValueError, OSError):
        return None
    return path if path.is_file() else None


_thumbs: dict[Path, str | None] = {}
_thumbs_lock = threading.Lock()


def thumbnail(path: Path | None) -> str | None:
    """A PNG data URI of the image, at most ``THUMBNAIL_SIDE`` pixels a side, decoded by the
    safe loader (size limits, EXIF orientation); None for an unreadable image."""
    from salesfusion.encoders.image.loading import thumbnail_uri

    if path is None:
        return None
    with _thumbs_lock:
        if path in _thumbs:
            return _thumbs[path]
    uri = thumbnail_uri(path, THUMBNAIL_SIDE, "PNG")
    with _thumbs_lock:
        _thumbs[path] = uri
        while len(_thumbs) > KEPT_THUMBNAILS:
            _thumbs.pop(next(iter(_thumbs)))
    return uri


_frames: dict[tuple[Path, float], pl.DataFrame] = {}


def _remember(key: tuple[Path, float], frame: pl.DataFrame) -> pl.DataFrame:
    # One version per file: a rewritten file replaces its old frame instead of adding to it.
    for old in [k for k in _frames if k[0] == key[0]]:
        _frames.pop(old, None)
    _frames[key] = frame
    return frame


def _read(path: Path) -> pl.DataFrame:
    try:
        if path.is_dir():  # `--out-format partitioned`: the hive dataset of the forecasts
            from salesfusion.data.partitioned import scan_parquet_folder

            return scan_parquet_folder(path).collect().drop("bucket", strict=False)
        return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"{path}: cannot read it ({' '.join(str(exc).split())[:200]})") from None


def read_backtest(folder: Path) -> pl.DataFrame:
    """A backtest folder's ``forecasts.parquet`` with a ``step`` (1 = first period after the
    origin), read once per file version."""
    path, version = folder / "forecasts.parquet", folder / "forecasts.parquet"
    if not path.exists() and (folder / "forecasts").is_dir():
        # A rerun replaces the parts deep inside forecasts/, not the folder: the manifest,
        # rewritten last on every write, dates the version.
        path = folder / "forecasts"
        version = folder / MANIFEST if (folder / MANIFEST).exists() else path
    try:
        key = (path, version.stat().st_mtime_ns)
    except OSError:
        raise InputError(f"--backtest {folder}: no forecasts.parquet or forecasts/ (not a "
                         f"`salesfusion backtest` output folder)") from None
    frame = _frames.get(key)
    if frame is None:
        frame = _read(path)
        missing = [c for c in ("model", "item_id", "market", "timestamp", "y_true", "y_pred")
                   if c not in frame.columns]
        if missing:
            raise InputError(f"{path}: lacks column(s) {', '.join(missing)}")
        if "step" not in frame.columns:
            if "period_since_launch" in frame.columns:  # launch protocol: steps from launch
                step = pl.col("period_since_launch")
            else:  # rolling origins: every series of a window shares the origin
                group = ["model", "window"] if "window" in frame.columns else ["model"]
                step = pl.col("timestamp").rank("dense").over(group)
            frame = frame.with_columns(step.cast(pl.Int64).alias("step"))
        frame = _remember(key, frame)
    return frame


def error_metrics(forecasts: pl.DataFrame, by: str, models: list[str] | None = None,
                  market: str | None = None) -> pl.DataFrame:
    """WAPE and bias per model and ``by`` (``step`` or ``market``), in percent of the actual
    total (``100 * sum|yhat - y| / sum|y|`` and ``100 * sum(yhat - y) / sum|y|``: positive
    bias is over-forecasting), from backtest forecasts; only ``models`` and ``market`` when
    given."""
    rows = forecasts
    if models:
        rows = rows.filter(pl.col("model").is_in(models))
    if market is not None:
        rows = rows.filter(pl.col("market") == market)
    if not rows.height:
        return pl.DataFrame(schema={"model": pl.String, by: forecasts.schema[by],
                                    **dict.fromkeys(METRIC_COLUMNS, pl.Float64)})
    # segment_errors keeps item_id and market beside its groups, so it groups by a copy.
    table = segment_errors(rows.with_columns(pl.col(by).alias("_by")), by=("_by",),
                           quantiles=False)
    return table.select("model", pl.col("_by").alias(by), *METRIC_COLUMNS).sort("model", by)


def series_backtest(forecasts: pl.DataFrame, item_id: str, market: str,
                    models: list[str]) -> pl.DataFrame:
    """One series' backtest forecasts of ``models``: ``model, window, timestamp, y_true,
    y_pred`` by model, window and time."""
    rows = forecasts.filter((pl.col("item_id") == item_id) & (pl.col("market") == market)
                            & pl.col("model").is_in(models))
    window = pl.col("window") if "window" in rows.columns else pl.lit(0)
    return (rows.select("model", window.cast(pl.Int64).alias("window"), "timestamp", "y_true",
                        "y_pred").sort("model", "window", "timestamp"))


def explain_tables(folder: Path | None) -> list[str]:
    """The explanation tables an explain folder holds, in page order."""
    if folder is None:
        return []
    return [name for name in EXPLAIN_TABLES if (folder / f"{name}.parquet").is_file()]


def read_explain(folder: Path, name: str) -> pl.DataFrame:
    """One explanation table (``name`` from ``EXPLAIN_TABLES``), read once per file version."""
    path = folder / f"{name}.parquet"
    try:
        key = (path, path.stat().st_mtime)
    except OSError:
        raise InputError(f"{path}: no such table") from None
    frame = _frames.get(key)
    return frame if frame is not None else _remember(key, _read(path))
