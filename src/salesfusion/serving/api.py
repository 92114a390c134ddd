"""The forecast service: a FastAPI app over a ``ModelStore``.

Routes (all but ``/v1/health`` need an API key, see ``serving.security``):

- ``GET /v1/health``; ``GET /v1/models``, ``GET /v1/models/{name}``: what is served;
- ``POST /v1/timeseries/forecast``: forecasts of stored series (KServe's shape,
  ``serving.schemas``), one or a batch of them;
- ``POST /v1/models/{name}/new-items``: a forecast for an item described by its content
  (``serving.new_items``);
- ``POST /v1/models/{name}/explain``: integrated-gradient attributions by input group;
- the dashboard (``serving.dashboard``) and its data routes.

Errors are JSON ``{"error": {"code", "message", "param", "type"}}``: 401 without a valid key,
404 for an unknown model, 413 for a body over the limit, 422 for a request that does not
validate, ``param`` naming the field (``inputs.3.market``, ``options.horizon``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import polars as pl
from fastapi import Depends, FastAPI, Query

from salesfusion.data.forecast_frame import quantile_name
from salesfusion.data.panel import SERIES_KEY
from salesfusion.data.validate import with_normal_ids
from salesfusion.serving.errors import ApiError, add_error_handlers
from salesfusion.serving.guard import GuardedRoute, KeyCheck
from salesfusion.serving.middleware import BodyLimit, RequestLog, log_event
from salesfusion.serving.schemas import (
    ErrorBody,
    ExplainRequest,
    ExplainResponse,
    ForecastOutput,
    ForecastRequest,
    ForecastResponse,
    Health,
    ModelInfo,
    SeriesInput,
    SeriesKey,
    SeriesPage,
    TimeSeriesForecast,
)
from salesfusion.serving.security import Limits
from salesfusion.serving.store import ModelStore, ServedModel

# Series pages start at most this far in (a count of series, far past any panel); a larger
# offset is a 422 rather than an integer the frame library cannot take.
MAX_OFFSET = 10**12


def create_app(store: ModelStore, keys: list[bytes], limits: Limits | None = None) -> Any:
    """The ASGI application: the FastAPI app inside the body limit and the request log."""
    limits = limits or Limits()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log_event("started", models=sorted(store.models))
        yield
        # uvicorn runs this after the requests in flight have been answered (or its graceful
        # timeout has passed), then re-raises the SIGTERM/SIGINT it caught.
        log_event("stopped", models=sorted(store.models))

    app = FastAPI(title="salesfusion forecast service", version="1", lifespan=lifespan,
                  description="Demand forecasts of the served salesfusion models.")
    app.state.store, app.state.limits = store, limits
    # Every route checks its key, then reads and checks its body, before FastAPI parses it.
    app.router.route_class = GuardedRoute
    add_error_handlers(app)
    authed = [Depends(KeyCheck(keys))]

    @app.get("/v1/health", response_model=Health, tags=["service"])
    def health() -> Health:
        return Health(status="ok", models=len(store.models))

    @app.get("/v1/models", response_model=list[ModelInfo], dependencies=authed,
             tags=["models"])
    def list_models() -> list[ModelInfo]:
        return [model_info(m) for m in store.models.values()]

    @app.get("/v1/models/{name}", response_model=ModelInfo, dependencies=authed,
             tags=["models"])
    def get_model(name: str) -> ModelInfo:
        return model_info(served(store, name))

    @app.get("/v1/models/{name}/series", response_model=SeriesPage, dependencies=authed,
             tags=["models"])
    def list_series(name: str, offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
                    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000) -> SeriesPage:
        """The series a model forecasts from its history, in the history's order."""
        keys = served(store, name).history.data.select(SERIES_KEY).unique(maintain_order=True)
        page = keys.slice(offset, limit)
        return SeriesPage(total=keys.height, offset=offset,
                          series=[SeriesKey(item_id=i, market=m) for i, m in page.rows()])

    @app.post("/v1/timeseries/forecast", response_model=ForecastResponse, dependencies=authed,
              tags=["forecast"])
    def forecast(request: ForecastRequest) -> ForecastResponse:
        model = served(store, request.model, param="model")
        inputs = check_inputs(request.inputs, model, limits)
        horizon = check_horizon(request.options.horizon, model, limits, "options.horizon")
        levels = check_quantiles(request.options.quantiles, model)
        keys = pl.DataFrame([(i.item_id, i.market) for i in inputs],
                            schema=SERIES_KEY, orient="row")
        frame = model.forecast(horizon, keys)
        outputs = forecast_outputs(inputs, frame, model, levels, posted=request.inputs)
        return respond(model.name, outputs, request.metadata)

    @app.post("/v1/models/{name}/explain", response_model=ExplainResponse, dependencies=authed,
              tags=["explain"])
    def explain(name: str, request: ExplainRequest) -> ExplainResponse:
        from salesfusion.serving.explain import explain_series

        model = served(store, name)
        return explain_series(model, check_inputs(request.inputs, model, limits))

    from salesfusion.serving.dashboard import add_dashboard
    from salesfusion.serving.new_items import add_new_item_route

    add_new_item_route(app, store, limits, authed)
    add_dashboard(app, store, authed)
    return RequestLog(BodyLimit(app, limits.max_body_bytes))


def served(store: ModelStore, name: str, param: str = "name") -> ServedModel:
    model = store.get(name)
    if model is None:
        raise ApiError(404, "model_not_found", f"no served model '{name}' (served: "
                                               f"{', '.join(sorted(store.models))})", param)
    return model


def model_info(model: ServedModel) -> ModelInfo:

    history = model.history
    periods = history.periods
    items = history.items
    return ModelInfo(
        name=model.name, model=model.forecaster.name, freq=model.forecaster.freq,
        horizon=model.max_horizon, quantiles=model.quantile_levels,
        supports_cold_start=model.forecaster.supports_cold_start,
        supports_launch=model.forecaster.supports_launch,
        explains=model.forecaster.explains_by_gradients, n_series=history.n_series,
        n_items=items["item_id"].n_unique() if items is not None
        else history.data["item_id"].n_unique(),
        markets=sorted(history.data["market"].unique().to_list()),
        history_start=iso(periods[0]), history_end=iso(periods[-1]),
        checksum=model.checksum, params=model.forecaster.params)


def check_inputs(inputs: list[SeriesInput], model: ServedModel,
                 limits: Limits) -> list[SeriesInput]:
    """The inputs with their ids as the model's data holds them (see ``stored_ids``), refusing
    a batch over the limit, a repeated name or another frequency than the model's."""
    if len(inputs) > limits.max_batch:
        raise ApiError(422, "batch_too_large", f"inputs: {len(inputs)} series, at most "
                                               f"{limits.max_batch} per request", "inputs")
    inputs = stored_ids(inputs, model)
    names: set[str] = set()
    for index, series in enumerate(inputs):
        name = series_name(series)
        if name in names:
            raise ApiError(422, "duplicate_name", f"inputs.{index}.name: {name!r} repeats an "
                                                  f"earlier input", f"inputs.{index}.name")
        names.add(name)
        freq = model.forecaster.freq
        if series.frequency is not None and series.frequency.upper() != freq:
            raise ApiError(422, "wrong_frequency", f"inputs.{index}.frequency: model "
                           f"'{model.name}' forecasts frequency '{freq}', not "
                           f"'{series.frequency}'", f"inputs.{index}.frequency")
    return inputs


def stored_ids(inputs: list[SeriesInput], model: ServedModel) -> list[SeriesInput]:
    """``inputs`` with their item ids and markets normalised by the data's own rule
    (``with_normal_ids``, what a dataset's tables go through), except an input whose ids the
    model's data holds as posted (a model trained with ``cleaning.normalize_item_ids: false``)."""
    posted = pl.DataFrame([(s.item_id, s.market) for s in inputs], schema=SERIES_KEY,
                          orient="row")
    normal = with_normal_ids(posted).rows()
    return [series if series.item_id in model.item_ids and series.market in model.markets
            else series.model_copy(update={"item_id": item_id, "market": market})
            for series, (item_id, market) in zip(inputs, normal, strict=True)]


def check_horizon(horizon: int, model: ServedModel, limits: Limits, param: str) -> int:
    longest = min(limits.max_horizon, model.max_horizon or limits.max_horizon)
    if horizon > longest:
        raise ApiError(422, "horizon_too_long", f"{param}: {horizon} periods asked, model "
                       f"'{model.name}' forecasts at most {longest}", param)
    return horizon


def check_quantiles(asked: list[float] | None, model: ServedModel) -> list[float]:
    offered = model.quantile_levels
    if asked is None:
        return offered
    missing = [q for q in asked if not any(abs(q - o) < 1e-9 for o in offered)]
    if missing:
        raise ApiError(422, "quantile_not_offered", f"options.quantiles: model '{model.name}' "
                       f"forecasts quantiles {offered or 'none'}, not {missing}",
                       "options.quantiles")
    return asked


def series_name(series: SeriesInput) -> str:
    return series.name or f"{series.item_id}@{series.market}"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def quantile_column(level: float, columns: list[str]) -> str:
    """The forecast column of quantile ``level``: its ``q<level>`` column, or ``y_pred`` for the
    0.5 quantile of a model whose point forecast is the median (it writes no ``q0.5``)."""
    name = quantile_name(level)
    return "y_pred" if name not in columns and abs(level - 0.5) < 1e-9 else name


def series_forecast(name: str, rows: pl.DataFrame, freq: str,
                    levels: list[float]) -> TimeSeriesForecast:
    """One series' forecast rows (sorted by time) as the response's content."""
    stamps = rows["timestamp"].to_list()
    return TimeSeriesForecast(
        name=name, item_id=rows["item_id"][0], market=rows["market"][0],
        mean_forecast=rows["y_pred"].to_list(), frequency=freq,
        start_timestamp=iso(stamps[0]), timestamps=[iso(s) for s in stamps],
        quantiles={str(q): rows[quantile_column(q, rows.columns)].to_list() for q in levels},
        cold_start=bool(rows["cold_start"][0]) if "cold_start" in rows.columns else False,
        before_launch=rows["before_launch"].to_list() if "before_launch" in rows.columns
        else [])


def forecast_outputs(inputs: list[SeriesInput], frame: pl.DataFrame, model: ServedModel,
                     levels: list[float],
                     posted: list[SeriesInput] | None = None) -> list[ForecastOutput]:
    """One output per input; ``posted``: the inputs as the client wrote them, named in the
    error of a series not found when they differ from the normalised ``inputs``."""
    by_series = {key: rows.sort("timestamp") for key, rows in
                 frame.group_by(SERIES_KEY, maintain_order=True)}
    outputs = []
    for series, asked in zip(inputs, posted or inputs, strict=True):
        rows = by_series.get((series.item_id, series.market))
        output_id = f"ts_{uuid.uuid4().hex}"
        if rows is None:
            reason = model.unknown_reason(series.item_id, series.market)
            if (asked.item_id, asked.market) != (series.item_id, series.market):
                reason += f" (posted as {asked.item_id!r} in {asked.market!r})"
            outputs.append(ForecastOutput(id=output_id, status="error", error=ErrorBody(
                code="unknown_series", message=reason, param=series_name(series))))
            continue
        outputs.append(ForecastOutput(id=output_id, status="completed", content=[
            series_forecast(series_name(series), rows, model.forecaster.freq, levels)]))
    return outputs


def respond(model: str, outputs: list[ForecastOutput],
            metadata: dict[str, Any] | None) -> ForecastResponse:
    failed = sum(o.status == "error" for o in outputs)
    status = "completed" if not failed else "error" if failed == len(outputs) else "partial"
    return ForecastResponse(id=f"resp_{uuid.uuid4().hex}", created_at=int(time.time()),
                            status=status, model=model, outputs=outputs, metadata=metadata)
