"""``POST /v1/models/{name}/new-items``: the launch forecast of an item described by its content.

The request is a multipart form: the item's ``title``, ``description``, ``attributes`` (a JSON
object of the items table's attribute columns), an ``image`` upload, the ``markets`` it launches
in and the ``launch_date``. The photo goes through the same safe loader as a dataset's files
(``encoders.image.loading``): at most ``Limits.max_image_bytes``, a format Pillow identifies
among ``IMAGE_FORMATS``, a decompression-bomb bound on pixels, and a full decode, before any
model sees it. Multimodal models read the content through ``items_described``; other launch
models (knn_analogue, lightgbm_launch, the launch curves) forecast with what they read of a new
item, which the response's ``notes`` state.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from contextlib import nullcontext
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import polars as pl
from fastapi import FastAPI, File, Form, UploadFile

from salesfusion.errors import InputError
from salesfusion.serving.schemas import ForecastOutput, ForecastResponse
from salesfusion.serving.security import Limits
from salesfusion.serving.store import ModelStore, ServedModel

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
NOT_ATTRIBUTES = ("item_id", "title", "description", "image", "launch_date", "end_date")


def add_new_item_route(app: FastAPI, store: ModelStore, limits: Limits,
                       authed: list[Any]) -> None:
    from salesfusion.serving.api import served

    @app.post("/v1/models/{name}/new-items", response_model=ForecastResponse,
              dependencies=authed, tags=["forecast"])
    def new_item(name: str,
                 horizon: Annotated[int, Form(ge=1)],
                 title: Annotated[str | None, Form(max_length=2000)] = None,
                 description: Annotated[str | None, Form(max_length=20000)] = None,
                 attributes: Annotated[str | None, Form(max_length=20000)] = None,
                 markets: Annotated[str | None, Form(max_length=2000)] = None,
                 launch_date: Annotated[str | None, Form(max_length=10)] = None,
                 item_id: Annotated[str | None, Form(min_length=1, max_length=200)] = None,
                 image: Annotated[UploadFile | None, File()] = None) -> ForecastResponse:
        model = served(store, name)
        return forecast_new_item(model, limits, horizon=horizon, title=title,
                                 description=description, attributes=attributes,
                                 markets=markets, launch_date=launch_date, item_id=item_id,
                                 image=image)


def forecast_new_item(model: ServedModel, limits: Limits, *, horizon: int, title: str | None,
                      description: str | None, attributes: str | None, markets: str | None,
                      launch_date: str | None, item_id: str | None,
                      image: UploadFile | None) -> ForecastResponse:
    from salesfusion.data.frequency import offset
    from salesfusion.serving.api import ApiError, check_horizon, respond, series_forecast

    forecaster = model.forecaster
    if not forecaster.supports_launch:
        raise ApiError(422, "no_launch", f"model '{model.name}' ({forecaster.name}) cannot "
                       f"forecast a new item from its launch; serve a launch-capable model",
                       "name")
    horizon = check_horizon(horizon, model, limits, "horizon")
    history = model.history
    row = {"title": title, "description": description, **_attributes(attributes, history)}
    photo = image.file.read(limits.max_image_bytes + 1) if image is not None else b""
    identity = item_id or "new-" + hashlib.sha256(
        json.dumps(row, sort_keys=True).encode() + photo).hexdigest()[:12]
    if identity in model.item_ids:
        raise ApiError(422, "item_exists", f"item_id: {identity!r} is already in model "
                       f"'{model.name}''s data; forecast it with /v1/timeseries/forecast",
                       "item_id")
    chosen = _markets(markets, model.markets)
    last = history.periods[-1]
    launch = (_date(launch_date) if launch_date
              else pl.select(offset(pl.lit(last), history.freq, 1)).item())
    launches = pl.DataFrame({"item_id": [identity] * len(chosen), "market": chosen,
                             "launch": [launch] * len(chosen)})
    with tempfile.TemporaryDirectory(prefix="salesfusion-upload-") as folder:
        if photo:
            row["image"] = _save_image(photo, limits, Path(folder))
        item = pl.DataFrame([{"item_id": identity, **row}])
        items = (pl.concat([history.items, item], how="diagonal_relaxed")
                 if history.items is not None else item)
        panel = replace(history, items=items, image_root=Path(folder))
        describe = getattr(forecaster, "items_described", None)
        with model.lock:
            context = describe(item, Path(folder)) if describe else nullcontext(None)
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


def _attributes(text: str | None, history: Any) -> dict[str, Any]:
    from salesfusion.serving.api import ApiError

    if not text:
        return {}
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(422, "invalid_json", f"attributes: not JSON ({exc.msg})",
                       "attributes") from None
    if not isinstance(values, dict):
        raise ApiError(422, "invalid_attributes", "attributes: must be a JSON object of "
                       "attribute name to value", "attributes")
    columns = [c for c in (history.items.columns if history.items is not None else [])
               if c not in NOT_ATTRIBUTES]
    for key, value in values.items():
        if key not in columns:
            raise ApiError(422, "unknown_attribute", f"attributes.{key}: not an attribute of "
                           f"the items table (attributes: {', '.join(columns) or 'none'})",
                           f"attributes.{key}")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ApiError(422, "invalid_attribute", f"attributes.{key}: must be a string or a "
                           f"number", f"attributes.{key}")
    return values


def _markets(text: str | None, known: list[str]) -> list[str]:
    from salesfusion.serving.api import ApiError

    if not text:
        return known
    chosen = list(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in chosen if m not in known]
    if unknown or not chosen:
        raise ApiError(422, "unknown_market", f"markets: {unknown or text!r} not among the "
                       f"model's markets ({', '.join(known)})", "markets")
    return chosen


def _date(text: str) -> datetime:
    from salesfusion.serving.api import ApiError

    try:
        return datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise ApiError(422, "invalid_date", f"launch_date: {text!r} is not a date YYYY-MM-DD",
                       "launch_date") from None


def _save_image(photo: bytes, limits: Limits, folder: Path) -> str:
    """Write the upload where the encoders read it, after the safe loader accepted it."""
    from PIL import Image, UnidentifiedImageError

    from salesfusion.encoders.image.loading import UnreadableImage, read_rgb
    from salesfusion.serving.api import ApiError

    if len(photo) > limits.max_image_bytes:
        raise ApiError(413, "image_too_large", f"image: larger than {limits.max_image_bytes} "
                       f"bytes", "image")
    path = folder / "upload"
    path.write_bytes(photo)
    try:
        with Image.open(path) as opened:
            kind = opened.format
    except (UnidentifiedImageError, OSError):
        kind = None
    if kind not in IMAGE_FORMATS:
        raise ApiError(422, "invalid_image", f"image: not an image in a supported format "
                       f"({', '.join(IMAGE_FORMATS)})", "image")
    try:
        read_rgb(path)
    except UnreadableImage as exc:
        raise ApiError(422, "invalid_image", f"image: {exc}", "image") from None
    return path.name
