"""The forecast dashboard: a static page (``GET /dashboard``) and the JSON routes it reads
(``/v1/dashboard/...``, each behind the API key).

The page holds no data, so it loads without a key; it asks for one, keeps it in the tab's
``sessionStorage`` and sends it as ``X-API-Key``. Plotly.js is served from the installed
``plotly`` package, so the page works offline. Tables come as ``{"columns", "rows"}``; each
table route also answers ``?format=csv`` with the same rows (``dashboard_data.table_csv``).
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

import polars as pl
from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, PlainTextResponse

from salesfusion.data.forecast_frame import quantile_columns
from salesfusion.data.panel import SERIES_KEY
from salesfusion.errors import InputError
from salesfusion.serving import dashboard_data as data
from salesfusion.serving.api import ApiError, check_horizon, served
from salesfusion.serving.store import ModelStore, ServedModel

STATIC = Path(__file__).parent / "static"
DEFAULT_HORIZON = 8  # periods shown for a model that forecasts any horizon
# The page loads its scripts and styles from this server only, and images only as data URIs.
PAGE_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
               "script-src 'self'; connect-src 'self'; object-src 'none'; "
               "frame-ancestors 'none'; base-uri 'none'")

Text = Annotated[str, Query(min_length=1, max_length=200)]
Format = Annotated[Literal["json", "csv"], Query()]
Models = Annotated[list[str] | None, Query(max_length=20)]


def plotly_js() -> Path:
    from importlib.util import find_spec

    spec = find_spec("plotly")
    if spec is None or spec.origin is None:
        raise InputError("the dashboard needs the plotly package (its plotly.min.js)")
    return Path(spec.origin).parent / "package_data" / "plotly.min.js"


def _floats(values: list[Any]) -> list[float | None]:
    return [None if v is None or not math.isfinite(v) else float(v) for v in values]


def _stamps(frame: pl.DataFrame) -> list[str]:
    return frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S").to_list()


def _answer(table: dict[str, Any], fmt: str, name: str) -> Any:
    if fmt == "csv":
        return PlainTextResponse(data.table_csv(table), media_type="text/csv",
                                 headers={"Content-Disposition":
                                          f'attachment; filename="{name}.csv"'})
    return table


def backtest_overlays(frame: pl.DataFrame, picked: list[ServedModel], item_id: str,
                      market: str) -> list[dict[str, Any]]:
    """One series' backtest forecasts for each picked model, one entry per window. A served
    model's backtest rows are those under its name, else under its kind (the forecaster's
    name, which ``salesfusion backtest`` uses)."""
    offered = set(frame["model"].unique().to_list())
    overlays = []
    for model in picked:
        source = next((n for n in (model.name, model.forecaster.name) if n in offered), None)
        if source is None:
            continue
        rows = data.series_backtest(frame, item_id, market, [source])
        for (window,), part in rows.group_by(["window"], maintain_order=True):
            overlays.append({"model": model.name, "source": source, "window": window,
                             "timestamps": _stamps(part),
                             "y_true": _floats(part["y_true"].to_list()),
                             "y_pred": _floats(part["y_pred"].to_list())})
    return overlays


def add_dashboard(app: FastAPI, store: ModelStore, authed: list[Any]) -> None:
    """Add the dashboard page, its static files and its data routes (with ``authed``)."""
    insights = store.insights
    static_files = {p.name: p for p in STATIC.iterdir() if p.is_file()} if STATIC.is_dir() \
        else {}
    static_files["plotly.min.js"] = plotly_js()
    catalogue_lock = threading.Lock()
    catalogue: list[pl.DataFrame] = []

    def series_table() -> pl.DataFrame:
        with catalogue_lock:  # the store never changes: built once, on first use
            if not catalogue:
                models = list(store.models.values())
                catalogue.append(data.series_catalogue(
                    [m.history for m in models],
                    [m.forecaster.supports_cold_start for m in models]))
            return catalogue[0]

    def backtest() -> pl.DataFrame:
        if insights.backtest is None:
            raise ApiError(404, "no_backtest", "no backtest is served (start the server with "
                                               "--backtest DIR)")
        try:
            return data.read_backtest(insights.backtest)
        except InputError as exc:
            raise ApiError(404, "no_backtest", str(exc)) from None

    def chosen(models: list[str] | None) -> list[ServedModel]:
        names = models or sorted(store.models)
        return [served(store, name, param="models") for name in dict.fromkeys(names)]

    @app.get("/dashboard", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "dashboard.html", media_type="text/html",
                            headers={"Content-Security-Policy": PAGE_POLICY,
                                     "Cache-Control": "no-cache"})

    @app.get("/dashboard/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        path = static_files.get(name)
        if path is None:
            raise ApiError(404, "not_found", f"no dashboard file '{name}'", "name")
        return FileResponse(path, headers={"Cache-Control": "no-cache"})

    @app.get("/v1/dashboard/meta", dependencies=authed, tags=["dashboard"])
    def meta() -> dict[str, Any]:
        """What the dashboard can show: models, markets, backtest and explanation tables."""
        models = [{"name": m.name, "model": m.forecaster.name, "horizon": m.max_horizon,
                   "quantiles": m.quantile_levels,
                   "supports_cold_start": m.forecaster.supports_cold_start}
                  for m in (store.models[n] for n in sorted(store.models))]
        backtest_info: dict[str, Any] | None = None
        if insights.backtest is not None:
            try:
                names = sorted(data.read_backtest(insights.backtest)["model"].unique())
                backtest_info = {"models": names, "error": None}
            except InputError as exc:
                backtest_info = {"models": [], "error": str(exc)}
        tables = data.explain_tables(insights.explain)
        return {"models": models,
                "markets": sorted(series_table()["market"].unique().to_list()),
                "backtest": backtest_info,
                "explain": [{"name": t, "title": data.EXPLAIN_TABLES[t]} for t in tables]}

    @app.get("/v1/dashboard/series", dependencies=authed, tags=["dashboard"])
    def search(q: Annotated[str, Query(max_length=200)] = "",
               market: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
               limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
        """Series whose item id or title contains ``q`` (case-insensitive), cold starts of
        models that forecast them included and flagged."""
        found, total = data.search_series(series_table(), q, market, limit)
        rows = [{"item_id": r["item_id"], "market": r["market"], "title": r["title"],
                 "cold_start": r["cold_start"],
                 "has_image": data.resolve_image(insights.image_root, r["image"]) is not None}
                for r in found.iter_rows(named=True)]
        return {"total": total, "series": rows}

    @app.get("/v1/dashboard/view", dependencies=authed, tags=["dashboard"])
    def view(item_id: Text, market: Text, models: Models = None,
             horizon: Annotated[int | None, Query(ge=1)] = None,
             format: Format = "json") -> Any:
        """One series: its history, each model's forecast with its quantile band, the
        backtest forecasts of those models, its title and photo; ``table`` is all of it in
        rows (what ``format=csv`` returns)."""
        picked = chosen(models)
        known = series_table().filter((pl.col("item_id") == item_id)
                                      & (pl.col("market") == market))
        if not known.height:
            raise ApiError(404, "unknown_series", f"no series {item_id!r} in {market!r} in the "
                                                  f"served models", "item_id")
        result = series_view(picked, known.row(0, named=True), horizon)
        return result if format == "json" else _answer(result["table"], format,
                                                       f"{item_id}_{market}")

    def series_view(picked: list[ServedModel], series: dict[str, Any],
                    horizon: int | None) -> dict[str, Any]:
        item_id, market = series["item_id"], series["market"]
        keys = pl.DataFrame({"item_id": [item_id], "market": [market]})
        limits = app.state.limits
        steps = {m.name: check_horizon(horizon or m.max_horizon or DEFAULT_HORIZON, m, limits,
                                       "horizon") for m in picked}
        history = pl.DataFrame(schema={"timestamp": pl.Datetime("us"), "y": pl.Float64})
        for model in picked:
            rows = model.history.data.join(keys, on=SERIES_KEY, how="semi")
            if rows.height:
                history = rows.select("timestamp", pl.col("y").cast(pl.Float64)).sort("timestamp")
                break
        table_rows = [["history", None, None, t, y, None, None, None]
                      for t, y in zip(_stamps(history), _floats(history["y"].to_list()),
                                      strict=True)]
        forecasts, notes = [], []
        for model in picked:
            frame = model.forecast(steps[model.name], keys).sort("timestamp")
            if not frame.height:
                notes.append(f"{model.name}: {model.unknown_reason(item_id, market)}")
                continue
            band = quantile_columns(frame.columns)
            lower, upper = (band[0], band[-1]) if len(band) >= 2 else (None, None)
            stamps, point = _stamps(frame), _floats(frame["y_pred"].to_list())
            low = _floats(frame[lower].to_list()) if lower else [None] * len(stamps)
            high = _floats(frame[upper].to_list()) if upper else [None] * len(stamps)
            forecasts.append({"model": model.name, "kind": model.forecaster.name,
                              "cold_start": bool(frame["cold_start"].any())
                              if "cold_start" in frame.columns else False,
                              "band": f"{lower}-{upper}" if lower else None,
                              "timestamps": stamps, "y_pred": point, "lower": low,
                              "upper": high})
            table_rows += [["forecast", model.name, None, t, None, p, lo, hi]
                           for t, p, lo, hi in zip(stamps, point, low, high, strict=True)]
        overlays: list[dict[str, Any]] = []
        if insights.backtest is not None:
            try:
                frame = backtest()
            except ApiError as exc:  # the forecasts stand without their overlay
                notes.append(f"backtest overlay: {exc.message}")
                frame = None
            if frame is not None:
                overlays = backtest_overlays(frame, picked, item_id, market)
        for o in overlays:
            table_rows += [["backtest", o["model"], o["window"], t, y, p, None, None]
                           for t, y, p in zip(o["timestamps"], o["y_true"], o["y_pred"],
                                              strict=True)]
        photo = data.thumbnail(data.resolve_image(insights.image_root, series["image"]))
        return {"item_id": item_id, "market": market, "title": series["title"],
                "cold_start": series["cold_start"], "photo": photo,
                "history": {"timestamps": _stamps(history),
                            "y": _floats(history["y"].to_list())},
                "forecasts": forecasts, "backtest": overlays, "notes": notes,
                "table": {"columns": ["series", "model", "window", "timestamp", "y", "y_pred",
                                      "lower", "upper"], "rows": table_rows}}

    @app.get("/v1/dashboard/metrics", dependencies=authed, tags=["dashboard"])
    def metrics(by: Annotated[Literal["step", "market"], Query()] = "step",
                models: Models = None,
                market: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
                format: Format = "json") -> Any:
        """WAPE and bias (percent of the actual total; positive bias: over-forecast) per
        backtest model and horizon step or market, from the backtest's forecasts."""
        frame = backtest()
        offered = set(frame["model"].unique().to_list())
        for name in models or []:
            if name not in offered:
                raise ApiError(404, "model_not_found", f"no model '{name}' in the backtest "
                               f"(models: {', '.join(sorted(offered))})", "models")
        table = data.table_json(data.error_metrics(frame, by, models, market))
        return _answer(table, format, f"metrics_by_{by}")

    @app.get("/v1/dashboard/explain/{table}", dependencies=authed, tags=["dashboard"])
    def explanation(table: str, format: Format = "json") -> Any:
        """One table of the served explain folder (``meta`` lists those present)."""
        folder = insights.explain
        present = data.explain_tables(folder)
        if folder is None or table not in present:
            where = "no explain folder is served (start the server with --explain DIR)" \
                if folder is None else f"tables served: {', '.join(present)}"
            raise ApiError(404, "no_explanation", f"no explanation table '{table}'; {where}",
                           "table")
        try:
            frame = data.read_explain(folder, table)
        except InputError as exc:
            raise ApiError(404, "no_explanation", str(exc), "table") from None
        return _answer(data.table_json(frame), format, table)
