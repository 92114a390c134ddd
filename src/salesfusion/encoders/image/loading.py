"""Safe image loading: any common format and size, EXIF orientation, grayscale/palette/alpha
to RGB, paths confined to the dataset's image root."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# PIL refuses to decode absurdly large images (decompression bombs) with an error we mask.
Image.MAX_IMAGE_PIXELS = 100_000_000


def resolve_inside(root: Path, reference: str) -> Path:
    """The file ``reference`` names, which must lie inside ``root`` (no ``..`` escapes, no
    absolute paths elsewhere, no symlinks pointing out)."""
    root = root.resolve()
    path = (root / reference).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"image path '{reference}' is outside the image root {root}")
    return path


def file_key(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_rgb(path: Path) -> Image.Image:
    """Decode an image as RGB, applying its EXIF orientation; transparency becomes white."""
    with Image.open(path) as raw:
        raw.load()
        image = ImageOps.exif_transpose(raw)
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def center_crop_array(image: Image.Image, size: int, resize: int | None = None) -> np.ndarray:
    """Resize the shorter side to ``resize`` (default ``size * 256 / 224``), centre-crop to
    ``size``; returns HWC float32 in [0, 1]."""
    resize = resize or round(size * 256 / 224)
    width, height = image.size
    scale = resize / min(width, height)
    image = image.resize((max(size, round(width * scale)), max(size, round(height * scale))),
                         Image.Resampling.BILINEAR)
    width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return np.asarray(image, dtype=np.float32) / 255.0


def imagenet_tensor(image: Image.Image, size: int = 224) -> np.ndarray:
    """CHW float32 normalised with the ImageNet mean and standard deviation."""
    array = (center_crop_array(image, size) - IMAGENET_MEAN) / IMAGENET_STD
    return array.transpose(2, 0, 1).copy()
