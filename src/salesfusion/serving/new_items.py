"""``POST /v1/models/{name}/new-items``: the launch forecast of an item described by its content.

The request is a multipart form: the item's ``title``, ``description``, ``attributes`` (a JSON
object of the items table's attribute columns), an ``image`` upload, the ``markets`` it launches
in and the ``launch_date``. The photo goes through the same safe loader as a dataset's files
(``encoders.image.loading``): at most ``Limits.max_image_bytes``, a format Pillow identifies
among ``IMAGE_FORMATS``, a decompression-bomb bound on pixels, and a full decode, before any
model sees it. Multimodal models read the content through ``items_described``; other launch
models (knn_analogue, lightgbm_launch, the launch curves) forecast with what they read of a new
item, which the response's ``notes`` state.

Every field is checked against the model before a model sees it, each refusal a 422 naming the
field: attribute values against the items table's column types, the launch date against the
dates the model can forecast a launch for, the photo by a decode that turns any failure
(truncated, corrupt, a decompression bomb) into ``invalid_image``.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from contextlib import nullcontext
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import polars as pl
from fastapi import File, Form, UploadFile

from salesfusion.data.frequency import offset
from salesfusion.data.validate import with_normal_ids
from salesfusion.errors import InputError
from salesfusion.serving.dependencies import ServiceLimits, Store, check_horizon, served
from salesfusion.serving.errors import ApiError
from salesfusion.serving.guard import guarded_router, read_json
from salesfusion.serving.responses import respond, series_forecast
from salesfusion.serving.schemas import ForecastOutput, ForecastResponse
from salesfusion.serving.security import Limits
from salesfusion.serving.store import ServedModel

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
NOT_ATTRIBUTES = ("item_id", "title", "description", "image", "launch_date", "end_date")

router = guarded_router(needs_key=True)


@router.post("/v1/models/{name}/new-items", response_model=ForecastResponse, tags=["forecast"])
def new_item(name: str,
             store: Store,
             limits: ServiceLimits,
             horizon: Annotated[int, Form(ge=1)],
             title: Annotated[str | None, Form(max_length=2000)] = None,
             description: Annotated[str | None, Form(max_length=20000)] = None,
             attributes: Annotated[str | None, Form(max_length=20000)] = None,
             markets: Annotated[str | None, Form(max_length=2000)] = None,
             launch_date: Annotated[str | None, Form(max_length=10)] = None,
             item_id: Annotated[str | None, Form(min_length=1, max_length=200)] = None,
             image: Annotated[UploadFile | None, File()] = None) -> ForecastResponse:
    return forecast_new_item(served(store, name), limits, horizon=horizon, title=title,
                             description=description, attributes=attributes, markets=markets,
                             launch_date=launch_date, item_id=item_id, image=image)


def forecast_new_item(model: ServedModel, limits: Limits, *, horizon: int, title: str | None,
                      description: str | None, attributes: str | None, markets: str | None,
                      launch_date: str | None, item_id: str | None,
                      image: UploadFile | None) -> ForecastResponse:
    """The launch forecast of the item the form describes, in every market asked for."""
    forecaster = model.forecaster
    if not forecaster.supports_launch:
        raise ApiError(422, "no_launch", f"model '{model.name}' ({forecaster.name}) cannot "
                       f"forecast a new item from its launch; serve a launch-capable model",
                       "name")
    horizon = check_horizon(horizon, model, limits, "horizon")
    history = model.history
    row = {"title": title, "description": description, **_attributes(attributes, history)}
    photo = image.file.read(limits.max_image_bytes + 1) if image is not None else b""
    identity = (_stored_id(item_id, model) if item_id else "new-" + hashlib.sha256(
        json.dumps(row, sort_keys=True).encode() + photo).hexdigest()[:12])
    if identity in model.item_ids:
        raise ApiError(422, "item_exists", f"item_id: {identity!r} is already in the data of "
                       f"model '{model.name}'; forecast it with /v1/timeseries/forecast",
                       "item_id")
    chosen = _markets(markets, model.markets)
    periods = history.periods
    last = periods[-1]
    launch = pl.select(offset(pl.lit(last), history.freq, 1)).item()
    if launch_date:
        end = pl.select(offset(pl.lit(last), history.freq, horizon)).item()
        launch = _date(launch_date, periods[0], end)
    launches = pl.DataFrame({"item_id": [identity] * len(chosen), "market": chosen,
                             "launch": [launch] * len(chosen)})
    with tempfile.TemporaryDirectory(prefix="salesfusion-upload-") as folder:
        if photo:
            row["image"] = _save_image(photo, limits, Path(folder))
        item = pl.DataFrame([{"item_id": identity, **row}])
        items = (pl.concat([history.items, item], how="diagonal_relaxed")
                 if history.items is not None else item)
        panel = replace(history, items=items, image_root=Path(folder))
        describe = forecaster.supports_new_items
        with model.lock:
            context = (forecaster.items_described(item, Path(folder)) if describe
                       else nullcontext(None))
            try:
                with context as read:
                    frame = forecaster.predict_launch(launches, horizon, history=panel)
            except InputError as exc:
                raise ApiError(422, "cannot_forecast", str(exc), "name") from None
    notes = ([f"content read: {', '.join(read) or 'none of it'}"] if describe else
             [f"model '{forecaster.name}' does not encode the content of items it was not "
              f"fitted on: the forecast reads the launch and markets, and attributes where "
              f"the model takes them"])
    outputs = [ForecastOutput(id=f"ts_{identity}_{market}", status="completed", content=[
        series_forecast(f"{identity}@{market}", rows.sort("timestamp"), forecaster.freq,
                        model.quantile_levels)])
        for (market,), rows in frame.group_by("market", maintain_order=True)]
    response = respond(model.name, outputs, {"item_id": identity, "launch": f"{launch:%Y-%m-%d}",
                                             "notes": notes})
    return response


def _stored_id(item_id: str, model: ServedModel) -> str:
    """A posted item id as the model's data would hold it (the data's id rule), unless the
    data holds it as posted."""
    if item_id in model.item_ids:
        return item_id
    return with_normal_ids(pl.DataFrame({"item_id": [item_id]}))["item_id"][0]


def _attributes(text: str | None, history: Any) -> dict[str, Any]:
    if not text:
        return {}
    values = read_json(text, "attributes")
    if not isinstance(values, dict):
        raise ApiError(422, "invalid_attributes", "attributes: must be a JSON object of "
                       "attribute name to value", "attributes")
    schema = history.items.schema if history.items is not None else {}
    columns = [c for c in schema if c not in NOT_ATTRIBUTES]
    for key, value in values.items():
        if key not in columns:
            raise ApiError(422, "unknown_attribute", f"attributes.{key}: not an attribute of "
                           f"the items table (attributes: {', '.join(columns) or 'none'})",
                           f"attributes.{key}")
        values[key] = _attribute_value(key, value, schema[key])
    return values


def _attribute_value(key: str, value: Any, dtype: Any) -> Any:
    """``value`` as the items table's column ``key`` holds it: the model reads a new item's
    attributes beside the fitted items', so a text where the column is numeric (or a NaN, or
    a number past float range) must stop here rather than inside the model."""
    param = f"attributes.{key}"
    if dtype.is_numeric():
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer past float range
                number = None
        if number is None or not math.isfinite(number):
            raise ApiError(422, "invalid_attribute", f"{param}: {_shown(value)} is not a finite "
                           f"number; the items table's column '{key}' is numeric ({dtype})",
                           param)
        if dtype.is_integer():
            if not number.is_integer() or not -2**63 <= value < 2**63:
                raise ApiError(422, "invalid_attribute", f"{param}: {_shown(value)} is not a "
                               f"64-bit integer; the items table's column '{key}' is {dtype}",
                               param)
            return int(value)
        return number
    if dtype == pl.String:
        if not isinstance(value, str):
            raise ApiError(422, "invalid_attribute", f"{param}: {_shown(value)} is not text; "
                           f"the items table's column '{key}' is text", param)
        return value
    try:
        return pl.Series(key, [value]).cast(dtype, strict=True).to_list()[0]
    except Exception:  # polars reports a failed cast with several exception types
        raise ApiError(422, "invalid_attribute", f"{param}: {_shown(value)} cannot be read as "
                       f"the items table's column '{key}' ({dtype})", param) from None


def _shown(value: Any) -> str:
    return json.dumps(value)[:80]


def _markets(text: str | None, known: list[str]) -> list[str]:
    if not text:
        return known
    chosen = list(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in chosen if m not in known]
    if unknown or not chosen:
        raise ApiError(422, "unknown_market", f"markets: {unknown or text!r} not among the "
                       f"model's markets ({', '.join(known)})", "markets")
    return chosen


def _date(text: str, first: datetime, last: datetime) -> datetime:
    """The launch date, which must fall between the history's first period and the forecast's
    last: the models count a series' age in periods from its launch, and a date far outside
    (0001-01-01, 9999-12-31) overflows the date arithmetic rather than forecasting anything."""
    try:
        launch = datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise ApiError(422, "invalid_date", f"launch_date: {text!r} is not a date YYYY-MM-DD",
                       "launch_date") from None
    if not first <= launch <= last:
        raise ApiError(422, "launch_out_of_range", f"launch_date: {text} is outside the dates "
                       f"this model can forecast a launch for ({first:%Y-%m-%d}, its history's "
                       f"first period, to {last:%Y-%m-%d}, the forecast's last)", "launch_date")
    return launch


def _save_image(photo: bytes, limits: Limits, folder: Path) -> str:
    """Write the upload where the encoders read it, after the safe loader accepted it."""
    from PIL import Image

    from salesfusion.encoders.image.loading import read_rgb

    if len(photo) > limits.max_image_bytes:
        raise ApiError(413, "image_too_large", f"image: larger than {limits.max_image_bytes} "
                       f"bytes", "image")
    path = folder / "upload"
    path.write_bytes(photo)
    try:
        # Only the listed formats' plugins may read the upload (not EPS, which runs
        # Ghostscript, nor the rarer decoders).
        with Image.open(path, formats=IMAGE_FORMATS):
            pass
    except Image.DecompressionBombError:
        pass  # a listed format, too large to open: read_rgb refuses it with its pixel count
    except Exception:
        raise ApiError(422, "invalid_image", f"image: not an image in a supported format "
                       f"({', '.join(IMAGE_FORMATS)})", "image") from None
    try:
        read_rgb(path)
    except Exception as exc:  # UnreadableImage, or Pillow's OSError: truncated, corrupt
        reason = (str(exc).splitlines() or [""])[0][:200] or type(exc).__name__
        raise ApiError(422, "invalid_image", f"image: {reason}", "image") from None
    return path.name
