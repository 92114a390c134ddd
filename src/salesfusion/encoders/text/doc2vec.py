"""Doc2Vec in PV-DM mode trained on the dataset's own corpus (seed 000, section 4.1).

Every text, seen or unseen, is embedded by ``infer_vector`` so that training texts and new ones
go through the same path. Training uses one worker and a fixed, process-independent hash
function, because gensim's default (Python's salted ``hash``) makes vectors differ per process.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np
from gensim.models.doc2vec import Doc2Vec, TaggedDocument

from salesfusion.encoders.base import Encoder
from salesfusion.encoders.registry import register_encoder
from salesfusion.errors import InputError

TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def stable_hash(text: str) -> int:
    return zlib.crc32(text.encode())


@register_encoder
class Doc2VecEncoder(Encoder):
    name = "doc2vec"
    modality = "text"
    needs_fit = True
    default_params: ClassVar[dict[str, Any]] = {"dim": 64, "window": 3, "epochs": 40,
                                                "min_count": 1, "seed": 0}

    @property
    def dim(self) -> int:
        return int(self.params["dim"])

    def fit(self, inputs: Sequence[Any]) -> Self:
        corpus = [tokenize(str(t)) for t in inputs if t is not None and str(t).strip()]
        corpus = [tokens for tokens in corpus if tokens]
        if not corpus:
            raise InputError("encoder 'doc2vec' needs a non-empty text corpus to fit on")
        documents = [TaggedDocument(tokens, [i]) for i, tokens in enumerate(corpus)]
        self._model = Doc2Vec(documents, dm=1, vector_size=self.dim,
                              window=int(self.params["window"]),
                              min_count=int(self.params["min_count"]),
                              epochs=int(self.params["epochs"]), seed=int(self.params["seed"]),
                              workers=1, hashfxn=stable_hash)
        digest = hashlib.sha256("\x1f".join(" ".join(t) for t in corpus).encode()).hexdigest()
        self._fitted_state = f"corpus:{digest}"
        return self

    def encode_batch(self, inputs: list[Any]) -> np.ndarray:
        if not self._fitted_state:
            raise InputError("encoder 'doc2vec' is not fitted; call fit(corpus) first")
        out = np.zeros((len(inputs), self.dim), dtype=np.float32)
        for row, text in enumerate(inputs):
            # Reseeding per text makes inference independent of the order texts come in.
            self._model.random = np.random.RandomState(stable_hash(str(text)))
            vector = self._model.infer_vector(tokenize(str(text)))
            norm = np.linalg.norm(vector)
            out[row] = vector / norm if norm > 0 else vector
        return out
