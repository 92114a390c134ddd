"""A cheap handcrafted descriptor: an HSV colour histogram plus simple texture statistics
(gradient energy, edge density and local contrast at two scales). No weights, no training."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from PIL import Image

from salesfusion.encoders.image.base import ImageEncoder
from salesfusion.encoders.image.loading import center_crop_array
from salesfusion.encoders.registry import register_encoder

HUE_BINS, SATURATION_BINS, VALUE_BINS = 12, 3, 3


@register_encoder
class ColorTextureEncoder(ImageEncoder):
    name = "color_texture"
    input_size = 128
    default_params: ClassVar[dict[str, Any]] = {}

    @property
    def dim(self) -> int:
        return HUE_BINS * SATURATION_BINS * VALUE_BINS + 8

    def preprocess(self, image: Image.Image) -> np.ndarray:
        rgb = center_crop_array(image, self.input_size, resize=self.input_size)
        hsv = np.asarray(Image.fromarray((rgb * 255).astype(np.uint8)).convert("HSV"),
                         dtype=np.float32) / 255.0
        return np.concatenate([rgb, hsv], axis=2)

    def encode_batch(self, inputs: list[Any]) -> np.ndarray:
        return np.stack([self._describe(x) for x in inputs]).astype(np.float32)

    def _describe(self, stacked: np.ndarray) -> np.ndarray:
        rgb, hsv = stacked[..., :3], stacked[..., 3:]
        histogram, _ = np.histogramdd(
            hsv.reshape(-1, 3), bins=(HUE_BINS, SATURATION_BINS, VALUE_BINS),
            range=((0, 1), (0, 1), (0, 1)))
        histogram = histogram.ravel() / histogram.sum()
        gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        texture = []
        for step in (1, 4):
            dx = gray[:, step:] - gray[:, :-step]
            dy = gray[step:, :] - gray[:-step, :]
            magnitude = np.sqrt(dx[:-step, :] ** 2 + dy[:, :-step] ** 2)
            texture += [magnitude.mean(), magnitude.std(), (magnitude > 0.1).mean()]
        texture += [gray.std(), gray.mean()]
        return np.concatenate([histogram, np.asarray(texture, dtype=np.float32)])
