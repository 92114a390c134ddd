"""The common model interface: ``fit`` / ``predict`` / ``save`` / ``load`` and, once for every
model, ``backtest``.

A forecast frame has ``item_id, market, timestamp, y_pred``, for models that give them quantile
columns ``q<level>``, and two boolean columns that ``predict`` adds for every model:
``cold_start`` (the series had no history in the panel the forecast was made from, so it is
forecast from other series) and ``before_launch`` (the period starts before the item's launch: the
period holding its items-table ``launch_date``, or its first sale when that is earlier). Demand
is never forecast before launch: ``y_pred`` and the quantiles of ``before_launch`` rows are 0. Nor
after an item's end: ``after_end`` marks periods after the period holding its items-table
``end_date`` (a delisted item), whose demand is 0 too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import polars as pl

from salesfusion.data.covariate_tables import CovariateTable
from salesfusion.data.forecast_frame import quantile_columns
from salesfusion.data.frames import as_panel, returned, to_polars_or_none, wants_pandas
from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.encoders.review_text import (
    STATE_FILE as REVIEW_TEXT_STATE,
)
from salesfusion.encoders.review_text import (
    ReviewTextProjection,
    fit_review_text,
    with_review_text,
)
from salesfusion.errors import InputError
from salesfusion.models.artefact import MANIFEST, read_manifest, state_errors, write_manifest
from salesfusion.models.config import (
    ModelConfig,
    PointForecast,
    config_from_defaults,
    validate_config,
)

if TYPE_CHECKING:
    from salesfusion.data.splits import BacktestProtocol
    from salesfusion.models.search_space import SearchSpace
    from salesfusion.training.ray_train import RayPlan


class NotFittedError(RuntimeError):
    pass


class Forecaster(ABC):
    """Base class of every model. Subclasses set ``name``, their ``Config`` (a frozen pydantic
    model of their parameters) and the capability flags; presets set ``preset_params``."""

    name: ClassVar[str]
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    # Values that replace the Config's defaults (a preset is configuration, not a new model).
    preset_params: ClassVar[dict[str, Any]] = {}
    # The search space ``salesfusion tune`` uses when none is given (presets declare theirs).
    search_space: ClassVar[SearchSpace | None] = None
    supports_cold_start: ClassVar[bool] = False  # can forecast series with no history
    supports_launch: ClassVar[bool] = False  # can forecast a series' first periods from launch
    # Forecasts a series from its own past sales. False for cold-start-only models (content
    # analogues, launch curves by age): reports show them apart, their backtest error
    # standing for a new item's.
    reads_history: ClassVar[bool] = True
    # What ``y_pred`` is when the configuration has no ``point`` field: statistical models
    # forecast the expected demand (a smoothed level or rate, a fitted model's mean).
    point_forecast: ClassVar[PointForecast] = "mean"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "default_params" in cls.__dict__ and "Config" not in cls.__dict__:
            cls.Config = config_from_defaults(cls.__name__, cls.__dict__["default_params"])

    def __init__(self, config: ModelConfig | None = None, **params: Any) -> None:
        if config is None:
            config = validate_config(self.Config, {**self.preset_params, **params},
                                     owner=self.name)
        elif params or not isinstance(config, self.Config):
            raise InputError(f"model '{self.name}' takes either a {self.Config.__name__} or "
                             f"keyword parameters")
        self.config = config
        self.freq: str | None = None
        self._fitted = False
        self._ray_plan: RayPlan | None = None
        self._review_text: ReviewTextProjection | None = None

    @property
    def params(self) -> dict[str, Any]:
        """The configuration as plain values (what the manifest stores)."""
        return self.config.model_dump(mode="json")

    @classmethod
    def default_config(cls) -> ModelConfig:
        return cls.Config.model_validate(cls.preset_params)

    # --- capabilities of the configured instance ----------------------------------------------
    @property
    def point(self) -> PointForecast:
        """``mean`` or ``median``: what ``y_pred`` is (manifests, reports and ``salesfusion
        components model`` show it)."""
        return getattr(self.config, "point", None) or self.point_forecast

    @property
    def supports_quantiles(self) -> bool:
        """Whether forecasts carry quantile columns."""
        return False

    @property
    def min_history(self) -> int:
        """The fewest panel periods ``fit`` can learn from; checked before any work."""
        return 1

    @property
    def notes(self) -> list[str]:
        """What the run log and report should say about this model (fallbacks, masking)."""
        return list(getattr(self, "_notes", []))

    # Capabilities callers test instead of the class (as darts' ``supports_*`` properties): an
    # explanation, a route or a training backend asks the model what it can do.
    @property
    def explains_by_gradients(self) -> bool:
        """Whether the fitted model is a network whose inputs gradient attributions reach
        (``explanation_windows``, ``network``)."""
        return False

    @property
    def has_feature_importance(self) -> bool:
        """Whether the fitted model scores a feature matrix that permutation importance can
        shuffle (``importance_design``, ``predict_design``, ``feature_names``)."""
        return False

    @property
    def supports_new_items(self) -> bool:
        """Whether the fitted model encodes the content (text, image, attributes) of items it
        was not fitted on (``items_described``)."""
        return False

    @property
    def supports_distributed_training(self) -> bool:
        """Whether ``fit`` can run data-parallel on a Ray cluster (``train --backend ray``)."""
        return False

    @property
    def history(self) -> Panel:
        """The panel the model was fitted on (the one ``predict`` continues by default)."""
        if not self._fitted:
            raise NotFittedError(f"model '{self.name}' is not fitted; it has no history")
        return self._history

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """Parameters that make the conformance suite fast (fewer rounds, epochs, units)."""
        return {}

    # --- to implement -------------------------------------------------------------------------
    @abstractmethod
    def _fit(self, panel: Panel) -> None: ...

    @abstractmethod
    def _predict(self, horizon: int, history: Panel, series: pl.DataFrame) -> pl.DataFrame:
        """Forecast ``series`` for ``horizon`` periods after ``history``'s last period."""

    @abstractmethod
    def _save_state(self, folder: Path) -> None: ...

    @abstractmethod
    def _load_state(self, folder: Path) -> None: ...

    # --- public interface ---------------------------------------------------------------------
    def fit(self, panel: Panel) -> Self:
        """Fit on ``panel`` (its frames may have been given as pandas: ``Panel`` converts)."""
        panel = as_panel(panel, f"model '{self.name}': fit")
        if panel.data.height == 0:
            raise InputError(f"model '{self.name}': cannot fit on an empty panel")
        if len(panel.periods) < self.min_history:
            raise InputError(f"model '{self.name}' needs at least {self.min_history} periods "
                             f"to fit with this configuration; the panel has "
                             f"{len(panel.periods)}")
        self.freq = panel.freq
        self._review_text = fit_review_text(panel)
        panel = self.prepared(panel)
        self._fit(panel)
        self._history = panel
        self._fitted = True
        return self

    def predict(self, horizon: int, history: Panel | None = None,
                series: pl.DataFrame | Any | None = None,
                as_pandas: bool | None = None) -> pl.DataFrame | Any:
        """Forecast ``horizon`` periods after the end of ``history`` (the training panel when
        None) for ``series`` (every series of ``history`` when None; polars or pandas). The
        forecast is polars, or pandas when ``series`` was pandas or ``as_pandas`` is True."""
        pandas = wants_pandas(as_pandas, series)
        series = to_polars_or_none(series, "series")
        history = as_panel(history, f"model '{self.name}': predict") if history is not None \
            else None
        if not self._fitted:
            raise NotFittedError(f"model '{self.name}' is not fitted; call fit() or load()")
        if horizon < 1:
            raise InputError(f"horizon must be at least 1, got {horizon}")
        history = self.prepared(history) if history is not None else self._history
        series = (series if series is not None else history.data).select(SERIES_KEY).unique(
            maintain_order=True)
        if not self.supports_cold_start:
            unseen = series.join(history.data.select(SERIES_KEY).unique(), on=SERIES_KEY,
                                 how="anti")
            if unseen.height:
                first = unseen.row(0)
                raise InputError(f"model '{self.name}' cannot forecast series without history "
                                 f"({unseen.height}, e.g. item {first[0]!r} in {first[1]!r}); "
                                 f"use a cold-start model such as knn_analogue")
        forecast = self._predict(horizon, history, series)
        items = history.items if history.items is not None else self._history.items
        forecast = _flag_history_and_launch(forecast, history, items)
        return returned(forecast.sort(*SERIES_KEY, "timestamp"), pandas)

    def predict_launch(self, launches: pl.DataFrame, horizon: int,
                       history: Panel | None = None) -> pl.DataFrame:
        """Forecast each launched series' first ``horizon`` periods from its launch.

        ``launches`` has ``item_id, market, launch`` (a date, past or future: the period holding
        it is the first forecast period). Returns ``item_id, market, timestamp,
        period_since_launch, y_pred`` (and quantile columns where the model gives them), the
        timestamps being that launch's own periods. A launch whose series ``history`` (the
        training panel when None) already holds is refused: its launch is history, so forecast
        it with ``predict``; a series the history lacks is forecast from the launch as asked,
        however early the date (that is how the launch backtest scores past launches).
        """
        if not self.supports_launch:
            from salesfusion.models.registry import model_class, registered_models

            able = [n for n in registered_models() if model_class(n).supports_launch]
            raise InputError(f"model '{self.name}' cannot forecast from a launch date; "
                             f"launch-anchored models: {', '.join(able)}")
        if not self._fitted:
            raise NotFittedError(f"model '{self.name}' is not fitted; call fit() or load()")
        if horizon < 1:
            raise InputError(f"horizon must be at least 1, got {horizon}")
        from salesfusion.data.launches import covered_launches, launch_grid

        history = self.prepared(history) if history is not None else self._history
        grid = launch_grid(launches, horizon, history.freq)
        covered = covered_launches(grid, history)
        if covered.height:
            item, market, start = covered.row(0)
            raise InputError(f"model '{self.name}': item {item!r} already sells in {market!r} "
                             f"in the history (since {start:%Y-%m-%d}); a launch forecast is "
                             f"for a series the history does not hold: forecast it with "
                             f"predict, or pass a history without it")
        forecast = self._predict_launch(grid, history)
        quantiles = quantile_columns(forecast.columns)
        return forecast.select(*SERIES_KEY, "timestamp", "period_since_launch", "y_pred",
                               *quantiles).sort(*SERIES_KEY, "timestamp")

    def prepared(self, panel: Panel) -> Panel:
        """``panel`` as this model reads it: with the channels it derived from review texts
        when it was fitted (``encoders.review_text``). ``predict`` and ``predict_launch`` call
        it; a caller handing a panel to any other method of a model calls it first."""
        return with_review_text(panel, self._review_text, self.name)

    def _predict_launch(self, grid: pl.DataFrame, history: Panel) -> pl.DataFrame:
        """``grid`` (``item_id, market, launch, period_since_launch, timestamp``) with ``y_pred``
        added; only models with ``supports_launch`` implement it."""
        raise NotImplementedError

    def train_on(self, plan: RayPlan | None) -> Self:
        """Where the next ``fit`` trains: data-parallel on Ray Train (a
        ``training.ray_train.RayPlan``), or here (None). Explicit, so no setting around the call
        moves a training elsewhere."""
        if plan is not None and not self.supports_distributed_training:
            raise InputError(f"model '{self.name}' is not a neural model: --backend ray trains "
                             f"neural models only (multimodal and its presets)")
        self._ray_plan = plan
        return self

    def clone(self) -> Self:
        """An unfitted copy with the same parameters (and the same label, for a model named
        by its config or preset file)."""
        twin = type(self)(self.config)
        if "name" in vars(self):
            twin.name = self.name
        return twin

    def backtest(self, panel: Panel, protocol: BacktestProtocol) -> pl.DataFrame:
        """Rolling-origin backtest; returns the forecasts frame (see ``evaluation.backtest``)."""
        from salesfusion.models.backtest import run_backtest

        return run_backtest(self, panel, protocol)

    # --- persistence --------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write the model to ``folder``: parameters and state as JSON/Parquet/text (never
        pickle) and a manifest with every file's SHA-256 and its own checksum, signed when
        ``SALESFUSION_SIGNING_KEY`` is set (see ``salesfusion.models.artefact``)."""
        if not self._fitted:
            raise NotFittedError(f"model '{self.name}' is not fitted; nothing to save")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._history.data.write_parquet(folder / "history.parquet")
        for table in _HISTORY_TABLES:
            frame = getattr(self._history, table)
            if frame is not None:
                frame.write_parquet(folder / f"history_{table}.parquet")
        tables = []
        for index, table in enumerate(self._history.covariate_tables):
            table.frame.write_parquet(folder / f"history_covariates_{index}.parquet")
            tables.append({"keys": list(table.keys), "channels": list(table.channels),
                           "source": table.source})
        if self._review_text is not None:
            self._review_text.save(folder)
        self._save_state(folder)
        # The manifest covers every file the model wrote, members' folders of an ensemble too.
        registered = self.registered_name()
        label = {"label": self.name} if self.name != registered else {}
        write_manifest(folder, {"model": registered, **label, "params": self.params,
                                "point": self.point,
                                "freq": self.freq,
                                "covariates": {"past_only": self._history.past_only,
                                               "future_known": self._history.future_known,
                                               "tables": tables}})
        return folder

    def registered_name(self) -> str:
        """The registered model this one is, or derives from: its own name, or for a model
        built from a user's preset file (a class nobody registered) the model it configures;
        what a saved folder names so that it loads wherever that model is registered."""
        from salesfusion.components import MODELS

        for klass in type(self).__mro__:
            name = klass.__dict__.get("name")
            if isinstance(name, str) and name in MODELS and MODELS.get(name) is klass:
                return name
        raise InputError(f"model '{self.name}' derives from no registered model; register it "
                         f"(or its base) to save it")

    @classmethod
    def load(cls, folder: str | Path) -> Forecaster:
        """Load a saved model, refusing a tampered, unsigned (when ``SALESFUSION_SIGNING_KEY``
        is set) or incompatible artefact with one ``InputError`` line."""
        from salesfusion.models.registry import model_class

        folder = Path(folder)
        manifest = read_manifest(folder, required=("history.parquet",))
        try:
            model_type = model_class(manifest.model)
            model = model_type(**manifest.params)
        except InputError as exc:
            raise InputError(f"{folder / MANIFEST}: {exc}") from None
        if cls is not Forecaster and not issubclass(model_type, cls):
            raise InputError(f"{folder}: holds a '{manifest.model}' model, not {cls.__name__}")
        model.freq = manifest.freq
        if manifest.label is not None:  # trained from a user's preset file: its name stays
            model.name = manifest.label
        with state_errors(folder):
            history = pl.read_parquet(folder / "history.parquet")
            tables = {t: pl.read_parquet(folder / f"history_{t}.parquet")
                      for t in _HISTORY_TABLES if f"history_{t}.parquet" in manifest.files}
            covariates = [CovariateTable(
                frame=pl.read_parquet(folder / f"history_covariates_{index}.parquet"),
                keys=tuple(meta.keys), channels=tuple(meta.channels), source=meta.source)
                for index, meta in enumerate(manifest.covariates.tables)]
            model._history = Panel(data=history, freq=manifest.freq,
                                   past_only=manifest.covariates.past_only,
                                   future_known=manifest.covariates.future_known,
                                   covariate_tables=covariates, **tables)
            model._review_text = (ReviewTextProjection.load(folder)
                                  if REVIEW_TEXT_STATE in manifest.files else None)
            model._load_state(folder)
        model._fitted = True
        return model


# The Panel's tables saved alongside its data: the whole-period events, and the items table
# (launch and end dates, and the attributes that attribute-keyed covariates are joined by).
_HISTORY_TABLES = ("events", "items")


def _flag_history_and_launch(forecast: pl.DataFrame, history: Panel,
                             items: pl.DataFrame | None) -> pl.DataFrame:
    """Add ``cold_start``, ``before_launch`` and ``after_end`` to a model's forecast and zero
    the demand of periods before each item's launch or after its declared end (see the module
    docstring)."""
    from salesfusion.data.frequency import truncate_to_period

    first_seen = history.data.group_by(SERIES_KEY).agg(pl.col("timestamp").min().alias("_first"))
    flagged = forecast.join(first_seen, on=SERIES_KEY, how="left").with_columns(
        pl.col("_first").is_null().alias("cold_start"))
    launch = pl.col("_first")
    if items is not None and "launch_date" in items.columns:
        declared = (items.select("item_id", truncate_to_period(pl.col("launch_date"), history.freq)
                                 .alias("_declared"))
                    .drop_nulls("_declared").unique("item_id", keep="first"))
        flagged = flagged.join(declared, on="item_id", how="left")
        # As in the panel: a series starts at its declared launch or its first sale if earlier.
        launch = pl.min_horizontal("_first", "_declared")
    flagged = flagged.with_columns(
        (pl.col("timestamp") < launch).fill_null(False).alias("before_launch"))
    after_end = pl.lit(False)
    if items is not None and "end_date" in items.columns:
        ends = (items.select("item_id", truncate_to_period(pl.col("end_date"), history.freq)
                             .alias("_end"))
                .drop_nulls("_end").unique("item_id", keep="first"))
        flagged = flagged.join(ends, on="item_id", how="left")
        after_end = (pl.col("timestamp") > pl.col("_end")).fill_null(False)
    flagged = flagged.with_columns(after_end.alias("after_end"))
    demand = ["y_pred", *quantile_columns(flagged.columns)]
    gone = pl.col("before_launch") | pl.col("after_end")
    return flagged.with_columns(
        [pl.when(gone).then(0.0).otherwise(pl.col(c)).cast(flagged.schema[c]).alias(c)
         for c in demand]
    ).drop("_first", "_declared", "_end", strict=False)
