"""The composed multimodal model on the synthetic shop: every component trains, any modality
can be switched off or be missing, training resumes from a checkpoint."""

import numpy as np
import polars as pl
import pytest
import torch

from salesfusion.datasets.synthetic import synthetic
from salesfusion.features.lags import to_wide
from salesfusion.models.base import Forecaster
from salesfusion.models.registry import create_model
from salesfusion.training.lightning_module import forecast_loss
from salesfusion.training.windows import make_windows

FAST = {"epochs": 2, "lookback": 8, "hidden": 16, "fusion_dim": 16, "accelerator": "cpu"}


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return synthetic(tmp_path_factory.mktemp("mm"), n_items=60, n_weeks=30, seed=2)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setattr("salesfusion.models.multimodal.fitting.DEFAULT_CACHE", tmp_path / "cache")


@pytest.mark.parametrize(("fusion", "backbone"), [
    ("concat", "lstm"), ("gated", "gru"), ("hierarchical_mma", "bigru"),
    ("bidirectional", "bilstm"), ("concat", "transformer"), ("concat", "tft"),
    ("multi_entity", "bigru"), ("gated", "gtm"), ("concat", "cnn")])
def test_gradient_reaches_every_trainable_component(shop, fusion, backbone):
    panel = shop.panel()
    model = create_model("multimodal", fusion=fusion, backbone=backbone, layers=2,
                         text_encoder="word_sequence" if fusion == "bidirectional" else "tfidf",
                         **{**FAST, "epochs": 1}).fit(panel)
    net = model.network.train()
    wide = to_wide(panel)
    covariates = model.inputs.covariates(panel, wide)
    # The synthetic shop's events (counts, audience, 4 decays) and its price in both currencies.
    assert covariates.width == 9
    windows = make_windows(wide, panel.freq, 8, 4, covariates=covariates)
    windows = windows.subset(windows.target_mask.any(axis=1))
    tensors = model.inputs.series_inputs(wide)(windows.subset(np.arange(min(512, len(windows)))))
    # Include items with no content at all, so the "nothing known" vector is used too.
    tensors["items"][:4] = -1
    output = net(tensors)
    # The loss the model trains on: its point loss on the mean channel, pinball on the quantiles.
    forecast_loss(model.params["loss"], tuple(model.params["quantiles"]),
                  model.params["tweedie_power"], model.point)(
        output, tensors["target"], tensors["target_mask"]).backward()
    dead = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert dead == []


@pytest.mark.parametrize("modalities", [[], ["text"], ["image"], ["static"],
                                        ["text", "image", "static"]])
def test_any_modality_can_be_switched_off(shop, modalities):
    panel = shop.panel()
    model = create_model("multimodal", modalities=modalities, **FAST).fit(panel)
    assert set(model.network.modalities) == set(modalities)
    forecast = model.predict(4, series=pl.DataFrame({"item_id": ["S00001", "NEW-ITEM"],
                                                     "market": ["UK", "BR"]}))
    assert forecast.height == 8 and forecast["y_pred"].is_finite().all()


def test_missing_images_are_masked_not_zero_data(shop, tmp_path):
    panel = shop.panel()
    panel.items = panel.items.with_columns(
        pl.when(pl.col("item_id").is_in(["S00003", "S00004"])).then(pl.lit("images/none.png"))
        .otherwise(pl.col("image")).alias("image"))
    model = create_model("multimodal", **FAST).fit(panel)
    present = model.network.image_present
    assert int((~present).sum()) == 2
    assert any("unreadable" in n or "missing" in n for n in model.notes)


def test_cold_start_uses_content(shop):
    """Two never-sold items differing only in content get different forecasts."""
    panel = shop.panel()
    model = create_model("multimodal", **{**FAST, "epochs": 4}).fit(panel)
    new = pl.DataFrame({"item_id": ["S00010", "S00011"], "market": ["UK", "UK"]})
    trimmed = panel.select_series(panel.data.select("item_id", "market").unique().join(
        new, on=["item_id", "market"], how="anti"))
    forecast = model.predict(4, history=trimmed, series=new)
    values = forecast.group_by("item_id").agg(pl.col("y_pred").mean()).sort("item_id")
    assert values["y_pred"].is_finite().all() and values["y_pred"][0] != values["y_pred"][1]


def test_resumes_from_the_last_checkpoint(shop, tmp_path):
    panel = shop.panel()
    folder = tmp_path / "checkpoints"
    first = create_model("multimodal", checkpoint_dir=str(folder), **FAST).fit(panel)
    assert (folder / "last.ckpt").is_file()
    # Read back as weights only, as the package itself does: no pickled objects inside.
    done = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)["epoch"]
    assert any(n.startswith("trained 2 epoch(s)") for n in first.notes)
    resumed = create_model("multimodal", checkpoint_dir=str(folder),
                           **{**FAST, "epochs": 3}).fit(panel)
    state = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["epoch"] == done + 1  # only the third epoch ran after resuming
    assert any(n.startswith("trained 3 epoch(s)") and n.endswith("(resumed from a checkpoint)")
               for n in resumed.notes)
    assert not first.predict(4).equals(resumed.predict(4))


def test_saved_model_refuses_tampered_weights(shop, tmp_path):
    model = create_model("multimodal", **FAST).fit(shop.panel())
    model.save(tmp_path / "m")
    weights = tmp_path / "m" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)
    from salesfusion.errors import InputError

    with pytest.raises(InputError, match="checksum"):
        Forecaster.load(tmp_path / "m")


def test_box_cox_target_is_fitted_on_training_targets_and_saved(shop, tmp_path):
    panel = shop.panel()
    model = create_model("multimodal", modalities=["static"], target_transform="boxcox",
                         **FAST).fit(panel)
    assert model.inputs.transform.kind == "boxcox" and model.inputs.transform.lam != 0.0
    forecast = model.predict(4)
    assert forecast["y_pred"].is_finite().all() and (forecast["y_pred"] >= -1e-9).all()
    model.save(tmp_path / "m")
    assert Forecaster.load(tmp_path / "m").predict(4).equals(forecast)
