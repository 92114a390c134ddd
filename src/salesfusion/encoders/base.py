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

# A registered content modality (``encoders.modalities``: text, image, ...) or static.
Modality = str


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


@dataclass
class EncodingPlan:
    """What encoding some inputs takes (``Encoder.plan``): each input's content key (None for
    a missing one), why inputs are masked so far, the vectors the cache already holds and the
    contents left to encode."""

    inputs: list[Any]
    keys: list[str | None]
    problems: dict[int, str]
    unique: int  # distinct usable contents
    known: dict[str, np.ndarray]
    todo: dict[str, int]  # content key -> first input holding it
    namespace: str  # the cache namespace ("" without a cache)


class Encoder(ABC):
    """Base class. Subclasses set ``name``, ``modality`` and the capability flags, and implement
    ``encode_batch`` (valid inputs only; missing ones are masked before)."""

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
    def encode_batch(self, inputs: list[Any]) -> np.ndarray: ...

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
        plan = self.plan(inputs, cache)
        fresh, failed = self._encode_new(plan, batch_size, cache, progress)
        return self.assemble(plan, fresh, failed)

    def plan(self, inputs: Sequence[Any], cache: EmbeddingCache | None = None) -> EncodingPlan:
        """Content keys, the problems of missing inputs, what ``cache`` already holds and the
        contents left to encode: what every way of encoding (local, ``encode_with_ray``)
        starts from."""
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
        width = int(np.prod(self.output_shape()))
        known = cache.get(namespace, unique, width) if cache is not None else {}
        todo: dict[str, int] = {}
        for index, key in enumerate(keys):
            if key is not None and key not in known and key not in todo:
                todo[key] = index
        return EncodingPlan(inputs, keys, problems, len(unique), known, todo, namespace)

    def assemble(self, plan: EncodingPlan, fresh: dict[str, np.ndarray],
                 failed: dict[str, str]) -> Encoded:
        """The ``Encoded`` of the planned inputs, given the vectors of the contents that were
        encoded (``fresh``) and why the others could not be read (``failed``)."""
        problems = dict(plan.problems)
        shape = self.output_shape()
        out = np.zeros((len(plan.inputs), *shape), dtype=np.float32)
        mask = np.zeros(len(plan.inputs), dtype=bool)
        for index, key in enumerate(plan.keys):
            if key is None:
                continue
            if key in failed:  # a corrupt file masks every input that shares its content
                problems[index] = failed[key]
                continue
            vector = plan.known[key] if key in plan.known else fresh[key]
            out[index] = vector.reshape(shape)
            mask[index] = True
        token_mask = np.any(out != 0, axis=-1) if self.output == "sequence" else None
        return Encoded(vectors=out, mask=mask, problems=problems, token_mask=token_mask,
                       cache_hits=len(plan.known), unique=plan.unique)

    def encode_contents(self, keys: list[str], items: list[Any]
                        ) -> tuple[list[str], np.ndarray, dict[str, str]]:
        """One batch: load each item and encode those that could be read. Returns their keys,
        their vectors, and why each of the others could not be read."""
        loaded, good_keys = [], []
        failed: dict[str, str] = {}
        for key, item in zip(keys, items, strict=True):
            try:
                loaded.append(self.load_input(item))
                good_keys.append(key)
            except (OSError, ValueError) as exc:
                failed[key] = f"unreadable: {exc}".splitlines()[0][:200]
        if not loaded:
            return [], np.zeros((0, *self.output_shape()), dtype=np.float32), failed
        return good_keys, np.asarray(self.encode_batch(loaded), dtype=np.float32), failed

    def _encode_new(self, plan: EncodingPlan, batch_size: int, cache: EmbeddingCache | None,
                    progress: bool) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Encode one input per content key in ``plan.todo``, in batches; returns the vectors
        by key and, for inputs that could not be read, why."""
        fresh: dict[str, np.ndarray] = {}
        failed: dict[str, str] = {}
        pending = list(plan.todo.items())
        batches = [pending[i:i + batch_size] for i in range(0, len(pending), batch_size)]
        bar = _progress_bar(f"{self.name} ({self.modality})") if progress and batches else None
        task = bar.add_task("encode", total=len(pending)) if bar else None
        if bar:
            bar.start()
        try:
            for batch in batches:
                good_keys, vectors, unreadable = self.encode_contents(
                    [key for key, _ in batch], [plan.inputs[index] for _, index in batch])
                failed.update(unreadable)
                if good_keys:
                    fresh.update(zip(good_keys, vectors, strict=True))
                    if cache is not None:
                        cache.put(plan.namespace, good_keys, vectors)
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
