"""Embedding store: vectors by content key, one namespace per encoder version, as Parquet.

The cache only stores and retrieves; what to encode, in which batches, is the encoder's
(``Encoder.encode``). Each ``put`` writes its own part file atomically (under a temporary name,
then renamed), so an interrupted run keeps every batch it finished and the next run resumes
from there.

A vector that is not finite is never stored (``put`` refuses the batch) and never served: a
part that cannot be read, lacks the key or vector column, holds NaN or infinite values, or
holds vectors of another length than the asking encoder's is set aside (renamed to a hidden
``.part-<id>.parquet.refused``, kept for inspection) with one ``warning:`` line on stderr, and
its contents count as misses, so the encoder computes them again and stores a new part.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from salesfusion.errors import InputError

# Where embeddings are kept unless a command or model config names another folder.
DEFAULT_CACHE = Path.home() / ".cache" / "salesfusion" / "embeddings"

# An empty file at the cache's root: outputs refuse to land inside a marked folder (a stray
# file would mix into the cache), whatever the folder is called.
CACHE_MARK = ".salesfusion-embedding-cache"


@dataclass
class CacheStats:
    """What this cache object has served since it was opened."""

    hits: int = 0  # keys asked for and found
    misses: int = 0  # keys asked for and not found
    stored: int = 0  # vectors written
    refused_parts: int = 0  # damaged parts set aside


class EmbeddingCache:
    """Content-hash key/value store under ``folder``; a namespace is a relative folder name
    (an encoder uses ``<name>/<version>``, so a changed encoder never reads stale vectors)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.stats = CacheStats()

    def _parts(self, namespace: str) -> list[Path]:
        folder = self.folder / namespace
        return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []

    def keys(self, namespace: str) -> set[str]:
        """Every key stored in ``namespace`` (in parts that can be read)."""
        frames = (self._read(part, None) for part in self._parts(namespace))
        return {key for frame in frames if frame is not None for key in frame["key"].to_list()}

    def get(self, namespace: str, keys: Iterable[str],
            width: int | None = None) -> dict[str, np.ndarray]:
        """The stored vectors of those ``keys`` that are in ``namespace``; ``width``: the
        asking encoder's vector length (elements), which every served vector has."""
        wanted = set(keys)
        found: dict[str, np.ndarray] = {}
        if wanted:
            frames = [frame for part in self._parts(namespace)
                      if (frame := self._read(part, width)) is not None]
            if frames:
                frame = pl.concat(frames, how="vertical_relaxed").filter(
                    pl.col("key").is_in(list(wanted)))
                vectors = np.asarray(frame["vector"].to_list(), dtype=np.float32)
                found = dict(zip(frame["key"].to_list(), vectors, strict=True))
        self.stats.hits += len(found)
        self.stats.misses += len(wanted) - len(found)
        return found

    def put(self, namespace: str, keys: list[str], vectors: np.ndarray) -> None:
        """Store one vector (any shape, kept flat) per key; refuses non-finite vectors."""
        folder = self.folder / namespace
        flat = np.asarray(vectors, dtype=np.float32).reshape(len(keys), -1)
        bad = ~np.isfinite(flat).all(axis=1)
        if bad.any():
            first = keys[int(np.argmax(bad))]
            raise InputError(f"{folder}: the encoder gave {int(bad.sum())} vector(s) holding NaN "
                             f"or infinite values (first: content key {first[:16]}); refusing "
                             f"to cache or use them")
        folder.mkdir(parents=True, exist_ok=True)
        (self.folder / CACHE_MARK).touch()
        frame = pl.DataFrame({"key": keys, "vector": list(flat)})
        name = f"part-{uuid.uuid4().hex}.parquet"
        temporary = folder / f".{name}.tmp"
        frame.write_parquet(temporary)
        os.replace(temporary, folder / name)
        self.stats.stored += len(keys)

    def _read(self, part: Path, width: int | None) -> pl.DataFrame | None:
        """``part`` as (key, vector), or None after setting it aside when it is damaged."""
        try:
            frame = pl.read_parquet(part)
        except FileNotFoundError:  # set aside by a concurrent reader meanwhile
            return None
        except BaseException as exc:
            # polars raises its own errors on most damage and a Rust panic (a BaseException)
            # on some; anything else (KeyboardInterrupt, MemoryError) is not about the part.
            if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
                raise
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
            return self._set_aside(part, f"cannot be read as Parquet ({reason})")
        problem = _problem(frame, width)
        if problem is not None:
            return self._set_aside(part, problem)
        return frame.select("key", pl.col("vector").cast(pl.List(pl.Float32)))

    def _set_aside(self, part: Path, reason: str) -> None:
        aside = part.with_name(f".{part.name}.refused")
        with contextlib.suppress(FileNotFoundError):  # another reader set it aside first
            os.replace(part, aside)
        self.stats.refused_parts += 1
        print(f"warning: {part}: {reason}; set aside as {aside.name}, its contents are encoded "
              f"again", file=sys.stderr)


def _problem(frame: pl.DataFrame, width: int | None) -> str | None:
    """Why ``frame`` (one part) must not be served, or None."""
    vector_type = frame.schema.get("vector")
    if frame.schema.get("key") != pl.String or not isinstance(vector_type, (pl.List, pl.Array)):
        return f"is not a part of this cache (columns {frame.schema})"
    if not vector_type.inner.is_float():
        return f"holds vectors of {vector_type.inner}, not floats"
    if frame["key"].null_count() or frame["vector"].null_count():
        return "holds empty keys or vectors"
    vectors = frame["vector"].cast(pl.List(pl.Float64))
    lengths = vectors.list.len().unique().to_list()
    if width is not None and lengths and lengths != [width]:
        return f"holds vectors of length {sorted(lengths)}, this encoder's are {width}"
    if len(lengths) > 1:
        return f"holds vectors of different lengths {sorted(lengths)}"
    if not vectors.explode().is_finite().all():
        return "holds NaN or infinite values"
    return None
