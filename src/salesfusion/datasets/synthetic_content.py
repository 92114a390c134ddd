"""The synthetic shop's product content: each item's rendered image and its description.

Split from ``datasets.synthetic``; both draw from the generator they are given, in the order
``generate`` calls them, so a shop's images and texts depend only on its seed.
"""

from __future__ import annotations

import numpy as np
from PIL import ImageDraw


def render(draw: ImageDraw.ImageDraw, size: int, shape: str, colour: tuple, pattern: str,
           rng: np.random.Generator) -> None:
    """Draw the item: a ``shape`` of ``colour`` with a white ``pattern``, slightly jittered."""
    margin = int(size * rng.uniform(0.12, 0.22))
    box = [margin + int(rng.integers(-3, 4)), margin + int(rng.integers(-3, 4)),
           size - margin, size - margin]
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])],
                     fill=colour)
    ink = (255, 255, 255)
    if pattern == "stripes":
        for x in range(box[0], box[2], max(3, size // 12)):
            draw.line([(x, box[1]), (x, box[3])], fill=ink, width=max(1, size // 40))
    elif pattern == "dots":
        step = max(4, size // 8)
        radius = max(1, size // 40)
        for x in range(box[0] + step // 2, box[2], step):
            for y in range(box[1] + step // 2, box[3], step):
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=ink)


def describe(tier: str, category: str, material: str, rng: np.random.Generator) -> str:
    """A short description naming the tier (with the title, the only place the tier is)."""
    openers = ["A", "This", "Our"]
    closers = ["for every day", "made to last", "for home and travel", "a favourite gift"]
    return (f"{rng.choice(openers)} {tier} {material} {category}, "
            f"{rng.choice(closers)}. {tier.capitalize()} quality {category}.")
