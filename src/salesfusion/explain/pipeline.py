"""What ``salesfusion explain`` runs, on which fit, and the tables it writes.

Steps, each a progress stage, each writing its tables as Parquet and CSV into one folder:

1. ``segments``: a markets-table column, learned k-means segments, or one segment per market.
2. Holdout: the origin is the panel's last period minus the model's horizon. With ``refit``
   (the default) a clone of the model is fitted on the panel up to the origin, so the errors
   (``errors_by_segment``, ``errors_by_segment_step``) are out of sample; without, the loaded
   model forecasts periods it may have been trained on (noted). ``forecasts`` keeps the rows.
3. Explanations. Neural multimodal models: integrated gradients of the loaded (full) model at
   ``origins`` evenly spaced origins over the panel's second half (``attributions``), modality
   shares by step, age, timestamp and segment, the inverted-U test of the content share over
   age, TFT selection weights and attention maps (``attention/*.npy``). LightGBM: permutation
   importance of the holdout model at the origin. Other models (statistical baselines) have no
   explanation method: a note, not an error.
4. KOL response, when the panel has events featuring items: the event study from the data, and
   when the model reads events, the holdout model's counterfactual response.
5. Demand cycles per segment.

An analysis that does not apply to the data (too few markets to learn segments, no events in the
forecast window, a panel too short for cycles: the analyses raise ``InputError`` then) is skipped
with a note in ``summary.json``; any other exception is a bug and propagates.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl

from salesfusion.data.panel import Panel
from salesfusion.errors import InputError
from salesfusion.explain.segments import Segments, declared_segments, learned_segments
from salesfusion.models.base import Forecaster

SEGMENT = "segment"  # the markets-table column the per-segment analyses read
DEFAULT_HORIZON = 4  # for models that forecast any horizon (no ``horizon`` parameter)
SHARES = {"shares_by_step": ["step"], "shares_by_age": ["age"],
          "shares_by_time": ["timestamp"], "shares_by_segment": [SEGMENT],
          "shares_by_segment_age": [SEGMENT, "age"],
          "shares_by_segment_time": [SEGMENT, "timestamp"]}


class Stages(Protocol):
    """What the pipeline reports while it runs (``evaluation.progress.ConsoleProgress``)."""

    def stage(self, text: str, spinner: bool = True) -> AbstractContextManager[None]: ...


class _Quiet:
    @contextmanager
    def stage(self, text: str, spinner: bool = True) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class ExplainSettings:
    segment: str = "market"  # a markets-table column, "learned" or "market"
    origins: int = 6
    max_windows: int = 400
    refit: bool = True
    seed: int = 0


@dataclass
class _Writer:
    folder: Path
    tables: dict[str, list[str]] = field(default_factory=dict)
    notes: list[dict[str, str]] = field(default_factory=list)

    def table(self, name: str, frame: pl.DataFrame) -> pl.DataFrame:
        frame.write_parquet(self.folder / f"{name}.parquet")
        frame.write_csv(self.folder / f"{name}.csv")
        self.tables[name] = [f"{name}.parquet", f"{name}.csv"]
        return frame

    def note(self, step: str, text: str) -> None:
        self.notes.append({"step": step, "note": " ".join(text.split())})

    def attempt(self, step: str, what: str, run: Callable[[], Any],
                tables: dict[str, str] | None = None) -> Any:
        """``run()``, or None with a note when the analysis does not apply (``InputError``);
        ``tables`` maps table names to attributes of the result to write."""
        try:
            result = run()
        except InputError as exc:
            self.note(step, f"{what} skipped: {exc}")
            return None
        for name, attribute in (tables or {}).items():
            self.table(name, getattr(result, attribute))
        return result


def check_segment(panel: Panel, segment: str) -> None:
    """Refuse a segment column the markets table does not have, before any work."""
    if segment in ("market", "learned"):
        return
    if panel.markets is None or segment not in panel.markets.columns:
        have = [c for c in (panel.markets.columns if panel.markets is not None else [])
                if c != "market"]
        raise InputError(f"--segment {segment!r}: not a markets-table column (columns: "
                         f"{', '.join(have) or 'none'}); use one, 'learned' or 'market'")


def explain_model(model: Forecaster, panel: Panel, folder: Path, settings: ExplainSettings,
                  progress: Stages | None = None, source: str = "") -> dict[str, Any]:
    """Run every analysis that applies to ``model`` on ``panel`` and write its tables and
    ``summary.json`` into ``folder``; returns the summary."""
    from salesfusion.provenance import provenance

    check_segment(panel, settings.segment)
    progress = progress or _Quiet()
    writer = _Writer(folder)
    summary: dict[str, Any] = {"model": {"name": model.name, "params": model.params,
                                         "freq": model.freq},
                               "data": {"source": source, "n_series": panel.n_series,
                                        "n_periods": len(panel.periods), "freq": panel.freq},
                               "settings": asdict(settings)}
    with progress.stage("Segments"):
        segments = _segments(panel, settings, writer)
        summary["segments"] = {"source": segments.source, "k": segments.k,
                               "silhouette": segments.silhouette,
                               "stability": segments.stability}
    labelled = _with_segment_column(panel, segments)
    history, fitted, holdout = _holdout(model, labelled, segments, settings, writer, progress)
    summary["holdout"] = holdout
    summary["explanations"] = _explanations(model, fitted, labelled, segments, holdout,
                                            settings, writer, progress)
    summary["kol"] = _kol(model, fitted, labelled, history, holdout, settings, writer, progress)
    with progress.stage("Cycles"):
        from salesfusion.explain.cycles import market_cycles

        cycles = writer.attempt("cycles", "demand cycles", lambda: market_cycles(
            labelled, segment=SEGMENT, seed=settings.seed), {
                "cycle_periods": "periods", "cycle_comparison": "comparison",
                "cycle_segments": "segments"})
        if cycles is not None:
            summary["cycles"] = cycles.settings | {"segment": settings.segment}
    summary |= {"tables": writer.tables, "notes": writer.notes, "provenance": provenance()}
    (folder / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def _segments(panel: Panel, settings: ExplainSettings, writer: _Writer) -> Segments:
    if settings.segment == "learned":
        learned = writer.attempt("segments", "learned segments",
                                 lambda: learned_segments(panel, seed=settings.seed))
        segments = learned or _per_market(panel)
    elif settings.segment == "market":
        segments = _per_market(panel)
    else:
        segments = declared_segments(panel, settings.segment)
    writer.table("segments", segments.markets)
    return segments


def _per_market(panel: Panel) -> Segments:
    markets = panel.data["market"].unique().sort()
    return Segments(pl.DataFrame({"market": markets, SEGMENT: markets}), len(markets), None,
                    None, "one segment per market")


def _with_segment_column(panel: Panel, segments: Segments) -> Panel:
    """The panel whose markets table has every market's segment in column ``SEGMENT``, so that
    the event study, the model response and the cycles group by it (models do not read the
    markets table)."""
    labels = (pl.DataFrame({"market": panel.data["market"].unique().sort()})
              .join(segments.markets.select("market", SEGMENT), on="market", how="left")
              .with_columns(pl.col(SEGMENT).fill_null("unknown")))
    if panel.markets is not None:
        labels = labels.join(panel.markets.drop(SEGMENT, strict=False), on="market", how="left")
    return replace(panel, markets=labels)


def _holdout(model: Forecaster, panel: Panel, segments: Segments, settings: ExplainSettings,
             writer: _Writer, progress: Stages) -> tuple[Panel, Forecaster, dict[str, Any]]:
    from salesfusion.explain.errors import segment_errors
    from salesfusion.models.backtest import forecast_window

    horizon = int(model.params.get("horizon") or DEFAULT_HORIZON)
    periods = panel.periods
    if len(periods) < horizon + 2:
        raise InputError(f"the panel has {len(periods)} periods; explaining a model of horizon "
                         f"{horizon} needs at least {horizon + 2}")
    origin = periods[-1 - horizon]
    history = panel.until(origin)
    fitted = model
    if settings.refit:
        with progress.stage(f"Holdout: fitting {model.name} up to {origin:%Y-%m-%d}"):
            fitted = model.clone().fit(history)
    else:
        writer.note("holdout", "--no-refit: the loaded model forecasts the holdout; if it was "
                    "trained on these periods its errors are in-sample")
    with progress.stage("Holdout: forecasting and errors by segment"):
        rows = forecast_window(fitted, panel, history, horizon, model.name, 0)
        steps = pl.DataFrame({"timestamp": periods.filter(periods > origin).head(horizon),
                              "step": np.arange(1, horizon + 1)})
        rows = rows.join(steps, on="timestamp").with_columns(pl.lit(origin).alias("origin"))
        writer.table("errors_by_segment", segment_errors(rows, segments, by=(SEGMENT,)))
        writer.table("errors_by_segment_step",
                     segment_errors(rows, segments, by=(SEGMENT, "step")))
        labels = segments.markets.select("market", SEGMENT)
        writer.table("forecasts", rows.join(labels, on="market", how="left"))
    return history, fitted, {"origin": origin, "horizon": horizon, "refit": settings.refit,
                             "n_series": rows.select("item_id", "market").n_unique(),
                             "n_rows": rows.height}


def explain_origins(n_periods: int, count: int, horizon: int) -> list[int]:
    """Indices of ``count`` origins evenly spaced over the panel's second half, the last one
    leaving ``horizon`` periods after it (so every explained step has an actual)."""
    last = n_periods - 1 - horizon
    if last < 0:
        raise InputError(f"the panel has {n_periods} periods: none leaves {horizon} after it")
    from salesfusion.explain.attributions import spaced_origins

    return spaced_origins(min(n_periods // 2, last), last, count).tolist()


def _explanations(model: Forecaster, fitted: Forecaster, panel: Panel, segments: Segments,
                  holdout: dict[str, Any], settings: ExplainSettings, writer: _Writer,
                  progress: Stages) -> dict[str, Any]:
    if model.explains_by_gradients:
        return _gradients(model, panel, segments, holdout, settings, writer, progress)
    if fitted.has_feature_importance:
        from salesfusion.explain.importance import permutation_importance

        with progress.stage("Permutation importance"):
            writer.table("importance", permutation_importance(
                fitted, panel, holdout["origin"], seed=settings.seed))
        return {"method": "permutation_importance", "origin": holdout["origin"],
                "fit": "holdout" if settings.refit else "loaded"}
    writer.note("explanations", f"model '{model.name}' has no explanation method (statistical "
                "baselines have no inputs to attribute); only errors, KOL response from the "
                "data and cycles are reported")
    return {"method": None}


def _gradients(model: Forecaster, panel: Panel, segments: Segments, holdout: dict[str, Any],
               settings: ExplainSettings, writer: _Writer, progress: Stages) -> dict[str, Any]:
    from salesfusion.explain.attributions import integrated_gradients
    from salesfusion.explain.contributions import inverted_u, modality_shares, with_segments
    from salesfusion.explain.selection import attention_maps, selection_weights

    periods = panel.periods
    origins = explain_origins(len(periods), settings.origins, holdout["horizon"])
    with progress.stage(f"Integrated gradients at {len(origins)} origin(s), up to "
                        f"{settings.max_windows} windows"):
        found = integrated_gradients(model, panel, origins=origins,
                                     max_windows=settings.max_windows, seed=settings.seed)
        table = writer.table("attributions", with_segments(found.table, segments))
    with progress.stage("Modality shares"):
        for name, by in SHARES.items():
            writer.table(name, modality_shares(table, by))
        shape = writer.attempt("explanations", "inverted-U test of the content share over age",
                               lambda: inverted_u(table, seed=settings.seed),
                               {"inverted_u_curve": "curve"})
    with progress.stage("Selection weights and attention maps"):
        weights = selection_weights(model, panel, origins=origins)
        if weights is not None:
            writer.table("selection_weights", weights)
        maps = attention_maps(model, panel, origin=origins[-1])
        if maps:
            (writer.folder / "attention").mkdir(exist_ok=True)
        for name, values in maps.items():
            np.save(writer.folder / "attention" / f"{_safe(name)}.npy", np.asarray(values))
    return {"method": "integrated_gradients", "fit": "loaded",
            "origins": [periods[i] for i in origins],
            "attributions": found.summary(),
            "inverted_u": shape.summary() if shape is not None else None,
            "attention": sorted(f"attention/{_safe(n)}.npy" for n in maps)}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def reads_events(model: Forecaster) -> bool:
    """Whether the model's forecasts read the events table (its dynamic covariates)."""
    return bool(model.params.get("covariates", False))


def _kol(model: Forecaster, fitted: Forecaster, panel: Panel, history: Panel,
         holdout: dict[str, Any], settings: ExplainSettings, writer: _Writer,
         progress: Stages) -> dict[str, Any]:
    from salesfusion.explain.event_response import event_study
    from salesfusion.explain.model_response import model_response

    events = panel.events
    if events is None or events.filter(pl.col("item_id").is_not_null()).is_empty():
        writer.note("kol", "KOL response skipped: the panel has no events featuring an item")
        return {"data": False, "model": False}
    with progress.stage("KOL response from the data (event study)"):
        study = writer.attempt("kol", "event study", lambda: event_study(
            panel, segment=SEGMENT, seed=settings.seed), {
                "event_response_curves": "curves", "event_response_summary": "summary"})
    response = None
    if not reads_events(model):
        writer.note("kol", f"model response skipped: model '{model.name}' does not read events")
    elif holdout["horizon"] < 2:
        writer.note("kol", "model response skipped: a horizon of 1 shows no decay")
    else:
        with progress.stage("KOL response implied by the model (one forecast per event)"):
            response = writer.attempt("kol", "model response", lambda: model_response(
                fitted, history, max_lag=holdout["horizon"] - 1, segment=SEGMENT), {
                    "model_response_curves": "curves", "model_response_summary": "summary"})
    return {"data": study is not None, "model": response is not None}

