"""A new content modality is one file: this test file alone adds a ``colour`` modality (an items
column of hex colours) and its encoder, and the multimodal model trains on it, holds its
vectors, saves and loads, and reads it for new items, with no edit anywhere else."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pytest

from salesfusion.components import ENCODERS, MODALITIES
from salesfusion.encoders.base import Encoder
from salesfusion.encoders.inputs import Catalogue
from salesfusion.encoders.modalities import ContentModality
from salesfusion.errors import InputError
from salesfusion.models.base import Forecaster
from salesfusion.models.registry import create_model

FAST = {"epochs": 2, "lookback": 8, "hidden": 16, "fusion_dim": 16, "horizon": 3,
        "accelerator": "cpu"}


class HexColourEncoder(Encoder):
    """A colour '#rrggbb' as its red, green and blue shares."""

    name = "toy_hex_rgb"
    modality: ClassVar[str] = "colour"

    @property
    def dim(self) -> int:
        return 3

    def encode_batch(self, inputs: list[Any]) -> np.ndarray:
        return np.array([[int(text[i:i + 2], 16) / 255 for i in (1, 3, 5)] for text in inputs],
                        dtype=np.float32)


class ColourModality(ContentModality):
    """The item's main colour."""

    name = "colour"
    columns = ("colour",)
    needs = "a 'colour' column"
    default_encoder = "toy_hex_rgb"

    @classmethod
    def inputs(cls, catalogue: Catalogue) -> tuple[list[Any], dict[str, Any]]:
        return catalogue.items["colour"].to_list(), {}


@pytest.fixture
def colour():
    ENCODERS.register(HexColourEncoder)
    MODALITIES.register(ColourModality)
    yield
    MODALITIES.unregister(ColourModality.name)
    ENCODERS.unregister(HexColourEncoder.name)


def _coloured(panel):
    items = panel.items.with_columns(pl.format(
        "#{}", pl.Series(["ff0000", "00ff00", "0000ff"] * (panel.items.height // 3 + 1))
        .head(panel.items.height)).alias("colour"))
    return replace(panel, items=items)


def test_a_new_modality_trains_saves_loads_and_reads_new_items(colour, shop_panel, tmp_path):
    panel = _coloured(shop_panel)
    model = create_model("multimodal", modalities=["colour", "static"],
                         cache_dir=str(tmp_path / "cache"), **FAST).fit(panel)
    assert model.network.content_modalities == ["colour"]
    assert tuple(model.network.colour_values.shape) == (panel.items.height, 3)
    assert any(n.startswith("inputs used: modalities colour, static") for n in model.notes)
    again = Forecaster.load(model.save(tmp_path / "model"))
    assert again.predict(3).equals(model.predict(3))
    launch = pl.DataFrame({"item_id": ["NEW"], "market": ["GB"],
                           "launch": [panel.periods[-1]]})
    red, blue = (pl.DataFrame({"item_id": ["NEW"], "colour": [c]})
                 for c in ("#ff0000", "#0000ff"))
    forecasts = []
    for item in (red, blue):
        with again.items_described(item) as read:
            assert read == ["colour"]
            forecasts.append(again.predict_launch(launch, 3)["y_pred"].to_numpy())
    assert not np.allclose(*forecasts)  # the colour is read


def test_a_modality_and_its_encoder_are_validated_by_name(colour):
    model = create_model("multimodal", modalities=["colour"],
                         encoders={"colour": {"name": "toy_hex_rgb"}}, **FAST)
    assert model.config.encoders["colour"].name == "toy_hex_rgb"
    with pytest.raises(InputError, match=r"encoders\.colour: unknown colour encoder 'tfidf'"):
        create_model("multimodal", modalities=["colour"], encoders={"colour": {"name": "tfidf"}})
    with pytest.raises(InputError, match="unknown modality 'sound'"):
        create_model("multimodal", modalities=["sound"])


def test_the_new_items_route_reads_a_plugin_modality(colour, shop_panel, tmp_path):
    """Posted as one of the items table's columns (``attributes``), a new item's colour reaches
    the model through the service, which says it read it."""
    from fastapi.testclient import TestClient

    from salesfusion.serving.api import create_app
    from salesfusion.serving.store import ModelStore
    from tests.serving_fixtures import API_KEY

    panel = _coloured(shop_panel)
    folder = create_model("multimodal", modalities=["colour", "static"],
                          cache_dir=str(tmp_path / "cache"), **FAST).fit(panel).save(
        tmp_path / "coloured")
    store = ModelStore.load([folder], warm=False)
    answers = []
    with TestClient(create_app(store, [API_KEY.encode()])) as client:
        for hex_colour in ("#ff0000", "#0000ff"):
            answer = client.post("/v1/models/coloured/new-items",
                                 data={"horizon": "3", "markets": "GB",
                                       "attributes": f'{{"colour": "{hex_colour}"}}'},
                                 headers={"X-API-Key": API_KEY})
            assert answer.status_code == 200, answer.text
            assert answer.json()["metadata"]["notes"] == ["content read: colour"]
            answers.append(answer.json()["outputs"][0]["content"][0]["mean_forecast"])
    assert not np.allclose(*answers)
