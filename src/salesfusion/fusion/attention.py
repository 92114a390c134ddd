"""Attention fusions of the seed papers."""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import nn

from salesfusion.components import FUSIONS
from salesfusion.fusion.base import Fusion, ModalityInput
from salesfusion.registry import ComponentParams


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis among ``mask`` True; all-masked rows give zeros."""
    scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return torch.nan_to_num(weights, nan=0.0)


@FUSIONS.register
class HierarchicalMMA(Fusion):
    """Seed 000 eq. 12-14. The abstract modalities (static attributes and text) are first encoded
    jointly, F_ab = [static ⊕ text] W (eq. 13), as keys and values; the image features are the
    query (eq. 12): MMA(F_h, F_ab) = softmax(F_h W_q (F_ab W_k)^T / sqrt(d)) F_ab W_v. Two MMA
    blocks share the same W_q, W_k, W_v ("two MMAs share attentional weights"): the second takes
    the first's output as its query, refining the image-conditioned summary. Static and text are
    kept as two key/value tokens of F_ab so that attention can weigh them and mask a missing one.
    The output joins the attended vector with the query (the image) and the joint encoding.
    """

    name = "hierarchical_mma"
    required_modalities = frozenset({"image"})

    class Params(ComponentParams):
        query: str = Field("image", description="The modality that queries the others.")
        keys: tuple[str, ...] = Field(("static", "text"), description=(
            "The modalities attended over, jointly encoded."))

    def __init__(self, dims: dict[str, int], out_dim: int, query: str = "image",
                 keys: tuple[str, ...] = ("static", "text")) -> None:
        super().__init__(dims, out_dim)
        self.query_name = query
        self.key_names = [k for k in keys if k in dims]
        d = out_dim
        self.embed = nn.ModuleDict({m: nn.Linear(dims[m], d) for m in [query, *self.key_names]})
        self.w_q, self.w_k, self.w_v = (nn.Linear(d, d, bias=False) for _ in range(3))
        self.scale = 1.0 / math.sqrt(d)
        self.extra_names = [m for m in dims if m not in (query, *self.key_names)]
        extra_width = sum(dims[m] + 1 for m in self.extra_names)
        self.output = nn.Sequential(nn.Linear(3 * d + 1 + extra_width, out_dim), nn.ReLU())
        self.last_attention: torch.Tensor | None = None

    def _mma(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = (self.w_q(query)[:, None, :] * self.w_k(keys)).sum(-1) * self.scale
        weights = _masked_softmax(scores, mask)
        self.last_attention = weights.detach()
        return (weights[..., None] * self.w_v(keys)).sum(1)

    def forward(self, inputs: dict[str, ModalityInput]) -> torch.Tensor:
        image = inputs[self.query_name]
        keys = torch.stack([self.embed[m](inputs[m].pooled()) for m in self.key_names], dim=1)
        mask = torch.stack([inputs[m].present for m in self.key_names], dim=1)
        joint = (keys * mask[..., None].float()).sum(1) / mask.float().sum(1, keepdim=True
                                                                           ).clamp(min=1.0)
        query = self.embed[self.query_name](image.pooled())
        # Without an image the joint encoding itself asks the question.
        query = torch.where(image.present[:, None], query, joint)
        first = self._mma(query, keys, mask)
        second = self._mma(first, keys, mask)
        fused = self.output(torch.cat([second, query, joint, image.present.float()[:, None],
                                       *_extras(self.extra_names, inputs)], dim=1))
        return self._fill_empty(fused, inputs)


@FUSIONS.register
class BidirectionalAttention(Fusion):
    """Seeds 003/004 eq. 1-3: text->image and image->text attention from inner products.

    Words v_i^T (text tokens) and image elements v_j^I are projected to a common width; eq. 1
    normalises e_ij = v_i^T . v_j^I over image elements, eq. 2 over words. Eq. 3 as printed sums
    alpha^{T->I}_ij v_i^T, which reduces to the plain sum of the word vectors (the weights of each
    word sum to 1), so, as the text around it intends, each side here aggregates the *other*
    modality's vectors: sum_j alpha^{T->I}_ij v_j^I (image seen by word i) and
    sum_i alpha^{I->T}_ji v_i^T (text seen by image element j), averaged over the attending
    positions and added. With a missing modality the other one passes through alone. Any other
    modality given (static attributes) is joined to the result before the output layer.
    """

    name = "bidirectional"
    required_modalities = frozenset({"text", "image"})

    class Params(ComponentParams):
        text: str = Field("text", description="The modality read as the token sequence.")
        image: str = Field("image", description="The modality read as the image regions.")

    def __init__(self, dims: dict[str, int], out_dim: int, text: str = "text",
                 image: str = "image") -> None:
        super().__init__(dims, out_dim)
        self.text_name, self.image_name = text, image
        self.text_proj = nn.Linear(dims[text], out_dim)
        self.image_proj = nn.Linear(dims[image], out_dim)
        self.extra_names = [m for m in dims if m not in (text, image)]
        extra_width = sum(dims[m] + 1 for m in self.extra_names)
        self.output = nn.Sequential(nn.Linear(out_dim + extra_width, out_dim), nn.ReLU())
        self.last_attention: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, inputs: dict[str, ModalityInput]) -> torch.Tensor:
        text_values, text_mask = inputs[self.text_name].tokens()
        image_values, image_mask = inputs[self.image_name].tokens()
        words = self.text_proj(text_values)
        elements = self.image_proj(image_values)
        scores = words @ elements.transpose(1, 2) / math.sqrt(words.shape[-1])
        text_to_image = _masked_softmax(scores, image_mask[:, None, :])  # eq. 1
        image_to_text = _masked_softmax(scores.transpose(1, 2), text_mask[:, None, :])  # eq. 2
        self.last_attention = (text_to_image.detach(), image_to_text.detach())
        image_seen = _masked_mean(text_to_image @ elements, text_mask)
        text_seen = _masked_mean(image_to_text @ words, image_mask)
        both = inputs[self.text_name].present & inputs[self.image_name].present
        text_only = _masked_mean(words, text_mask)
        image_only = _masked_mean(elements, image_mask)
        fused = torch.where(both[:, None], image_seen + text_seen, text_only + image_only)
        fused = torch.cat([fused, *_extras(self.extra_names, inputs)], dim=1)
        return self._fill_empty(self.output(fused), inputs)


def _extras(names: list[str], inputs: dict[str, ModalityInput]) -> list[torch.Tensor]:
    """Modalities an attention fusion does not attend over, joined as [pooled * present,
    present] so that no signal given to the model is dropped."""
    parts = []
    for name in names:
        present = inputs[name].present.float()[:, None]
        parts += [inputs[name].pooled() * present, present]
    return parts


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.float().unsqueeze(-1)
    return (values * weights).sum(1) / weights.sum(1).clamp(min=1.0)
