"""Review texts as past-only covariates: the mean embedding of each period's reviews, reduced.

A panel whose spec sets ``reviews.text_embedding`` carries its review texts (``data.reviews``,
``Panel.review_texts``). A model fitting on it turns them into the channels
``review_text_1..dims`` of one more covariate table (keyed like the reviews), which every
covariate-reading model then reads like the review count and rating:

- each review text is encoded by the spec's pretrained text encoder (minilm, e5), through the
  embedding cache, so a backtest encodes a text once;
- the vectors are averaged per (item, market when the reviews name it, period);
- the averages are projected on their ``dims`` principal axes, fitted (``ReviewTextProjection``)
  on the periods the model trains on only, so that no review written after a forecast origin
  shapes the features read at it. A period without reviews holds null, which consumers read as
  the last reviewed period's value (``features.covariate_cube`` carries past-only channels
  forward, as it does the mean rating).

The projection is state of the model (saved with it), so a forecast made later from a new
history reads the channels through the axes the model was trained on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from salesfusion.data.covariate_tables import CovariateTable
from salesfusion.data.panel import Panel
from salesfusion.data.reviews import ReviewTexts
from salesfusion.encoders.cache import DEFAULT_CACHE, EmbeddingCache
from salesfusion.encoders.registry import create_encoder, encoder_class, registered_encoders
from salesfusion.errors import InputError

STATE_FILE = "review_text.json"
_FORMAT = 1


def review_text_channels(dims: int) -> list[str]:
    return [f"review_text_{index}" for index in range(1, dims + 1)]


def _pretrained_text_encoders() -> list[str]:
    return [name for name in registered_encoders("text")
            if encoder_class(name).output == "vector" and not encoder_class(name).needs_fit]


def _period_means(texts: ReviewTexts, encoder_name: str) -> tuple[pl.DataFrame, np.ndarray]:
    """(the (keys, period) rows, their mean review vectors)."""
    if encoder_name not in _pretrained_text_encoders():
        raise InputError(f"{texts.source}: text_embedding.encoder '{encoder_name}' is not a "
                         f"pretrained text encoder; use one of "
                         f"{', '.join(_pretrained_text_encoders())}")
    encoder = create_encoder(encoder_name)
    distinct = texts.frame["text"].unique(maintain_order=True)
    encoded = encoder.encode(distinct.to_list(), cache=EmbeddingCache(DEFAULT_CACHE))
    vectors = np.where(encoded.mask[:, None], encoded.vectors, np.nan)
    index = pl.DataFrame({"text": distinct, "row": np.arange(len(distinct))})
    rows = texts.frame.join(index, on="text", how="left")
    groups = rows.group_by(texts.keys, maintain_order=True).agg("row").sort(texts.keys)
    means = np.stack([np.nanmean(vectors[np.asarray(members)], axis=0)
                      for members in groups["row"].to_list()]) if groups.height else \
        np.empty((0, vectors.shape[1]))
    keep = np.isfinite(means).all(axis=1)  # a period whose every text failed to encode
    return groups.drop("row").filter(pl.Series(keep)), means[keep]


@dataclass(frozen=True)
class ReviewTextProjection:
    """The principal axes of a training panel's period-mean review vectors (see the module
    docstring): ``centre`` (dim,) and ``axes`` (dims, dim); axes beyond the rank of the
    training reviews are zero, so every model reads the same ``dims`` channels."""

    encoder: str
    centre: np.ndarray
    axes: np.ndarray

    @property
    def channels(self) -> list[str]:
        return review_text_channels(len(self.axes))

    @classmethod
    def fit(cls, texts: ReviewTexts, until: Any) -> ReviewTextProjection:
        """Fitted on the reviews of periods up to ``until`` (the training panel's last)."""
        embedding = texts.embedding
        keys, means = _period_means(texts, embedding.encoder)
        train = means[(keys["timestamp"] <= until).to_numpy()]
        dim = means.shape[1]
        centre = train.mean(axis=0) if len(train) else np.zeros(dim)
        axes = np.zeros((embedding.dims, dim))
        if len(train) > 1:
            _, spread, right = np.linalg.svd(train - centre, full_matrices=False)
            # Only the axes the training reviews span (numpy's matrix_rank tolerance, at the
            # float32 precision encoders give): a null axis would be rounding noise.
            tolerance = spread[0] * max(train.shape) * np.finfo(np.float32).eps
            rank = int((spread > tolerance).sum()) if spread[0] > 0 else 0
            found = right[: min(rank, embedding.dims)]
            # An axis's sign is arbitrary: fix it so a refit on the same reviews reads the same.
            signs = np.sign(found[np.arange(len(found)), np.abs(found).argmax(axis=1)])
            axes[: len(found)] = found * signs[:, None]
        return cls(encoder=embedding.encoder, centre=centre, axes=axes)

    def table(self, texts: ReviewTexts, panel: pl.DataFrame) -> CovariateTable:
        """The channels over the ``panel`` rows (dense, null where a period has no review)."""
        keys, means = _period_means(texts, self.encoder)
        if means.shape[1] != len(self.centre):
            raise InputError(f"{texts.source}: encoder '{self.encoder}' now gives vectors of "
                             f"{means.shape[1]} values; the model was trained with "
                             f"{len(self.centre)}")
        scores = (means - self.centre) @ self.axes.T
        values = keys.with_columns(pl.Series(name, scores[:, index])
                                   for index, name in enumerate(self.channels))
        frame = (panel.select(texts.keys).unique().join(values, on=list(texts.keys), how="left")
                 .sort(texts.keys))
        return CovariateTable(frame=frame, keys=texts.keys, channels=tuple(self.channels),
                              source=f"{texts.source}, texts through {self.encoder}")

    def save(self, folder: Path) -> None:
        (folder / STATE_FILE).write_text(json.dumps({
            "format": _FORMAT, "encoder": self.encoder, "centre": self.centre.tolist(),
            "axes": self.axes.tolist()}))

    @classmethod
    def load(cls, folder: Path) -> ReviewTextProjection:
        state = json.loads((folder / STATE_FILE).read_text())
        if state.get("format") != _FORMAT:
            raise InputError(f"{folder / STATE_FILE}: review-text state format "
                             f"{state.get('format')!r}; this version reads {_FORMAT}")
        return cls(encoder=state["encoder"], centre=np.asarray(state["centre"], dtype=float),
                   axes=np.asarray(state["axes"], dtype=float))


def fit_review_text(panel: Panel) -> ReviewTextProjection | None:
    """The projection of ``panel``'s review texts (None when it carries none)."""
    if panel.review_texts is None:
        return None
    return ReviewTextProjection.fit(panel.review_texts, panel.data["timestamp"].max())


def with_review_text(panel: Panel, projection: ReviewTextProjection | None,
                     model: str) -> Panel:
    """``panel`` with the review-text channels of ``projection`` added (and its raw texts
    dropped); unchanged when they are there already. ``model`` names the model in errors."""
    if projection is None:
        return panel if panel.review_texts is None else replace(panel, review_texts=None)
    if set(projection.channels) <= set(panel.past_only):
        return replace(panel, review_texts=None)
    if panel.review_texts is None:
        raise InputError(f"model '{model}' was trained with review-text channels "
                         f"({', '.join(projection.channels)}); this history has no review "
                         f"texts: build it from a spec whose reviews table sets "
                         f"text_embedding")
    table = projection.table(panel.review_texts, panel.data)
    return replace(panel, covariate_tables=[*panel.covariate_tables, table],
                   past_only=[*panel.past_only, *projection.channels], review_texts=None)
