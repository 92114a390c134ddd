"""A CLIP-style joint image-text space (seed 002) built from what works offline.

No CLIP weights can be installed here, so the joint space is learnt: two linear heads over the
frozen image encoder (EfficientNet-Lite0 by default) and the frozen text encoder (MiniLM), trained
with CLIP's symmetric contrastive loss on the catalogue's own (image, title) pairs. Heads saved by
``save_heads`` (safetensors) load back through ``weights`` with no training. What this does not
do: run OpenAI's CLIP ViT/text towers themselves; a user with those weights would need their
architectures, which are not implemented here.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from salesfusion.encoders.image.base import ImageEncoder
from salesfusion.encoders.registry import create_encoder, register_encoder
from salesfusion.errors import InputError


class ContrastiveHeads(nn.Module):
    def __init__(self, image_dim: int, text_dim: int, dim: int) -> None:
        super().__init__()
        self.image = nn.Linear(image_dim, dim)
        self.text = nn.Linear(text_dim, dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def embed_image(self, features: torch.Tensor) -> torch.Tensor:
        return functional.normalize(self.image(features), dim=-1)

    def embed_text(self, features: torch.Tensor) -> torch.Tensor:
        return functional.normalize(self.text(features), dim=-1)

    def loss(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        logits = self.logit_scale.exp().clamp(max=100) * self.embed_image(image) @ \
            self.embed_text(text).T
        target = torch.arange(len(image))
        return (functional.cross_entropy(logits, target)
                + functional.cross_entropy(logits.T, target)) / 2


@register_encoder
class ClipEncoder(ImageEncoder):
    name = "clip"
    needs_fit = True
    fits_on_pairs = True  # fit() takes (image reference, text) pairs
    default_params: ClassVar[dict[str, Any]] = {
        "image_encoder": "efficientnet_lite0", "text_encoder": "minilm", "dim": 256,
        "epochs": 60, "lr": 1e-3, "batch_size": 128, "seed": 0, "weights": None}

    def __init__(self, image_root: str | Path = ".", **params: Any) -> None:
        super().__init__(image_root=image_root, **params)
        self._image = create_encoder(self.params["image_encoder"], image_root=image_root)
        self._text = create_encoder(self.params["text_encoder"])
        self.input_size = self._image.input_size
        if self.params["weights"] is not None:
            self._load_heads(Path(self.params["weights"]))

    @property
    def dim(self) -> int:
        return int(self.params["dim"])

    def preprocess(self, image: Any) -> np.ndarray:
        return self._image.preprocess(image)

    def fit(self, inputs: Sequence[Any]) -> Self:
        if self.params["weights"] is not None:
            return self  # heads were loaded
        pairs = [(image, text) for image, text in inputs if image and text]
        if len(pairs) < 2:
            raise InputError("encoder 'clip' needs at least two (image, text) pairs to fit")
        images = self._image.encode([p[0] for p in pairs])
        texts = self._text.encode([p[1] for p in pairs])
        usable = images.mask & texts.mask
        image_features = torch.from_numpy(images.vectors[usable])
        text_features = torch.from_numpy(texts.vectors[usable])
        torch.manual_seed(int(self.params["seed"]))
        self._heads = ContrastiveHeads(self._image.dim, self._text.dim, self.dim)
        optimiser = torch.optim.AdamW(self._heads.parameters(), lr=float(self.params["lr"]))
        generator = torch.Generator().manual_seed(int(self.params["seed"]))
        batch = int(self.params["batch_size"])
        for _ in range(int(self.params["epochs"])):
            order = torch.randperm(len(image_features), generator=generator)
            for start in range(0, len(order), batch):
                chosen = order[start:start + batch]
                if len(chosen) < 2:
                    continue
                optimiser.zero_grad()
                self._heads.loss(image_features[chosen], text_features[chosen]).backward()
                optimiser.step()
        self._heads.eval()
        self._set_state()
        return self

    def _set_state(self) -> None:
        digest = hashlib.sha256()
        for tensor in self._heads.state_dict().values():
            digest.update(tensor.detach().numpy().tobytes())
        self._fitted_state = f"heads:{digest.hexdigest()[:20]}"

    def save_heads(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in self._heads.state_dict().items()}, str(path))

    def _load_heads(self, path: Path) -> None:
        from safetensors.torch import load_file

        self._heads = ContrastiveHeads(self._image.dim, self._text.dim, self.dim)
        try:
            self._heads.load_state_dict(load_file(str(path)))
        except (RuntimeError, OSError) as exc:
            raise InputError(f"{path}: not matching clip heads ({str(exc).splitlines()[0]})") \
                from exc
        self._heads.eval()
        self._set_state()

    def weights_identity(self) -> str:
        return f"{self._image.version()}/{self._text.version()}/{self._fitted_state}"

    def encode_batch(self, inputs: list[Any]) -> np.ndarray:
        if not self._fitted_state:
            raise InputError("encoder 'clip' is not fitted; call fit(pairs) or give weights")
        features = torch.from_numpy(np.asarray(self._image.encode_batch(inputs)))
        with torch.inference_mode():
            return self._heads.embed_image(features).numpy()

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Texts in the same joint space (masked texts give zero vectors)."""
        encoded = self._text.encode(list(texts))
        with torch.inference_mode():
            vectors = self._heads.embed_text(torch.from_numpy(encoded.vectors)).numpy()
        vectors[~encoded.mask] = 0.0
        return vectors
