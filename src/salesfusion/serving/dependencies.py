"""What the routes share: the app's ``ModelStore`` and ``Limits`` as FastAPI dependencies, the
served model named by a route, and the checks of posted series against that model.

The store and limits live on ``app.state`` (``serving.api.create_app`` puts them there), not in
the routers: a router is built once per process, and one process may serve several apps (the
tests build one per limit they try). The dependencies that only read are ``async``: FastAPI runs
a plain ``def`` dependency in its thread pool, a hop per request for an attribute read.
"""

from __future__ import annotations

from typing import Annotated

import polars as pl
from fastapi import Depends, Request

from salesfusion.data.panel import SERIES_KEY
from salesfusion.data.validate import with_normal_ids
from salesfusion.serving.errors import ApiError
from salesfusion.serving.responses import series_name
from salesfusion.serving.schemas import SeriesInput
from salesfusion.serving.security import Limits
from salesfusion.serving.store import ModelStore, ServedModel

# Series pages start at most this far in (a count of series, far past any panel); a larger
# offset is a 422 rather than an integer the frame library cannot take.
MAX_OFFSET = 10**12


async def app_store(request: Request) -> ModelStore:
    """The models the app serves."""
    return request.app.state.store


async def app_limits(request: Request) -> Limits:
    """The request limits the app was started with."""
    return request.app.state.limits


Store = Annotated[ModelStore, Depends(app_store)]
ServiceLimits = Annotated[Limits, Depends(app_limits)]


def served(store: ModelStore, name: str, param: str = "name") -> ServedModel:
    """The served model ``name``, else a 404 naming ``param`` and the models served."""
    model = store.get(name)
    if model is None:
        raise ApiError(404, "model_not_found", f"no served model '{name}' (served: "
                                               f"{', '.join(sorted(store.models))})", param)
    return model


async def served_model(name: str, store: Store) -> ServedModel:
    """The model named by the route's ``{name}``.

    FastAPI calls a dependency before it validates the route's own query and body, so this
    404 would come before their 422: a route that has either looks the model up with ``served``
    in its body instead, so that a bad request is a 422 whichever model it names."""
    return served(store, name)


NamedModel = Annotated[ServedModel, Depends(served_model)]


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
    """``horizon``, unless it is past the server's or the model's longest (a 422 on ``param``)."""
    longest = min(limits.max_horizon, model.max_horizon or limits.max_horizon)
    if horizon > longest:
        raise ApiError(422, "horizon_too_long", f"{param}: {horizon} periods asked, model "
                       f"'{model.name}' forecasts at most {longest}", param)
    return horizon


def check_quantiles(asked: list[float] | None, model: ServedModel) -> list[float]:
    """The quantile levels asked for (all the model's when none are), each one it forecasts."""
    offered = model.quantile_levels
    if asked is None:
        return offered
    missing = [q for q in asked if not any(abs(q - o) < 1e-9 for o in offered)]
    if missing:
        raise ApiError(422, "quantile_not_offered", f"options.quantiles: model '{model.name}' "
                       f"forecasts quantiles {offered or 'none'}, not {missing}",
                       "options.quantiles")
    return asked
