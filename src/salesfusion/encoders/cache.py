"""Embedding store: vectors by content key, one namespace per encoder version, as Parquet.

The cache only stores and retrieves; what to encode, in which batches, is the encoder's
(``Encoder.encode``). Each ``put`` writes its own part file atomically (under a temporary name,
then renamed), so an interrupted run keeps every batch it finished and the next run resumes
from there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

# An empty file at the cache's root: outputs refuse to land inside a marked folder (a stray
# file would mix into the cache), whatever the folder is called.
CACHE_MARK = ".salesfusion-embedding-cache"


@dataclass
class CacheStats:
    """What this cache object has served since it was opened."""

    hits: int = 0  # keys asked for and found
    misses: int = 0  # keys asked for and not found
    stored: int = 0  # vectors written


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
        """Every key stored in ``namespace``."""
        return {key for part in self._parts(namespace)
                for key in pl.read_parquet(part, columns=["key"])["key"].to_list()}

    def get(self, namespace: str, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored vectors of those ``keys`` that are in ``namespace``."""
        wanted = set(keys)
        parts = self._parts(namespace)
        found: dict[str, np.ndarray] = {}
        if parts and wanted:
            frame = pl.concat([pl.read_parquet(p) for p in parts]).filter(
                pl.col("key").is_in(list(wanted)))
            vectors = np.asarray(frame["vector"].to_list(), dtype=np.float32)
            found = dict(zip(frame["key"].to_list(), vectors, strict=True))
        self.stats.hits += len(found)
        self.stats.misses += len(wanted) - len(found)
        return found

    def put(self, namespace: str, keys: list[str], vectors: np.ndarray) -> None:
        """Store one vector (any shape, kept flat) per key."""
        folder = self.folder / namespace
        folder.mkdir(parents=True, exist_ok=True)
        (self.folder / CACHE_MARK).touch()
        flat = np.asarray(vectors, dtype=np.float32).reshape(len(keys), -1)
        frame = pl.DataFrame({"key": keys, "vector": list(flat)})
        name = f"part-{uuid.uuid4().hex}.parquet"
        temporary = folder / f".{name}.tmp"
        frame.write_parquet(temporary)
        os.replace(temporary, folder / name)
        self.stats.stored += len(keys)
