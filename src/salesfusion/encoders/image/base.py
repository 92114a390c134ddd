"""Shared behaviour of image encoders: references are paths inside the image root; a missing,
unreadable, corrupt or oversized file is masked with its reason, never a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from salesfusion.encoders.base import Encoder
from salesfusion.encoders.image.loading import file_key, imagenet_tensor, read_rgb, resolve_inside


class ImageEncoder(Encoder):
    modality = "image"
    input_size = 224

    def __init__(self, image_root: str | Path = ".", **params: Any) -> None:
        super().__init__(**params)
        self.image_root = Path(image_root)

    def prepare_key(self, item: Any) -> tuple[str | None, str | None]:
        if item is None or (isinstance(item, str) and not item.strip()):
            return None, "missing"
        try:
            path = resolve_inside(self.image_root, str(item))
        except ValueError as exc:
            return None, str(exc)
        if not path.is_file():
            return None, f"file not found: {item}"
        return file_key(path), None

    def load_input(self, item: Any) -> Any:
        return self.preprocess(read_rgb(resolve_inside(self.image_root, str(item))))

    def preprocess(self, image: Any) -> np.ndarray:
        return imagenet_tensor(image, self.input_size)


class TorchImageEncoder(ImageEncoder):
    """A frozen torch backbone whose ``features`` method gives pooled feature vectors."""

    def network(self) -> torch.nn.Module:
        raise NotImplementedError

    def encode_batch(self, inputs: list[Any]) -> np.ndarray:
        network = self.network()
        with torch.inference_mode():
            batch = torch.from_numpy(np.stack(inputs))
            return network.features(batch).numpy()
