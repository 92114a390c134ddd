"""The encoder interface: turns one modality of many items into vectors (or sequences of
vectors), with a validity mask instead of zeros pretending to be data."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

import numpy as np

from salesfusion.registry import merged_params

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

    def encode(self, inputs: Sequence[Any], batch_size: int = 64, cache: Any = None,
               progress: bool = False) -> Encoded:
        """Encode inputs, masking missing ones; uses ``cache`` (an ``EmbeddingCache``) when
        given so that content seen before is not encoded again."""
        from salesfusion.encoders.cache import encode_with_cache

        return encode_with_cache(self, list(inputs), batch_size=batch_size, cache=cache,
                                 progress=progress)
