"""Reviews over time as past-only covariates of every series.

The spec's ``reviews`` table (one row per review: roles ``item_id``, ``timestamp``, ``text``,
optionally ``rating`` and ``market``) becomes one ``CovariateTable`` (``data.covariate_tables``)
with two channels:

- ``review_count``: the reviews written in the period; 0 in a period without any;
- ``review_rating`` (only when the table maps ``rating``): the mean rating of the period's rated
  reviews. A period without a rated review holds null, which every consumer reads as the last
  known mean: ``features.covariate_cube`` carries a past-only channel's last value forward up to
  the forecast origin, as it does for a price (before a series' first rated review it reads the
  channel's average, 0 once standardised). So at an origin the channel is the mean rating of the
  latest reviewed period: what a shopper reads first on the product page.

Keys: ``(item_id, market, timestamp)`` when the table maps ``market`` (a review of the item as
sold in that market), else ``(item_id, timestamp)``: the item's reviews reach every market it sells
in. Timestamps are truncated to the panel's period, like the sales. The table is dense over the
panel's (item, market or not, period) rows, so that a period without reviews reads 0 reviews
rather than the last period's count; review rows of items, markets or periods the panel does not
have are left out (``data.crosscheck`` counts those naming unknown items or markets). Both
channels are past-only: a review is known once written, never ahead.

The texts are not encoded here: that is an encoder's work, above the data layer. With the
table's ``text_embedding`` set, ``review_texts`` keeps them per (keys, period) as
``ReviewTexts`` on the panel, and each model turns them into channels with a projection fitted
on its own training periods (``encoders.review_text``).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from salesfusion.data.columns import first_rows
from salesfusion.data.covariate_tables import CovariateTable
from salesfusion.data.frequency import truncate_to_period
from salesfusion.data.spec import ReviewsSpec, ReviewTextEmbedding
from salesfusion.errors import InputError

REVIEW_COUNT = "review_count"
REVIEW_RATING = "review_rating"


@dataclass(frozen=True)
class ReviewTexts:
    """The review texts of a panel's series: ``frame`` has the ``keys`` columns (``item_id``,
    ``market`` when the reviews name it, ``timestamp`` at period starts) and ``text``, one row
    per non-blank review, kept whole like the covariate tables; ``embedding`` says how they
    become channels; ``source`` names the file."""

    frame: pl.DataFrame
    keys: tuple[str, ...]
    embedding: ReviewTextEmbedding
    source: str


def check_reviews(frame: pl.DataFrame, table: ReviewsSpec, where: str) -> None:
    """``InputError`` naming the file, the column and the first data rows when a rating lies
    outside the declared ``rating_range`` (a blank rating is an unrated review, allowed)."""
    if table.rating_range is None or "rating" not in frame.columns:
        return
    lowest, highest = table.rating_range
    outside = (~frame["rating"].is_between(lowest, highest)).fill_null(False)
    if outside.any():
        raise InputError(f"{where}: column '{table.columns['rating']}' (role rating) is outside "
                         f"the declared rating_range [{lowest:g}, {highest:g}]: "
                         f"{first_rows(outside, frame['rating'])}")


def review_table(reviews: pl.DataFrame, panel: pl.DataFrame, freq: str,
                 source: str) -> CovariateTable:
    """The past-only review channels of the ``panel`` rows (``item_id, market, timestamp``)
    from the loaded ``reviews`` table (see the module docstring); ``source`` names the file."""
    keys = _review_keys(reviews)
    channels = [REVIEW_COUNT] + ([REVIEW_RATING] if "rating" in reviews.columns else [])
    per_period = _per_period(reviews, freq).group_by(keys).agg(
        pl.len().cast(pl.Float64).alias(REVIEW_COUNT),
        *([pl.col("rating").mean().alias(REVIEW_RATING)] if REVIEW_RATING in channels else []))
    # Dense over the panel's rows: a count's gap is a real 0, not a value to carry forward.
    frame = (panel.select(keys).unique().join(per_period, on=keys, how="left")
             .with_columns(pl.col(REVIEW_COUNT).fill_null(0.0)).sort(keys))
    return CovariateTable(frame=frame.select(*keys, *channels), keys=tuple(keys),
                          channels=tuple(channels), source=source)


def _review_keys(reviews: pl.DataFrame) -> list[str]:
    return [k for k in ("item_id", "market") if k in reviews.columns] + ["timestamp"]


def _per_period(reviews: pl.DataFrame, freq: str) -> pl.DataFrame:
    return reviews.with_columns(truncate_to_period(pl.col("timestamp").cast(pl.Datetime("us")),
                                                   freq))


def review_texts(reviews: pl.DataFrame, panel: pl.DataFrame, freq: str,
                 embedding: ReviewTextEmbedding, source: str) -> ReviewTexts:
    """The texts of the reviews of the ``panel``'s series and periods (see the module
    docstring); blank texts are left out (a star rating without words says nothing more)."""
    keys = _review_keys(reviews)
    frame = (_per_period(reviews, freq)
             .filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != ""))
             .join(panel.select(keys).unique(), on=keys, how="semi")
             .select(*keys, "text").sort(keys))
    return ReviewTexts(frame=frame, keys=tuple(keys), embedding=embedding, source=source)
