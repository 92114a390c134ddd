"""Items as a planner knows them: an id with its product title and, where the items table names
an image, a small thumbnail embedded in the page as a JPEG data URI.

Images are read only through the safe loader (``encoders.image.loading``): paths confined to the
panel's image root, decoding bounded. An image that is missing, outside the root or unreadable
simply has no thumbnail; a report never fails over a picture."""

from __future__ import annotations

import html
from pathlib import Path

import polars as pl

from salesfusion.encoders.image.loading import resolve_inside, thumbnail_uri
from salesfusion.encoders.inputs import title_column

THUMBNAIL_PX = 64
# A thumbnail's decode is bounded well below the encoders' limit: a report shows dozens of
# items and must not stall on one huge photograph.
THUMBNAIL_MAX_PIXELS = 25_000_000


class ItemCatalogue:
    """Titles and thumbnails of the items of one panel, each thumbnail made once on demand."""

    def __init__(self, items: pl.DataFrame | None, image_root: Path | None) -> None:
        self._titles: dict[str, str] = {}
        self._images: dict[str, str] = {}
        if items is not None and "item_id" in items.columns:
            for column, target in ((title_column(items), self._titles),
                                   ("image", self._images)):
                if column in items.columns:
                    pairs = items.select(pl.col("item_id").cast(pl.Utf8),
                                         pl.col(column).cast(pl.Utf8)).drop_nulls()
                    target.update(pairs.unique("item_id", keep="first").iter_rows())
        # Without an image root there is nowhere image paths may safely point: no thumbnails.
        self._root = image_root
        self._thumbnails: dict[str, str | None] = {}

    def title(self, item: str) -> str:
        return self._titles.get(item, "")

    def label(self, item: str) -> str:
        """Plain text, for plot titles: ``id: title`` (the id alone when untitled)."""
        title = self.title(item)
        return f"{item}: {title}" if title else item

    def thumbnail(self, item: str) -> str | None:
        """A ``data:image/jpeg;base64,...`` URI of the item's image, at most
        ``THUMBNAIL_PX`` pixels a side, or None when it has no readable image."""
        if item not in self._thumbnails:
            self._thumbnails[item] = self._make_thumbnail(item)
        return self._thumbnails[item]

    def _make_thumbnail(self, item: str) -> str | None:
        reference = self._images.get(item)
        if not reference or self._root is None:
            return None
        try:
            path = resolve_inside(self._root, reference)
        except (OSError, ValueError):  # outside the root
            return None
        return thumbnail_uri(path, THUMBNAIL_PX, "JPEG", max_pixels=THUMBNAIL_MAX_PIXELS)

    def cell(self, item: str) -> str:
        """HTML for a table cell or heading: thumbnail, id in bold, then the title."""
        picture = self.thumbnail(item)
        image = f'<img src="{picture}" alt="">' if picture else ""
        title = self.title(item)
        text = f" {html.escape(title)}" if title else ""
        return f'<span class="item">{image}<span><b>{html.escape(item)}</b>{text}</span></span>'

    def with_item_cells(self, frame: pl.DataFrame, column: str = "item") -> pl.DataFrame:
        """``frame`` with its ``item_id`` column replaced, in place, by HTML item cells named
        ``column`` (render it with ``html_table(..., raw=(column,))``)."""
        cells = pl.Series(column, [self.cell(i) for i in frame["item_id"].to_list()],
                          dtype=pl.Utf8)
        position = frame.columns.index("item_id")
        return frame.drop("item_id").insert_column(position, cells)
