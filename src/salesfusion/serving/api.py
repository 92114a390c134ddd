"""The forecast service: a FastAPI app over a ``ModelStore``.

Routes (all but ``/v1/health`` and the dashboard's page need an API key, see
``serving.security``), one router per feature:

- ``serving.forecast_routes``: ``GET /v1/health``; ``GET /v1/models``,
  ``GET /v1/models/{name}``, ``GET /v1/models/{name}/series``: what is served;
  ``POST /v1/timeseries/forecast``: forecasts of stored series (KServe's shape,
  ``serving.schemas``), one or a batch of them;
- ``serving.explain``: ``POST /v1/models/{name}/explain``, integrated-gradient attributions by
  input group;
- ``serving.new_items``: ``POST /v1/models/{name}/new-items``, a forecast for an item described
  by its content;
- ``serving.dashboard``: the dashboard's page and its data routes.

The routes read the store and limits from ``app.state`` (``serving.dependencies``), so the
routers are built once and every app includes the same ones. Each route checks its key, then
reads and checks its body, before FastAPI parses it (``serving.guard``).

Errors are JSON ``{"error": {"code", "message", "param", "type"}}``: 401 without a valid key,
404 for an unknown model, 413 for a body over the limit, 422 for a request that does not
validate, ``param`` naming the field (``inputs.3.market``, ``options.horizon``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from salesfusion.serving import dashboard, explain, forecast_routes, new_items
from salesfusion.serving.errors import add_error_handlers
from salesfusion.serving.guard import GuardedRoute, KeyCheck
from salesfusion.serving.middleware import BodyLimit, RequestLog, log_event
from salesfusion.serving.security import Limits
from salesfusion.serving.store import ModelStore

# In this order: the OpenAPI document lists the paths as the routers are included.
ROUTERS = (forecast_routes.service_router, forecast_routes.models_router,
           forecast_routes.forecast_router, explain.router, new_items.router,
           dashboard.page_router, dashboard.router)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    models = sorted(app.state.store.models)
    log_event("started", models=models)
    yield
    # uvicorn runs this after the requests in flight have been answered (or its graceful
    # timeout has passed), then re-raises the SIGTERM/SIGINT it caught.
    log_event("stopped", models=models)


def create_app(store: ModelStore, keys: list[bytes], limits: Limits | None = None) -> Any:
    """The ASGI application: the FastAPI app inside the body limit and the request log."""
    limits = limits or Limits()
    app = FastAPI(title="salesfusion forecast service", version="1", lifespan=lifespan,
                  description="Demand forecasts of the served salesfusion models.")
    app.state.store, app.state.limits = store, limits
    app.state.key_check = KeyCheck(keys)
    app.state.dashboard = dashboard.DashboardCache(store)
    # A route added to the app itself is guarded like the routers' routes.
    app.router.route_class = GuardedRoute
    add_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return RequestLog(BodyLimit(app, limits.max_body_bytes))
