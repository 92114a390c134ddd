"""The cross-table checks of the items' image column: what an image encoder will mask.

An item is forecast without its photo when its image cell is empty, when the path it names does
not exist under the image root, or when the file there cannot be decoded; each is counted here
so that ``data validate`` says so before a run masks them. Missing files are found by every
command (a stat per path); decoding every image is ``data validate``'s job, with the decoder the
encoders use handed in as ``read_image`` (the data layer does not decode images itself, so there
is one rule for what is readable).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl

from salesfusion.data.findings import Finding, Level, first_ids, listed
from salesfusion.data.order_fields import blank

ReadImage = Callable[[Path], object]  # raises OSError or ValueError for an unreadable image


def image_findings(items: pl.DataFrame | None, column: str, root: Path,
                   read_image: ReadImage | None = None) -> list[Finding]:
    """Findings about ``items``' ``image`` role (its own name ``column``), whose paths are
    relative to ``root``."""
    if items is None or "image" not in items.columns:
        return []
    root = root.resolve()
    empty = items.filter(blank("image", items.schema["image"]))
    found = []
    if empty.height:
        first = first_ids(empty["item_id"])
        found.append(Finding("warning", "empty_images", empty.height, first,
                             f"{empty.height} of {items.height} item(s) have an empty image "
                             f"cell in column '{column}' (first: {listed(first)}); they are "
                             f"forecast without an image"))
    paths = items.filter(~blank("image", items.schema["image"]))["image"].to_list()
    present = {p: path for p in paths if (path := _inside_and_present(root, p)) is not None}
    missing = [p for p in paths if p not in present]
    if missing:
        first = first_ids(missing)
        level: Level = "error" if len(missing) == len(paths) else "warning"
        found.append(Finding(level, "missing_images", len(missing), first,
                             f"{len(missing)} of {len(paths)} image path(s) do not exist under "
                             f"the image root {root} (first: {listed(first)})"
                             + ("; check 'image_root' in the spec" if level == "error"
                                else "; those images are masked")))
    if read_image is not None:
        found += _unreadable(paths, present, read_image)
    return found


def _unreadable(paths: list[str], present: dict[str, Path],
                read_image: ReadImage) -> list[Finding]:
    reasons: dict[str, str] = {}
    for reference, path in present.items():
        try:
            read_image(path)
        except (OSError, ValueError) as exc:
            reasons[reference] = " ".join(str(exc).split()) or type(exc).__name__
    bad = [p for p in paths if p in reasons]  # per item, as the encoders mask them
    if not bad:
        return []
    first = first_ids(bad)
    shown = listed(first_ids(f"{p} ({reasons[p]})" for p in dict.fromkeys(bad)))
    return [Finding("warning", "unreadable_images", len(bad), first,
                    f"{len(bad)} of {len(paths)} image(s) cannot be decoded (first: {shown}); "
                    f"those images are masked")]


def _inside_and_present(root: Path, reference: str) -> Path | None:
    path = (root / reference).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None
