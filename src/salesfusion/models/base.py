"""The common model interface: ``fit`` / ``predict`` / ``save`` / ``load`` and, once for every
model, ``backtest``.

A forecast frame has ``item_id, market, timestamp, y_pred`` and, for models that give them,
quantile columns ``q<level>``.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import polars as pl

from salesfusion.data.panel import SERIES_KEY, Panel
from salesfusion.errors import InputError
from salesfusion.registry import merged_params

if TYPE_CHECKING:
    from salesfusion.evaluation.protocol import BacktestProtocol

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class NotFittedError(RuntimeError):
    pass


class Forecaster(ABC):
    """Base class of every model. Subclasses set ``name`` and the capability flags."""

    name: ClassVar[str]
    supports_quantiles: ClassVar[bool] = False
    supports_cold_start: ClassVar[bool] = False  # can forecast series with no history
    default_params: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = merged_params("model", self.name, self.default_params,
                                                    params)
        self.freq: str | None = None
        self._fitted = False

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
        if panel.data.height == 0:
            raise InputError(f"model '{self.name}': cannot fit on an empty panel")
        self.freq = panel.freq
        self._fit(panel)
        self._history = panel
        self._fitted = True
        return self

    def predict(self, horizon: int, history: Panel | None = None,
                series: pl.DataFrame | None = None) -> pl.DataFrame:
        """Forecast ``horizon`` periods after the end of ``history`` (the training panel when
        None) for ``series`` (every series of ``history`` when None)."""
        if not self._fitted:
            raise NotFittedError(f"model '{self.name}' is not fitted; call fit() or load()")
        if horizon < 1:
            raise InputError(f"horizon must be at least 1, got {horizon}")
        history = history if history is not None else self._history
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
        return forecast.sort(*SERIES_KEY, "timestamp")

    def clone(self) -> Self:
        """An unfitted copy with the same parameters."""
        return type(self)(**self.params)

    def backtest(self, panel: Panel, protocol: BacktestProtocol) -> pl.DataFrame:
        """Rolling-origin backtest; returns the forecasts frame (see ``evaluation.backtest``)."""
        from salesfusion.evaluation.backtest import run_backtest

        return run_backtest(self, panel, protocol)

    # --- persistence --------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write the model to ``folder``: parameters and state as JSON/Parquet/text (never
        pickle) and a manifest with every file's SHA-256."""
        if not self._fitted:
            raise NotFittedError(f"model '{self.name}' is not fitted; nothing to save")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._history.data.write_parquet(folder / "history.parquet")
        for table in _HISTORY_TABLES:
            frame = getattr(self._history, table)
            if frame is not None:
                frame.write_parquet(folder / f"history_{table}.parquet")
        self._save_state(folder)
        files = {p.name: _sha256(p) for p in sorted(folder.iterdir()) if p.name != MANIFEST}
        manifest = {"format_version": FORMAT_VERSION, "model": self.name, "params": self.params,
                    "freq": self.freq, "files": files,
                    "covariates": {"past_only": self._history.past_only,
                                   "future_known": self._history.future_known}}
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Forecaster:
        """Load a saved model, refusing a tampered or incompatible artefact."""
        from salesfusion.models.registry import model_class

        folder = Path(folder)
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            raise InputError(f"{folder}: not a saved salesfusion model (no {MANIFEST})")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise InputError(f"{folder}: model format version {manifest.get('format_version')} "
                             f"is not supported (this salesfusion reads {FORMAT_VERSION})")
        for name, digest in manifest["files"].items():
            path = folder / name
            if not path.is_file() or _sha256(path) != digest:
                raise InputError(f"{folder}: file '{name}' is missing or does not match its "
                                 f"checksum; the artefact was modified")
        model_type = model_class(manifest["model"])
        if cls is not Forecaster and not issubclass(model_type, cls):
            raise InputError(f"{folder}: holds a '{manifest['model']}' model, not {cls.__name__}")
        model = model_type(**manifest["params"])
        model.freq = manifest["freq"]
        history = pl.read_parquet(folder / "history.parquet")
        tables = {t: pl.read_parquet(folder / f"history_{t}.parquet") for t in _HISTORY_TABLES
                  if (folder / f"history_{t}.parquet").is_file()}
        covariates = manifest.get("covariates", {})
        model._history = Panel(data=history, freq=manifest["freq"],
                               past_only=covariates.get("past_only", []),
                               future_known=covariates.get("future_known", []), **tables)
        model._load_state(folder)
        model._fitted = True
        return model


_HISTORY_TABLES = ("events", "exogenous")  # the Panel's whole-period tables, saved alongside


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
