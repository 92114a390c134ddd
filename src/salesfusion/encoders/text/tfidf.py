"""TF-IDF + truncated SVD: the fast, dependency-light text fallback, fitted on the corpus."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from salesfusion.encoders.base import Encoder
from salesfusion.encoders.registry import register_encoder
from salesfusion.errors import InputError


@register_encoder
class TfidfEncoder(Encoder):
    name = "tfidf"
    modality = "text"
    needs_fit = True
    default_params: ClassVar[dict[str, Any]] = {"dim": 64, "ngram_max": 2, "seed": 0}

    @property
    def dim(self) -> int:
        return int(self.params["dim"])

    def fit(self, inputs: Sequence[Any]) -> Self:
        corpus = [str(t) for t in inputs if t is not None and str(t).strip()]
        if not corpus:
            raise InputError("encoder 'tfidf' needs a non-empty text corpus to fit on")
        self._vectorizer = TfidfVectorizer(ngram_range=(1, int(self.params["ngram_max"])),
                                           sublinear_tf=True, min_df=1)
        matrix = self._vectorizer.fit_transform(corpus)
        # SVD rank is bounded by the vocabulary and corpus size of small catalogues.
        rank = max(1, min(self.dim, matrix.shape[1] - 1, matrix.shape[0] - 1))
        self._svd = TruncatedSVD(n_components=rank, random_state=int(self.params["seed"]))
        self._svd.fit(matrix)
        digest = hashlib.sha256("\x1f".join(sorted(set(corpus))).encode()).hexdigest()
        self._fitted_state = f"corpus:{digest}"
        return self

    def encode_batch(self, inputs: list[Any]) -> np.ndarray:
        if not self._fitted_state:
            raise InputError("encoder 'tfidf' is not fitted; call fit(corpus) first")
        reduced = normalize(self._svd.transform(self._vectorizer.transform(
            [str(t) for t in inputs])))
        out = np.zeros((len(inputs), self.dim), dtype=np.float32)
        out[:, : reduced.shape[1]] = reduced
        return out
