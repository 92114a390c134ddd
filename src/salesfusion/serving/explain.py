"""``POST /v1/models/{name}/explain``: attributions of served forecasts, by input group.

The forecast explained is the one the service gives: from the last period of the model's
history. The baseline is the zero input (not the mean window that ``salesfusion explain``
uses), because a mean taken over the windows of one request would make a series' explanation
depend on which other series were asked for with it.
"""

from __future__ import annotations

import polars as pl

from salesfusion.data.panel import SERIES_KEY
from salesfusion.errors import InputError
from salesfusion.serving.dependencies import ServiceLimits, Store, check_inputs, served
from salesfusion.serving.errors import ApiError
from salesfusion.serving.guard import guarded_router
from salesfusion.serving.responses import iso, series_name
from salesfusion.serving.schemas import (
    ExplainRequest,
    ExplainResponse,
    GroupShare,
    SeriesExplanation,
    SeriesInput,
)
from salesfusion.serving.store import ServedModel

STEPS = 32  # points of the integrated-gradients path

router = guarded_router(needs_key=True)


@router.post("/v1/models/{name}/explain", response_model=ExplainResponse, tags=["explain"])
def explain(name: str, request: ExplainRequest, store: Store,
            limits: ServiceLimits) -> ExplainResponse:
    model = served(store, name)
    return explain_series(model, check_inputs(request.inputs, model, limits))


def explain_series(model: ServedModel, inputs: list[SeriesInput]) -> ExplainResponse:
    """Each input's mean absolute attribution by input group over the forecast steps."""
    # Imported when asked: it loads torch, which a service of tree models never needs.
    from salesfusion.explain.attributions import integrated_gradients

    if not model.forecaster.explains_by_gradients:
        raise ApiError(422, "not_explainable", f"model '{model.name}' ({model.forecaster.name}) "
                       f"has no gradients to attribute; explanations are for neural models",
                       "name")
    history = model.history
    keys = pl.DataFrame([(i.item_id, i.market) for i in inputs], schema=SERIES_KEY,
                        orient="row")
    known = keys.join(model.series_keys, on=SERIES_KEY, how="semi")
    if known.height < keys.height:
        index = next(i for i, s in enumerate(inputs)
                     if (s.item_id, s.market) not in set(known.iter_rows()))
        raise ApiError(422, "unknown_series", f"inputs.{index}: "
                       f"{model.unknown_reason(inputs[index].item_id, inputs[index].market)}"
                       f" (explanations are for series with history)", f"inputs.{index}")
    panel = history.select_series(keys)
    last = len(panel.periods) - 1
    with model.lock:
        try:
            found = integrated_gradients(model.forecaster, panel, origins=[last],
                                         max_windows=len(inputs), steps=STEPS, baseline="zero")
        except InputError as exc:
            raise ApiError(422, "not_explainable", str(exc), "inputs") from None
    per_cell = (found.table.group_by(*SERIES_KEY, "step", "group")
                .agg(pl.col("attribution").sum()))
    shares = (per_cell.group_by(*SERIES_KEY, "group")
              .agg(pl.col("attribution").abs().mean().alias("mean_abs"))
              .with_columns((pl.col("mean_abs") / pl.col("mean_abs").sum().over(SERIES_KEY))
                            .fill_nan(0.0).alias("share"))
              .sort("mean_abs", descending=True))
    by_series = {key: rows for key, rows in shares.group_by(SERIES_KEY, maintain_order=True)}
    outputs = [SeriesExplanation(
        name=series_name(s), item_id=s.item_id, market=s.market,
        groups=[GroupShare(**row) for row in
                by_series[(s.item_id, s.market)].select("group", "mean_abs", "share")
                .iter_rows(named=True)]) for s in inputs]
    return ExplainResponse(model=model.name, method="integrated gradients (captum) of the "
                           "median output, zero baseline; a group's mean absolute attribution "
                           "over the forecast steps",
                           origin=iso(panel.periods[-1]),
                           completeness_gap=found.completeness_gap, outputs=outputs)
