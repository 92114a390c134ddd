"""Static attributes: categorical embeddings plus numeric features through the projection of
seed 000 eq. 8 (m' = ReLU(w^T m + b)).

``StaticVocabulary`` learns the category levels and numeric scaling on the training items; at
prediction time an unseen or missing category maps to the reserved index 0 and a missing number to
the training mean (0 after scaling), so new products still get a representation.
``StaticAttributeEncoder`` is the trainable torch module used inside models; the registered
``static`` encoder gives its fixed input (one-hot levels + scaled numbers) for probes and
non-neural models.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np
import polars as pl
import torch
from torch import nn

from salesfusion.encoders.base import Encoder
from salesfusion.encoders.registry import register_encoder
from salesfusion.errors import InputError

UNSEEN = 0


class StaticVocabulary:
    def __init__(self, categorical: Sequence[str], numeric: Sequence[str]) -> None:
        self.categorical = list(categorical)
        self.numeric = list(numeric)
        self.levels: dict[str, dict[str, int]] = {}
        self.mean: dict[str, float] = {}
        self.std: dict[str, float] = {}

    def fit(self, items: pl.DataFrame) -> Self:
        missing = [c for c in [*self.categorical, *self.numeric] if c not in items.columns]
        if missing:
            raise InputError(f"static attributes {missing} are not columns of the items table "
                             f"({items.columns})")
        for column in self.categorical:
            values = sorted(v for v in items[column].cast(pl.Utf8).unique().to_list()
                            if v is not None)
            self.levels[column] = {v: i + 1 for i, v in enumerate(values)}
        for column in self.numeric:
            values = items[column].cast(pl.Float64)
            self.mean[column] = float(values.mean() or 0.0)
            self.std[column] = float(values.std() or 1.0) or 1.0
        return self

    def cardinalities(self) -> list[int]:
        """Embedding table sizes, the reserved index included."""
        return [len(self.levels[c]) + 1 for c in self.categorical]

    def transform(self, items: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(category codes (n, C) int64, scaled numbers (n, N) float32)."""
        codes = np.stack([items[c].cast(pl.Utf8).replace_strict(
            self.levels[c], default=UNSEEN, return_dtype=pl.Int64).to_numpy()
            for c in self.categorical], axis=1) if self.categorical \
            else np.zeros((items.height, 0), dtype=np.int64)
        numbers = np.stack([((items[c].cast(pl.Float64) - self.mean[c]) / self.std[c])
                            .fill_null(0.0).fill_nan(0.0).to_numpy()
                            for c in self.numeric], axis=1) if self.numeric \
            else np.zeros((items.height, 0))
        return codes.astype(np.int64), numbers.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"categorical": self.categorical, "numeric": self.numeric, "levels": self.levels,
                "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StaticVocabulary:
        vocabulary = cls(data["categorical"], data["numeric"])
        vocabulary.levels, vocabulary.mean, vocabulary.std = (data["levels"], data["mean"],
                                                              data["std"])
        return vocabulary


class StaticAttributeEncoder(nn.Module):
    """Embeds each categorical attribute, joins the scaled numbers, then eq. 8."""

    def __init__(self, cardinalities: Sequence[int], n_numeric: int, out_dim: int = 32) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(
            nn.Embedding(size, min(16, (size + 1) // 2 + 1)) for size in cardinalities)
        width = sum(e.embedding_dim for e in self.embeddings) + n_numeric
        self.projection = nn.Linear(max(width, 1), out_dim)
        self.activation = nn.ReLU()
        self.out_dim = out_dim

    def forward(self, codes: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        return self.project(self.embed(codes, numbers))

    def embed(self, codes: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        """The joined embeddings and numbers (B, width): the continuous input an attribution
        varies; ``spans`` says which columns belong to which attribute."""
        parts = [embedding(codes[:, i]) for i, embedding in enumerate(self.embeddings)]
        joined = torch.cat([*parts, numbers], dim=1)
        if joined.shape[1] == 0:
            joined = torch.zeros(codes.shape[0], 1, device=codes.device)
        return joined

    def project(self, joined: torch.Tensor) -> torch.Tensor:
        return self.activation(self.projection(joined))

    def spans(self, vocabulary: StaticVocabulary) -> dict[str, slice]:
        """Columns of ``embed``'s output per attribute (an embedding's columns sum back to one
        value per categorical variable)."""
        out, start = {}, 0
        for name, embedding in zip(vocabulary.categorical, self.embeddings, strict=True):
            out[name] = slice(start, start + embedding.embedding_dim)
            start += embedding.embedding_dim
        for name in vocabulary.numeric:
            out[name] = slice(start, start + 1)
            start += 1
        return out


@register_encoder
class StaticInputEncoder(Encoder):
    """One-hot category levels (column 0 of each block: unseen) and scaled numbers; inputs are
    item rows as dicts."""

    name = "static"
    modality = "static"
    needs_fit = True
    default_params: ClassVar[dict[str, Any]] = {"categorical": [], "numeric": []}

    @property
    def dim(self) -> int:
        return sum(self.vocabulary.cardinalities()) + len(self.vocabulary.numeric)

    def fit(self, inputs: Sequence[Any]) -> Self:
        frame = pl.DataFrame(list(inputs))
        self.vocabulary = StaticVocabulary(self.params["categorical"],
                                           self.params["numeric"]).fit(frame)
        self._fitted_state = hashlib.sha256(json.dumps(self.vocabulary.to_dict(),
                                                       sort_keys=True).encode()).hexdigest()[:20]
        return self

    def prepare_key(self, item: Any) -> tuple[str | None, str | None]:
        if not item:
            return None, "missing"
        return hashlib.sha256(json.dumps(item, sort_keys=True, default=str).encode()
                              ).hexdigest(), None

    def encode_batch(self, inputs: list[Any]) -> np.ndarray:
        codes, numbers = self.vocabulary.transform(pl.DataFrame(inputs))
        blocks = [np.eye(size, dtype=np.float32)[codes[:, i]]
                  for i, size in enumerate(self.vocabulary.cardinalities())]
        return np.concatenate([*blocks, numbers], axis=1)
