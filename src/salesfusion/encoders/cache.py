"""Embedding cache keyed by (encoder name, encoder version, content hash), stored as Parquet.

Each encoded batch is written as its own part file (atomically: written under a temporary name,
then renamed), so an interrupted run keeps every finished batch and the next run resumes from
there; a run over content seen before does no encoding work.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from salesfusion.encoders.base import Encoded, Encoder


class EmbeddingCache:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def _dir(self, encoder: Encoder) -> Path:
        return self.folder / encoder.name / encoder.version()

    def load(self, encoder: Encoder) -> dict[str, np.ndarray]:
        """Every cached vector of this encoder version, by content key."""
        folder = self._dir(encoder)
        parts = sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
        if not parts:
            return {}
        frame = pl.concat([pl.read_parquet(p) for p in parts])
        vectors = np.asarray(frame["vector"].to_list(), dtype=np.float32)
        return dict(zip(frame["key"].to_list(), vectors, strict=True))

    def store(self, encoder: Encoder, keys: list[str], vectors: np.ndarray) -> None:
        folder = self._dir(encoder)
        folder.mkdir(parents=True, exist_ok=True)
        flat = vectors.reshape(len(keys), -1).astype(np.float32)
        frame = pl.DataFrame({"key": keys, "vector": list(flat)})
        name = f"part-{uuid.uuid4().hex}.parquet"
        temporary = folder / f".{name}.tmp"
        frame.write_parquet(temporary)
        os.replace(temporary, folder / name)


def _progress(description: str) -> Progress:
    return Progress(TextColumn(f"[bold]{description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn())


def encode_with_cache(encoder: Encoder, inputs: list[Any], batch_size: int,
                      cache: EmbeddingCache | None, progress: bool) -> Encoded:
    from salesfusion.encoders.base import Encoded

    n = len(inputs)
    problems: dict[int, str] = {}
    keys: list[str | None] = []
    for index, item in enumerate(inputs):
        key, problem = encoder.prepare_key(item)
        keys.append(key)
        if problem:
            problems[index] = problem
    known = cache.load(encoder) if cache else {}
    hits = sum(1 for k in set(keys) if k is not None and k in known)
    todo: dict[str, int] = {}
    for index, key in enumerate(keys):
        if key is not None and key not in known and key not in todo:
            todo[key] = index
    fresh: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}  # content key -> why it could not be read
    pending = list(todo.items())
    batches = [pending[i:i + batch_size] for i in range(0, len(pending), batch_size)]
    bar = _progress(f"{encoder.name} ({encoder.modality})") if progress and batches else None
    task = bar.add_task("encode", total=len(pending)) if bar else None
    if bar:
        bar.start()
    try:
        for batch in batches:
            loaded, good_keys = [], []
            for key, index in batch:
                try:
                    loaded.append(encoder.load_input(inputs[index]))
                    good_keys.append(key)
                except (OSError, ValueError) as exc:
                    failed[key] = f"unreadable: {exc}".splitlines()[0][:200]
            if loaded:
                vectors = np.asarray(encoder._encode_batch(loaded), dtype=np.float32)
                fresh.update(zip(good_keys, vectors, strict=True))
                if cache:
                    cache.store(encoder, good_keys, vectors)
            if bar:
                bar.advance(task, len(batch))
    finally:
        if bar:
            bar.stop()
    shape = encoder.output_shape()
    out = np.zeros((n, *shape), dtype=np.float32)
    mask = np.zeros(n, dtype=bool)
    for index, key in enumerate(keys):
        if key is None:
            continue
        if key in failed:  # a corrupt file masks every input that shares its content
            problems[index] = failed[key]
            continue
        vector = known[key] if key in known else fresh[key]
        out[index] = vector.reshape(shape)
        mask[index] = True
    token_mask = np.any(out != 0, axis=-1) if encoder.output == "sequence" else None
    return Encoded(vectors=out, mask=mask, problems=problems, token_mask=token_mask,
                   cache_hits=hits, unique=len(set(keys) - {None}))
