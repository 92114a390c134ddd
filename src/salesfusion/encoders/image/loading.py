"""Safe image loading: any common format and size, EXIF orientation, grayscale/palette/alpha
to RGB, paths confined to the dataset's image root.

Decoding is bounded: an image whose header claims more than ``MAX_IMAGE_PIXELS`` pixels
(width x height) is refused before any pixel is decoded, and any decoding failure (a truncated
file, a non-image, a corrupt chunk, Pillow's decompression-bomb guard) is raised as an
``UnreadableImage`` (a ``ValueError``), which the encoders turn into a masked item with the
reason, never a crash. ``MAX_IMAGE_PIXELS`` is read at each call, so a program may change it
(``salesfusion.encoders.image.loading.MAX_IMAGE_PIXELS = 150_000_000``); Pillow's own guard
(``PIL.Image.MAX_IMAGE_PIXELS``) is applied too, its warning counting as a refusal, so the
effective limit is the smaller of the two.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# Pillow's default warning limit: ~0.25 GB decoded as 24-bit RGB; larger product photos are
# rare, and the decode plus mode conversions hold several copies of the pixels at once.
MAX_IMAGE_PIXELS = 89_478_485
# Resized images larger than this many squares of the resize side (aspect ratio past 16:1) are
# cropped from the source region instead of resized whole.
MAX_RESIZED_AREA = 16


class UnreadableImage(ValueError):
    """An image that cannot or may not be decoded; the message is the reason it is masked."""


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


def read_rgb(path: Path, max_pixels: int | None = None) -> Image.Image:
    """Decode an image as RGB, applying its EXIF orientation; transparency becomes white.
    Raises ``UnreadableImage`` for an image over ``max_pixels`` (default ``MAX_IMAGE_PIXELS``)
    or one that fails to decode."""
    limit = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with warnings.catch_warnings():
            # Between Pillow's warning and error limits it would decode gigabytes with only a
            # warning: refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as raw:
                _check_size(*raw.size, limit)  # from the header, before decoding
                raw.load()
                image = ImageOps.exif_transpose(raw)
            if image.mode in ("RGBA", "LA") or (image.mode == "P"
                                                and "transparency" in image.info):
                rgba = image.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, rgba)
            return image.convert("RGB")
    except UnreadableImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        pillow_limit = Image.MAX_IMAGE_PIXELS or limit
        raise _too_large(int(claimed[1]) if claimed else None, min(limit, pillow_limit)) from None
    except OSError:
        raise  # Pillow's own message: truncated, not an image, unsupported mode
    except Exception as exc:
        # Pillow's format plugins report corrupt data with many exception types (ValueError
        # for a PPM's bad maxval, SyntaxError, struct.error, EOFError, ...): all mask the item.
        raise UnreadableImage(f"corrupt image ({type(exc).__name__}: {exc})") from None


def _check_size(width: int, height: int, limit: int) -> None:
    if width < 1 or height < 1:
        raise UnreadableImage(f"image has no pixels ({width}x{height})")
    if width * height > limit:
        raise _too_large(width * height, limit, f"{width}x{height} = ")


def _too_large(pixels: int | None, limit: int, size: str = "") -> UnreadableImage:
    claimed = f"{size}{pixels:,} pixels" if pixels is not None else "too many pixels"
    return UnreadableImage(f"image is {claimed}, over the limit of {limit:,} (MAX_IMAGE_PIXELS "
                           f"in salesfusion.encoders.image.loading); not decoded")


def center_crop_array(image: Image.Image, size: int, resize: int | None = None) -> np.ndarray:
    """Resize the shorter side to ``resize`` (default ``size * 256 / 224``), centre-crop to
    ``size``; returns HWC float32 in [0, 1]."""
    resize = resize or round(size * 256 / 224)
    width, height = image.size
    scale = resize / min(width, height)
    scaled_w, scaled_h = max(size, round(width * scale)), max(size, round(height * scale))
    left, top = (scaled_w - size) // 2, (scaled_h - size) // 2
    if scaled_w * scaled_h <= MAX_RESIZED_AREA * resize * resize:
        # The usual path, kept exactly: cached embeddings were computed by it and their keys
        # do not name the preprocessing, so another resampling would mix two in one cache.
        image = image.resize((scaled_w, scaled_h), Image.Resampling.BILINEAR)
        image = image.crop((left, top, left + size, top + size))
    else:
        # An extreme aspect ratio: resizing the whole image would blow a 1x100000 banner up to
        # 256x25600000 pixels, so resample only the source region the crop keeps.
        step_x, step_y = width / scaled_w, height / scaled_h
        box = (left * step_x, top * step_y, (left + size) * step_x, (top + size) * step_y)
        image = image.resize((size, size), Image.Resampling.BILINEAR, box=box)
    return np.asarray(image, dtype=np.float32) / 255.0


def imagenet_tensor(image: Image.Image, size: int = 224) -> np.ndarray:
    """CHW float32 normalised with the ImageNet mean and standard deviation."""
    array = (center_crop_array(image, size) - IMAGENET_MEAN) / IMAGENET_STD
    return array.transpose(2, 0, 1).copy()


def thumbnail_uri(path: Path, side: int, image_format: str = "JPEG",
                  max_pixels: int | None = None) -> str | None:
    """A ``data:`` URI of the image at ``path``, at most ``side`` pixels a side, decoded by
    ``read_rgb`` (pixel bound, EXIF orientation); None when it is missing or unreadable. Shared
    by the reports and the dashboard, which show items' photos beside their ids."""
    import base64
    import io

    try:
        image = read_rgb(path, max_pixels=max_pixels)
        image.thumbnail((side, side))
        buffer = io.BytesIO()
        image.save(buffer, format=image_format,
                   **({"quality": 80} if image_format == "JPEG" else {}))
    except (OSError, ValueError):  # missing, refused (UnreadableImage) or corrupt
        return None
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/{image_format.lower()};base64,{encoded}"
