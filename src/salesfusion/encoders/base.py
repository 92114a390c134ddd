"""The encoder interface: turns one modality of many items into vectors (or sequences of
vectors), with a validity mask instead of zeros pretending to be data."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from salesfusion.registry import merged_params

if TYPE_CHECKING:
    from salesfusion.encoders.cache import EmbeddingCache

Modality = Literal["text", "image", "static"]


@dataclass
class Encoded:
    """Encoder output for n inputs: ``vectors`` is (n, dim) or (n, length, dim) for sequence
    encoders, ``mask`` (n,) is False where the input was missing or unreadable (its vector is 0
    and must not be read as data), ``problems`` maps input index to the reason it was masked.
    Sequence encoders also give ``token_mask`` (n, length)."""

    vectors: np.ndarray
    mask: np.ndarray
    problems: dict[int, str] = field(default_factory=dict)
    token_mask: np.ndarray | None = None
    cache_hits: int = 0
    unique: int = 0  # distinct usable contents among the inputs

    @property
    def masked(self) -> int:
        return int((~self.mask).sum())


class Encoder(ABC):
    """Base class. Subclasses set ``name``, ``modality`` and the capability flags, and implement
    ``_encode_batch`` (valid inputs only; missing ones are masked before)."""

    name: ClassVar[str]
    modality: ClassVar[Modality]
    output: ClassVar[Literal["vector", "sequence"]] = "vector"
    trainable: ClassVar[bool] = False  # can be fine-tuned end to end inside a model
    needs_fit: ClassVar[bool] = False  # learns from the dataset's own corpus first
    default_params: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = merged_params("encoder", self.name, self.default_params,
                                                    params)
        self._fitted_state = ""

    @property
    @abstractmethod
    def dim(self) -> int: ...

    def fit(self, inputs: Sequence[Any]) -> Self:
        """Learn from a corpus (encoders with ``needs_fit``); a no-op for pretrained ones."""
        return self

    def weights_identity(self) -> str:
        """What identifies the weights (a file hash, or the fitted state): part of cache keys."""
        return self._fitted_state

    def version(self) -> str:
        """Cache key part: changes whenever the encoder would give different vectors."""
        payload = json.dumps({"name": self.name, "params": self.params,
                              "weights": self.weights_identity()}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:20]

    @abstractmethod
    def _encode_batch(self, inputs: list[Any]) -> np.ndarray: ...

    def prepare_key(self, item: Any) -> tuple[str | None, str | None]:
        """(content hash, None) for a usable input, (None, reason) for a missing one."""
        if item is None or (isinstance(item, str) and not item.strip()):
            return None, "missing"
        return hashlib.sha256(str(item).encode()).hexdigest(), None

    def load_input(self, item: Any) -> Any:
        """Turn a reference into the encoder's input (images: read and decode the file).
        Raises OSError or ValueError for an unreadable input, which is then masked."""
        return item

    def output_shape(self) -> tuple[int, ...]:
        return (self.dim,)

    def cache_namespace(self) -> str:
        """Where this encoder's vectors live in an ``EmbeddingCache``: one per version."""
        return f"{self.name}/{self.version()}"

    def encode(self, inputs: Sequence[Any], batch_size: int = 64,
               cache: EmbeddingCache | None = None, progress: bool = False) -> Encoded:
        """Encode inputs, masking missing and unreadable ones. With ``cache``, content seen
        before is read from it instead of encoded again, and each new batch is stored as soon
        as it is encoded, so an interrupted run resumes where it stopped."""
        inputs = list(inputs)
        problems: dict[int, str] = {}
        keys: list[str | None] = []
        for index, item in enumerate(inputs):
            key, problem = self.prepare_key(item)
            keys.append(key)
            if problem:
                problems[index] = problem
        unique = set(keys) - {None}
        namespace = self.cache_namespace() if cache is not None else ""
        known = cache.get(namespace, unique) if cache is not None else {}
        todo: dict[str, int] = {}  # content key -> first input holding it
        for index, key in enumerate(keys):
            if key is not None and key not in known and key not in todo:
                todo[key] = index
        fresh, failed = self._encode_new(inputs, todo, batch_size, cache, namespace, progress)
        shape = self.output_shape()
        out = np.zeros((len(inputs), *shape), dtype=np.float32)
        mask = np.zeros(len(inputs), dtype=bool)
        for index, key in enumerate(keys):
            if key is None:
                continue
            if key in failed:  # a corrupt file masks every input that shares its content
                problems[index] = failed[key]
                continue
            vector = known[key] if key in known else fresh[key]
            out[index] = vector.reshape(shape)
            mask[index] = True
        token_mask = np.any(out != 0, axis=-1) if self.output == "sequence" else None
        return Encoded(vectors=out, mask=mask, problems=problems, token_mask=token_mask,
                       cache_hits=len(known), unique=len(unique))

    def _encode_new(self, inputs: list[Any], todo: dict[str, int], batch_size: int,
                    cache: EmbeddingCache | None, namespace: str,
                    progress: bool) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Encode one input per content key in ``todo``, in batches; returns the vectors by key
        and, for inputs that could not be read, why."""
        fresh: dict[str, np.ndarray] = {}
        failed: dict[str, str] = {}
        pending = list(todo.items())
        batches = [pending[i:i + batch_size] for i in range(0, len(pending), batch_size)]
        bar = _progress_bar(f"{self.name} ({self.modality})") if progress and batches else None
        task = bar.add_task("encode", total=len(pending)) if bar else None
        if bar:
            bar.start()
        try:
            for batch in batches:
                loaded, good_keys = [], []
                for key, index in batch:
                    try:
                        loaded.append(self.load_input(inputs[index]))
                        good_keys.append(key)
                    except (OSError, ValueError) as exc:
                        failed[key] = f"unreadable: {exc}".splitlines()[0][:200]
                if loaded:
                    vectors = np.asarray(self._encode_batch(loaded), dtype=np.float32)
                    fresh.update(zip(good_keys, vectors, strict=True))
                    if cache is not None:
                        cache.put(namespace, good_keys, vectors)
                if bar:
                    bar.advance(task, len(batch))
        finally:
            if bar:
                bar.stop()
        return fresh, failed


def _progress_bar(description: str) -> Progress:
    # On stderr, like every other progress display: stdout is for results.
    return Progress(TextColumn(f"[bold]{description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=Console(stderr=True))
