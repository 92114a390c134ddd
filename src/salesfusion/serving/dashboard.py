"""The forecast dashboard: a static page (``GET /dashboard``) and the JSON routes it reads
(``/v1/dashboard/...``, each behind the API key).

The page holds no data, so it loads without a key; it asks for one, keeps it in the tab's
``sessionStorage`` and sends it as ``X-API-Key``. Plotly.js is served from the installed
``plotly`` package, so the page works offline. Tables come as ``{"columns", "rows"}``; each
table route also answers ``?format=csv`` with the same rows (``dashboard_data.table_csv``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any, Literal

import polars as pl
from fastapi import Depends, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse

from salesfusion.errors import InputError
from salesfusion.serving import dashboard_data as data
from salesfusion.serving.dashboard_view import series_view, served_backtest
from salesfusion.serving.dependencies import ServiceLimits, Store, served
from salesfusion.serving.errors import ApiError
from salesfusion.serving.guard import guarded_router
from salesfusion.serving.store import ModelStore, ServedModel

STATIC = Path(__file__).parent / "static"
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


class DashboardCache:
    """What one app's dashboard keeps between requests: the files it serves by name, the
    catalogue of its store's series and its items' content columns. One per app
    (``app.state.dashboard``), because each app serves its own store."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store
        # Files by name, so that a request names a file rather than a path (no traversal).
        self.static = {p.name: p for p in STATIC.iterdir() if p.is_file()} if STATIC.is_dir() \
            else {}
        self.static["plotly.min.js"] = plotly_js()  # without plotly the app does not start
        self._lock = threading.Lock()
        self._catalogue: pl.DataFrame | None = None
        self._items: pl.DataFrame | None = None

    def series(self) -> pl.DataFrame:
        """Every served series with its title and cold-start flag (``series_catalogue``),
        built on first use: the store never changes."""
        with self._lock:
            if self._catalogue is None:
                models = list(self.store.models.values())
                self._catalogue = data.series_catalogue(
                    [m.history for m in models],
                    [m.forecaster.supports_cold_start for m in models])
            return self._catalogue

    def contents(self, item_ids: list[str]) -> list[list[dict[str, Any]]]:
        """Each item's content parts (``dashboard_data.item_contents``), in the order asked;
        none for an item no items table describes."""
        with self._lock:
            if self._items is None:
                self._items = data.described_items(
                    [m.history for m in self.store.models.values()])
            items = self._items
        asked = pl.DataFrame({"item_id": item_ids}, schema={"item_id": items.schema["item_id"]})
        return data.item_contents(asked.join(items, on="item_id", how="left",
                                             maintain_order="left"),
                                  self.store.insights.image_root)


async def app_dashboard(request: Request) -> DashboardCache:
    return request.app.state.dashboard


Dashboard = Annotated[DashboardCache, Depends(app_dashboard)]

page_router = guarded_router(needs_key=False)  # the page and its scripts hold no data
router = guarded_router(needs_key=True)


def _answer(table: dict[str, Any], fmt: str, name: str) -> Any:
    if fmt == "csv":
        return PlainTextResponse(data.table_csv(table), media_type="text/csv",
                                 headers={"Content-Disposition":
                                          f'attachment; filename="{name}.csv"'})
    return table


def _chosen(store: ModelStore, models: list[str] | None) -> list[ServedModel]:
    names = models or sorted(store.models)
    return [served(store, name, param="models") for name in dict.fromkeys(names)]


@page_router.get("/dashboard", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC / "dashboard.html", media_type="text/html",
                        headers={"Content-Security-Policy": PAGE_POLICY,
                                 "Cache-Control": "no-cache"})


@page_router.get("/dashboard/static/{name}", include_in_schema=False)
def static(name: str, dashboard: Dashboard) -> FileResponse:
    path = dashboard.static.get(name)
    if path is None:
        raise ApiError(404, "not_found", f"no dashboard file '{name}'", "name")
    return FileResponse(path, headers={"Cache-Control": "no-cache"})


@router.get("/v1/dashboard/meta", tags=["dashboard"])
def meta(store: Store, dashboard: Dashboard) -> dict[str, Any]:
    """What the dashboard can show: models, markets, backtest and explanation tables."""
    insights = store.insights
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
            "markets": sorted(dashboard.series()["market"].unique().to_list()),
            "backtest": backtest_info,
            "explain": [{"name": t, "title": data.EXPLAIN_TABLES[t]} for t in tables]}


@router.get("/v1/dashboard/series", tags=["dashboard"])
def search(dashboard: Dashboard,
           q: Annotated[str, Query(max_length=200)] = "",
           market: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
           limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    """Series whose item id or title contains ``q`` (case-insensitive), cold starts of
    models that forecast them included and flagged, with the modalities each item has
    content for (a file-reading one only when its file is there)."""
    found, total = data.search_series(dashboard.series(), q, market, limit)
    contents = dashboard.contents(found["item_id"].to_list())
    rows = []
    for r, parts in zip(found.iter_rows(named=True), contents, strict=True):
        # A file that is not there is no content: the encoders mask it as missing.
        usable = [p for p in parts if p["file"] is not None or not p["reads_files"]]
        rows.append({"item_id": r["item_id"], "market": r["market"], "title": r["title"],
                     "cold_start": r["cold_start"], "content": [p["modality"] for p in usable],
                     "has_image": any(p["file"] is not None for p in parts)})
    return {"total": total, "series": rows}


@router.get("/v1/dashboard/view", tags=["dashboard"])
def view(store: Store, limits: ServiceLimits, dashboard: Dashboard,
         item_id: Text, market: Text, models: Models = None,
         horizon: Annotated[int | None, Query(ge=1)] = None,
         format: Format = "json") -> Any:
    """One series: its history, each model's forecast with its quantile band, the
    backtest forecasts of those models, its title and its item's content by modality (photos
    as thumbnails); ``table`` is all of it in rows (what ``format=csv`` returns)."""
    picked = _chosen(store, models)
    known = dashboard.series().filter((pl.col("item_id") == item_id)
                                      & (pl.col("market") == market))
    if not known.height:
        raise ApiError(404, "unknown_series", f"no series {item_id!r} in {market!r} in the "
                                              f"served models", "item_id")
    result = series_view(picked, known.row(0, named=True), dashboard.contents([item_id])[0],
                         horizon, limits, store.insights)
    return result if format == "json" else _answer(result["table"], format,
                                                   f"{item_id}_{market}")


@router.get("/v1/dashboard/metrics", tags=["dashboard"])
def metrics(store: Store,
            by: Annotated[Literal["step", "market"], Query()] = "step",
            models: Models = None,
            market: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
            format: Format = "json") -> Any:
    """WAPE and bias (percent of the actual total; positive bias: over-forecast) per
    backtest model and horizon step or market, from the backtest's forecasts."""
    frame = served_backtest(store.insights)
    offered = set(frame["model"].unique().to_list())
    for name in models or []:
        if name not in offered:
            raise ApiError(404, "model_not_found", f"no model '{name}' in the backtest "
                           f"(models: {', '.join(sorted(offered))})", "models")
    table = data.table_json(data.error_metrics(frame, by, models, market))
    return _answer(table, format, f"metrics_by_{by}")


@router.get("/v1/dashboard/explain/{table}", tags=["dashboard"])
def explanation(table: str, store: Store, format: Format = "json") -> Any:
    """One table of the served explain folder (``meta`` lists those present)."""
    folder = store.insights.explain
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
