"""The service's own routes: its health (no key), the models it serves, and forecasts of their
stored series (KServe's shape, ``serving.schemas``), one or a batch of them."""

from __future__ import annotations

from typing import Annotated

import polars as pl
from fastapi import Query

from salesfusion.data.panel import SERIES_KEY
from salesfusion.serving.dependencies import (
    MAX_OFFSET,
    NamedModel,
    ServiceLimits,
    Store,
    check_horizon,
    check_inputs,
    check_quantiles,
    served,
)
from salesfusion.serving.guard import guarded_router
from salesfusion.serving.responses import forecast_outputs, model_info, respond
from salesfusion.serving.schemas import (
    ForecastRequest,
    ForecastResponse,
    Health,
    ModelInfo,
    SeriesKey,
    SeriesPage,
)

# A load balancer probes the health without a key; it says how many models are served, no more.
service_router = guarded_router(needs_key=False)
models_router = guarded_router(needs_key=True)
forecast_router = guarded_router(needs_key=True)


@service_router.get("/v1/health", response_model=Health, tags=["service"])
def health(store: Store) -> Health:
    return Health(status="ok", models=len(store.models))


@models_router.get("/v1/models", response_model=list[ModelInfo], tags=["models"])
def list_models(store: Store) -> list[ModelInfo]:
    return [model_info(m) for m in store.models.values()]


@models_router.get("/v1/models/{name}", response_model=ModelInfo, tags=["models"])
def get_model(model: NamedModel) -> ModelInfo:
    return model_info(model)


@models_router.get("/v1/models/{name}/series", response_model=SeriesPage, tags=["models"])
def list_series(name: str, store: Store,
                offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
                limit: Annotated[int, Query(ge=1, le=100_000)] = 1000) -> SeriesPage:
    """The series a model forecasts from its history, in the history's order."""
    keys = served(store, name).history.data.select(SERIES_KEY).unique(maintain_order=True)
    page = keys.slice(offset, limit)
    return SeriesPage(total=keys.height, offset=offset,
                      series=[SeriesKey(item_id=i, market=m) for i, m in page.rows()])


@forecast_router.post("/v1/timeseries/forecast", response_model=ForecastResponse,
                      tags=["forecast"])
def forecast(request: ForecastRequest, store: Store, limits: ServiceLimits) -> ForecastResponse:
    model = served(store, request.model, param="model")
    inputs = check_inputs(request.inputs, model, limits)
    horizon = check_horizon(request.options.horizon, model, limits, "options.horizon")
    levels = check_quantiles(request.options.quantiles, model)
    keys = pl.DataFrame([(i.item_id, i.market) for i in inputs],
                        schema=SERIES_KEY, orient="row")
    frame = model.forecast(horizon, keys)
    outputs = forecast_outputs(inputs, frame, model, levels, posted=request.inputs)
    return respond(model.name, outputs, request.metadata)
