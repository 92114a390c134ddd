"""The cold-start (launch) split: hold products (or products' markets) out by launch date
and score their first H periods from launch.

Scope ``item`` (new products): an item's launch is its first period in any market of the
panel. At a cutoff, items split into
three parts, no item in two: **test**, the items launched on or after the cutoff with at least
``min_observed`` periods (the horizon by default) observed in some market before the panel
ends; **validation**, the items launched in the ``validation_periods`` periods before the
cutoff (for model selection; ``LaunchSplit.validation_fit_panel`` is what a selection fits on);
**train**, the items launched before that. The model is fitted on the train and validation
items' rows before the cutoff only (no row of a test item, no row at or after the cutoff), then
forecasts every test series (item, market) for its first H periods from its own launch in that
market. Items launched after the cutoff with too few periods observed are in no part.

Scope ``market`` (new markets, the cross-border question): the test series are an item's
first periods in a market it enters on or after the cutoff, having sold elsewhere before it;
the model is fitted on every row before the cutoff, the item's other markets included, so it
can forecast the entry from the item's history abroad as well as its content. The validation
series are the market entries of the ``validation_periods`` before the cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from salesfusion.data.frequency import offset, truncate_to_period
from salesfusion.data.launches import item_launches, with_period_since_launch
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.data.validate import normalize_id
from salesfusion.errors import InputError


class LaunchProtocol(BaseModel):
    """Score each test item's first ``horizon`` periods from launch, at each of ``cutoffs``
    (one backtest window each) or, without cutoffs, at one cutoff that leaves about the last
    ``test_fraction`` of the datable launches to the test part.

    ``test_items`` fixes the test part instead, as public new-product benchmarks come (scope
    ``item``): those items are the test items, and the cutoff (without ``cutoffs``) is the
    earliest of their launches, so that no row on or after it is trained on; the other items
    launched before it train (and validate), as in the date split."""

    model_config = ConfigDict(frozen=True)
    horizon: int = Field(8, ge=1)
    cutoffs: tuple[date, ...] = ()
    test_fraction: float = Field(0.2, gt=0, lt=1)
    validation_periods: int = Field(0, ge=0)
    min_observed: int | None = Field(None, ge=1)
    scope: Literal["item", "market"] = "item"
    test_items: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> LaunchProtocol:
        if self.test_items and self.scope != "item":
            raise ValueError("test_items fix the test part of new products (scope item); a "
                             "market entry is chosen by its cutoff")
        if self.test_items and self.cutoffs:
            raise ValueError("test_items set the cutoff (their earliest launch); give test "
                             "items or cutoffs, not both")
        if list(self.cutoffs) != sorted(set(self.cutoffs)):
            raise ValueError("cutoffs must be distinct and in increasing order")
        if self.min_observed is not None and self.min_observed > self.horizon:
            raise ValueError(f"min_observed ({self.min_observed}) cannot exceed the horizon "
                             f"({self.horizon})")
        return self

    @property
    def windows(self) -> int:
        return max(1, len(self.cutoffs))

    @property
    def observed(self) -> int:
        """Periods a test series needs observed from its launch."""
        return self.min_observed or self.horizon

    def cutoff_periods(self, panel: Panel) -> list[datetime]:
        """The first period of each window's test part."""
        if self.cutoffs:
            frame = pl.DataFrame({"c": list(self.cutoffs)}).select(
                truncate_to_period(pl.col("c").cast(pl.Datetime("us")), panel.freq))
            return frame["c"].to_list()
        observable = self.observable(panel)
        if self.test_items:
            return [self._fixed_test_launches(panel)["launch"].min()]
        if self.scope == "item":
            launches = item_launches(observable)
        else:
            starts = observable.group_by(SERIES_KEY).agg(pl.col("timestamp").min()
                                                         .alias("launch"))
            launches = _market_entries(starts, item_launches(panel.data))
        candidates = launches.filter(
            pl.col("launch") > panel.data["timestamp"].min())["launch"].sort()
        if candidates.is_empty():
            what = "item launches" if self.scope == "item" else "market entries"
            raise InputError(f"no {what} after the panel's first period with "
                             f"{self.observed} periods observed: the launch protocol needs "
                             f"new {'items' if self.scope == 'item' else 'markets'}")
        return [candidates[min(int(len(candidates) * (1 - self.test_fraction)),
                               len(candidates) - 1)]]

    def _fixed_test_launches(self, panel: Panel) -> pl.DataFrame:
        """``item_id, launch`` of the ``test_items``, refused when one is not in the panel or
        none has a launch after the panel's first period (nothing could train before it)."""
        launches = item_launches(panel.data)
        known = set(launches["item_id"].to_list())
        # As the data holds them: as listed, else by the data's id rule (stripped, upper case).
        wanted = [item if item in known else normalize_id(item) for item in self.test_items]
        missing = sorted(set(self.test_items) - {i for i, w in zip(self.test_items, wanted,
                                                                   strict=True) if w in known})
        if missing:
            raise InputError(f"test items not in the panel: {', '.join(missing[:5])}"
                             f"{' ...' if len(missing) > 5 else ''} ({len(missing)} of "
                             f"{len(self.test_items)})")
        fixed = launches.filter(pl.col("item_id").is_in(wanted))
        observed = set(self.observable(panel)["item_id"].unique().to_list())
        short = sorted(set(fixed["item_id"].to_list()) - observed)
        if short:  # scored on nothing, yet its launch would set the cutoff
            raise InputError(f"test items with fewer than {self.observed} periods observed in "
                             f"any market: {', '.join(short[:5])}"
                             f"{' ...' if len(short) > 5 else ''}; drop them from the list or "
                             f"lower --min-observed")
        if fixed["launch"].min() <= panel.data["timestamp"].min():
            first = fixed.sort("launch").row(0)
            raise InputError(f"test item {first[0]!r} sells from the panel's first period "
                             f"({first[1]:%Y-%m-%d}): nothing launched before it to train on; "
                             f"fixed test items must launch after the panel starts")
        return fixed

    def observable(self, panel: Panel) -> pl.DataFrame:
        """The rows of series with at least ``observed`` periods."""
        lengths = panel.data.group_by(SERIES_KEY).agg(pl.len().alias("_n"))
        enough = lengths.filter(pl.col("_n") >= self.observed).select(SERIES_KEY)
        return panel.data.join(enough, on=SERIES_KEY, how="semi")

    def split(self, panel: Panel, cutoff: datetime) -> LaunchSplit:
        """The three parts at ``cutoff``; refuses a cutoff that leaves no train or test item."""
        launches = item_launches(panel.data)
        validation_start = pl.select(offset(pl.lit(cutoff), panel.freq,
                                            -self.validation_periods)).item()
        starts = (with_period_since_launch(self.observable(panel))
                  .filter(pl.col("period_since_launch") == 1)
                  .select(*SERIES_KEY, pl.col("timestamp").alias("launch")))
        if self.scope == "item":
            tested = launches.filter(pl.col("launch") >= cutoff)
            if self.test_items:
                tested = tested.join(self._fixed_test_launches(panel).select("item_id"),
                                     on="item_id", how="semi")
            test_series = starts.join(tested.select("item_id"), on="item_id", how="semi")
        else:
            test_series = _market_entries(starts, launches).filter(pl.col("launch") >= cutoff)
        test_series = test_series.select(*SERIES_KEY, "launch").sort(SERIES_KEY)
        if test_series.is_empty():
            what = ("item launched" if self.scope == "item"
                    else "market entry of an item sold elsewhere before it")
            raise InputError(f"cutoff {cutoff:%Y-%m-%d}: no {what} on or after it has "
                             f"{self.observed} periods observed before the panel ends "
                             f"({panel.data['timestamp'].max():%Y-%m-%d}); choose an earlier "
                             f"cutoff")
        train = launches.filter(pl.col("launch") < validation_start)["item_id"]
        if train.is_empty():
            raise InputError(f"cutoff {cutoff:%Y-%m-%d}: no item launched before "
                             f"{validation_start:%Y-%m-%d} to train on (the panel starts "
                             f"{panel.data['timestamp'].min():%Y-%m-%d}); choose a later cutoff")
        validation = launches.filter(pl.col("launch").is_between(
            validation_start, cutoff, closed="left"))["item_id"]
        if self.scope == "market":  # every item sold before the cutoff trains
            train = launches.filter(pl.col("launch") < cutoff)["item_id"]
            validation = validation.clear()
        return LaunchSplit(cutoff=cutoff, validation_start=validation_start,
                           train_items=train, validation_items=validation,
                           test_items=test_series["item_id"].unique().sort(),
                           test_series=test_series, scope=self.scope)


@dataclass(frozen=True)
class LaunchSplit:
    """Items by part at one cutoff, and the test series with their launch periods."""

    cutoff: datetime
    validation_start: datetime
    train_items: pl.Series
    validation_items: pl.Series
    test_items: pl.Series
    test_series: pl.DataFrame  # item_id, market, launch
    scope: str = "item"

    def fit_panel(self, panel: Panel) -> Panel:
        """What the test forecasts are fitted on: train and validation items before the
        cutoff (scope ``market``: every row before the cutoff)."""
        items = pl.concat([self.train_items, self.validation_items])
        return _restrict(panel, items, self.cutoff)

    def validation_fit_panel(self, panel: Panel) -> Panel:
        """What a model selected on the validation part is fitted on: train items before the
        validation part (scope ``market``: every row before it)."""
        return _restrict(panel, self.train_items, self.validation_start)

    def test_actuals(self, panel: Panel, horizon: int) -> pl.DataFrame:
        """The test series' observed rows in their first ``horizon`` periods from launch
        (``item_id, market, timestamp, period_since_launch, y``): what the launch forecasts
        are scored on."""
        return (with_period_since_launch(panel.data.join(self.test_series, on=SERIES_KEY,
                                                         how="semi"))
                .filter(pl.col("period_since_launch") <= horizon)
                .select(*SERIES_KEY, "timestamp", "period_since_launch", "y"))

    def validation_series(self, panel: Panel) -> pl.DataFrame:
        """The validation part's series with their launches (``item_id, market, launch``):
        the launches, or market entries, of the ``validation_periods`` before the cutoff."""
        starts = panel.series().select(*SERIES_KEY, pl.col("start").alias("launch"))
        if self.scope == "item":
            part = starts.join(pl.DataFrame({"item_id": self.validation_items}), on="item_id",
                               how="semi")
        else:
            part = _market_entries(starts, item_launches(panel.data))
        return part.filter(pl.col("launch").is_between(self.validation_start, self.cutoff,
                                                       closed="left")).sort(SERIES_KEY)


def _market_entries(starts: pl.DataFrame, launches: pl.DataFrame) -> pl.DataFrame:
    """The series of ``starts`` (``item_id, market, launch``: each series' first period) that
    begin after their item's launch elsewhere (``launches``: ``item_id, launch``)."""
    return (starts.join(launches.rename({"launch": "_item_launch"}), on="item_id", how="inner")
            .filter(pl.col("launch") > pl.col("_item_launch")).drop("_item_launch"))


def _restrict(panel: Panel, items: pl.Series, before: datetime) -> Panel:
    return replace(panel, data=panel.data.filter(
        pl.col("item_id").is_in(items.to_list()) & (pl.col("timestamp") < before)))
