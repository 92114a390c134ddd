"""The models a server holds: loaded once at startup, their forecasts computed in batches.

A model forecasts every series of its saved history in one call, and a series' forecast may
depend on the others (LightGBM's cross-series features, a market's level for cold starts), so a
request for a few series is answered from the forecast of the whole panel at that horizon,
computed once per (model, horizon) and kept: exactly what ``salesfusion predict --horizon H``
writes for those series, at the cost of one batched prediction shared by every later request.
Cold-start series (an item of the items table without sales, in a known market) are forecast on
first request, all of a request's together, and kept the same way.

Models are not thread-safe (torch modules, LightGBM boosters with their thread pools), so each
holds a lock around prediction; requests run in the server's thread pool.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import polars as pl

from salesfusion.data.forecast_frame import quantile_columns, quantile_level
from salesfusion.data.panel import SERIES_KEY
from salesfusion.errors import InputError
from salesfusion.models.artefact import read_manifest
from salesfusion.models.base import Forecaster

KEPT_HORIZONS = 8  # forecast frames kept per model (least recently used dropped)
HISTORY = "history.parquet"
_HISTORY_COLUMNS = (
    ("item_id", "text", lambda dtype: dtype == pl.String),
    ("market", "text", lambda dtype: dtype == pl.String),
    ("timestamp", "a date or datetime", lambda dtype: isinstance(dtype, pl.Datetime)
     or dtype == pl.Date),
    ("y", "numeric", lambda dtype: dtype.is_numeric()),
)


@dataclass
class ServedModel:
    name: str
    folder: Path
    forecaster: Forecaster
    checksum: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    _forecasts: OrderedDict[int, pl.DataFrame] = field(default_factory=OrderedDict)

    @property
    def history(self) -> Any:
        return self.forecaster.history

    @cached_property
    def series_keys(self) -> pl.DataFrame:
        """``item_id, market`` of every series of the history (computed once, read per
        request)."""
        return self.history.data.select(SERIES_KEY).unique(maintain_order=True)

    @cached_property
    def markets(self) -> list[str]:
        return self.series_keys["market"].unique(maintain_order=True).to_list()

    @cached_property
    def item_ids(self) -> set[str]:
        """Items of the history and of its items table."""
        items = set(self.series_keys["item_id"].to_list())
        if self.history.items is not None:
            items |= set(self.history.items["item_id"].to_list())
        return items

    @property
    def max_horizon(self) -> int | None:
        """The horizon a fixed-horizon model was trained for (None: any horizon)."""
        horizon = self.forecaster.params.get("horizon")
        return int(horizon) if isinstance(horizon, int) and horizon > 0 else None

    @property
    def quantile_levels(self) -> list[float]:
        """The quantiles forecasts carry: their ``q<level>`` columns, and 0.5 (``y_pred``) for a
        median model trained for quantiles that include 0.5 (a mean model writes ``q0.5``).
        Known once ``warm`` has run."""
        frame = next(iter(self._forecasts.values()), None)
        levels = {quantile_level(c) for c in quantile_columns(
            frame.columns if frame is not None else [])}
        if (self.forecaster.point == "median"
                and 0.5 in (self.forecaster.params.get("quantiles") or [])):
            levels.add(0.5)
        return sorted(levels)

    def forecast(self, horizon: int, keys: pl.DataFrame) -> pl.DataFrame:
        """Forecasts of ``keys`` (``item_id, market``) at ``horizon``; keys the model cannot
        forecast are absent (see ``unknown_keys``)."""
        with self.lock:
            frame = self._forecasts.get(horizon)
            if frame is None:
                frame = self.forecaster.predict(horizon)
                self._forecasts[horizon] = frame
                while len(self._forecasts) > KEPT_HORIZONS:
                    self._forecasts.popitem(last=False)
            self._forecasts.move_to_end(horizon)
            missing = keys.join(self.series_keys, on=SERIES_KEY, how="anti")
            if missing.height:  # cold starts, or unknown keys: those not forecast yet
                missing = missing.join(frame.select(SERIES_KEY).unique(), on=SERIES_KEY,
                                       how="anti")
            cold = self._cold_candidates(missing)
            if cold.height:
                fresh = self.forecaster.predict(horizon, series=cold)
                frame = pl.concat([frame, fresh], how="diagonal_relaxed")
                self._forecasts[horizon] = frame
        return frame.join(keys.select(SERIES_KEY).unique(), on=SERIES_KEY, how="semi")

    def _cold_candidates(self, keys: pl.DataFrame) -> pl.DataFrame:
        """The keys a cold-start model can forecast: an item of the items table in a market of
        the history."""
        items = self.history.items
        if not keys.height or not self.forecaster.supports_cold_start or items is None:
            return keys.clear()
        return (keys.join(items.select("item_id").unique(), on="item_id", how="semi")
                .filter(pl.col("market").is_in(self.markets)))

    def unknown_reason(self, item_id: str, market: str) -> str:
        if market not in self.markets:
            return f"market {market!r} is not in the history of model '{self.name}'"
        if item_id not in self.item_ids:
            return (f"item {item_id!r} is in neither the history nor the items table of model "
                    f"'{self.name}'")
        return (f"item {item_id!r} has no history in {market!r} and model "
                f"'{self.forecaster.name}' cannot forecast cold starts")

    def warm(self) -> None:
        """Compute the forecast at the model's own horizon (or 1 period) ahead of requests."""
        empty = pl.DataFrame(schema={"item_id": pl.String, "market": pl.String})
        self.forecast(self.max_horizon or 1, empty)


@dataclass(frozen=True)
class Insights:
    """What the dashboard shows beside live forecasts: a ``salesfusion backtest`` run folder
    (forecasts at past origins, errors per horizon and market), a ``salesfusion explain`` run
    folder (modality contributions, segment reports), and the folder the items' image paths
    are relative to (the dataset spec's ``image_root``: model folders keep the items table,
    not the images)."""

    backtest: Path | None = None
    explain: Path | None = None
    image_root: Path | None = None


def _check_history(folder: Path, history: pl.DataFrame) -> None:
    """Refuse a saved history that is not a panel (its checksum may have been resealed, or
    the manifest was not signed): the key, time and target columns with their types, and
    rows."""
    path = folder / HISTORY
    schema = history.schema
    for column, kind, fits in _HISTORY_COLUMNS:
        if column not in schema:
            raise InputError(f"{path}: the saved history does not fit the manifest: it has no "
                             f"column '{column}' (columns: {', '.join(schema)})")
        if not fits(schema[column]):
            raise InputError(f"{path}: the saved history does not fit the manifest: column "
                             f"'{column}' is {schema[column]}, not {kind}")
    if not history.height:
        raise InputError(f"{path}: the saved history does not fit the manifest: it has no rows")


def _warm(model: ServedModel) -> None:
    """Forecast once from the saved history, turning a failure into one line naming the folder:
    the files passed their checksums, so they disagree with each other (a history of other
    series or dates than the model's state)."""
    try:
        model.warm()
    except InputError as exc:
        raise InputError(f"cannot serve {model.folder}: {exc}") from None
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        raise InputError(f"cannot serve {model.folder}: forecasting from its saved history "
                         f"({model.folder / HISTORY}) failed ({type(exc).__name__}: {reason}); "
                         f"the history does not fit the model's manifest and state") from None



class ModelStore:
    """Served models by name (the folder's name, unique within a server)."""

    def __init__(self, models: dict[str, ServedModel],
                 insights: Insights | None = None) -> None:
        self.models = models
        self.insights = insights or Insights()

    @classmethod
    def load(cls, folders: list[Path], warm: bool = True,
             insights: Insights | None = None) -> ModelStore:
        """Load each folder once, refusing (one ``InputError`` naming it) a folder that fails
        its checksums, is not a model, or repeats another's name."""
        if not folders:
            raise InputError("give at least one --model DIR")
        models: dict[str, ServedModel] = {}
        for folder in folders:
            folder = Path(folder)
            name = folder.resolve().name
            if name in models:
                raise InputError(f"{folder}: two served models are named '{name}' (the folder "
                                 f"name); serve folders with distinct names")
            try:
                manifest = read_manifest(folder, required=("history.parquet",))
                forecaster = Forecaster.load(folder)
                _check_history(folder, forecaster.history.data)
            except InputError as exc:
                raise InputError(f"cannot serve {folder}: {exc}") from None
            models[name] = ServedModel(name, folder, forecaster, manifest.checksum)
        store = cls(models, insights)
        if warm:
            for model in models.values():
                _warm(model)
        return store

    def get(self, name: str) -> ServedModel | None:
        return self.models.get(name)
