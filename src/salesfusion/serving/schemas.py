"""Request and response bodies of the forecast API.

The forecast route follows the KServe time-series forecast proposal (``POST
/v1/timeseries/forecast``: ``model``, ``inputs``, ``options`` with ``horizon`` and ``quantiles``,
``metadata``; the response's ``outputs`` hold one ``time_series_forecast`` per input with
``mean_forecast``, ``start_timestamp`` and ``quantiles`` keyed by the quantile as text) rather
than a shape of our own. salesfusion's inputs name a stored series by ``item_id`` and ``market``
(the proposal allows extra fields); the model forecasts it from the history it was saved with,
so the proposal's ``series`` (observed values) is not taken: posting a series that the model's
panel does not hold would need that series' covariates and content too. ``mean_forecast`` is
the model's point forecast (the median for quantile models), as ``salesfusion predict`` writes.

Every body forbids unknown fields, so a misspelt field is a 422 naming it rather than ignored,
and is strict: no coercion between JSON types (``true`` is not the horizon 1, ``"3"`` not 3).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Key = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SeriesInput(_Body):
    type: Literal["univariate_time_series"] = "univariate_time_series"
    name: Key | None = Field(None, description="Unique in the request; item_id@market if omitted.")
    item_id: Key
    market: Key
    frequency: str | None = Field(None, description="If given, must be the model's frequency.")


class ForecastOptions(_Body):
    horizon: int = Field(ge=1, description="Periods ahead (the server's limit applies).")
    quantiles: list[float] | None = Field(
        None, description="A subset of the model's quantiles; all of them when omitted.")


class ForecastRequest(_Body):
    model: Key
    inputs: list[SeriesInput] = Field(min_length=1)
    options: ForecastOptions
    metadata: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    code: str
    message: str
    param: str | None = None
    type: str = "invalid_request_error"


class TimeSeriesForecast(BaseModel):
    type: Literal["univariate_time_series"] = "univariate_time_series"
    name: str
    item_id: str
    market: str
    mean_forecast: list[float]
    frequency: str
    start_timestamp: str
    timestamps: list[str]
    quantiles: dict[str, list[float]] = Field(default_factory=dict)
    cold_start: bool = False
    before_launch: list[bool] = Field(default_factory=list)


class ForecastOutput(BaseModel):
    type: Literal["time_series_forecast"] = "time_series_forecast"
    id: str
    status: Literal["completed", "error"]
    content: list[TimeSeriesForecast] = Field(default_factory=list)
    error: ErrorBody | None = None


class ForecastResponse(BaseModel):
    id: str
    created_at: int
    status: Literal["completed", "partial", "error"]
    model: str
    outputs: list[ForecastOutput]
    metadata: dict[str, Any] | None = None


class ModelInfo(BaseModel):
    name: str
    model: str
    freq: str | None
    horizon: int | None = Field(description="The longest horizon the model forecasts.")
    quantiles: list[float]
    supports_cold_start: bool
    supports_launch: bool
    explains: bool = Field(description="Whether /explain gives attributions for this model.")
    n_series: int
    n_items: int
    markets: list[str]
    history_start: str
    history_end: str
    checksum: str
    params: dict[str, Any]


class SeriesKey(BaseModel):
    item_id: str
    market: str


class SeriesPage(BaseModel):
    total: int
    offset: int
    series: list[SeriesKey]


class Health(BaseModel):
    status: Literal["ok"]
    models: int


class ExplainRequest(_Body):
    inputs: list[SeriesInput] = Field(min_length=1)


class GroupShare(BaseModel):
    group: str
    mean_abs: float
    share: float


class SeriesExplanation(BaseModel):
    name: str
    item_id: str
    market: str
    groups: list[GroupShare]


class ExplainResponse(BaseModel):
    model: str
    method: str
    origin: str
    completeness_gap: float
    outputs: list[SeriesExplanation]
