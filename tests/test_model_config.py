"""Model configurations validated at the edge, components composed by their declarations."""

import json
from pathlib import Path
from typing import ClassVar

import polars as pl
import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.components import ALL, BACKBONES, FUSIONS, HEADS, LOSSES, TARGET_TRANSFORMS
from salesfusion.errors import InputError
from salesfusion.models.base import Forecaster
from salesfusion.models.multimodal import MultimodalForecaster
from salesfusion.models.presets import PRESET_DIR, load_preset, read_preset
from salesfusion.models.registry import create_model
from salesfusion.models.temporal import BackboneShape, TemporalBackbone

FAST = MultimodalForecaster.test_params()
TRANSFORMER = BACKBONES.get("transformer")


@pytest.mark.parametrize(("param", "value", "expected"), [
    ("backbone", "bigruu", "unknown backbone 'bigruu'; the valid choices are bigru, bilstm"),
    ("fusion", "hierarchical", "unknown fusion 'hierarchical'; the valid choices are "
                               "bidirectional, concat"),
    ("loss", "huber", "unknown loss 'huber'; the valid choices are mae, mse, pinball"),
    ("text_encoder", "resnet18", "unknown text encoder 'resnet18'; the valid choices are "
                                 "doc2vec, e5, minilm"),
    ("image_encoder", "minilm", "unknown image encoder 'minilm'"),
    ("target_transform", "sqrt", "unknown target transform 'sqrt'; the valid choices are "
                                 "boxcox, log1p, none"),
    ("hiden", 16, "has no parameter 'hiden' \\(did you mean 'hidden'\\?\\)"),
    ("dropout", 1.5, "parameter 'dropout': Input should be less than 1"),
    ("modalities", ["text", "video"], "parameter 'modalities.1'"),
])
def test_bad_parameters_fail_when_the_model_is_created(param, value, expected):
    with pytest.raises(InputError, match=expected):
        create_model("multimodal", **{param: value})


def test_the_point_forecast_is_the_mean_unless_asked_and_the_loss_must_give_it():
    model = create_model("multimodal")
    assert (model.point, model.config.loss) == ("mean", "mse")
    # A configuration saved before `point` existed names its loss: mae (or pinball) kept the
    # median it was trained for.
    assert create_model("multimodal", loss="mae").point == "median"
    assert create_model("multimodal", point="median").config.loss == "mae"
    assert create_model("gru").point == "mean"  # mse
    with pytest.raises(InputError, match="loss mae gives the median, not the mean"):
        create_model("multimodal", point="mean", loss="mae")
    with pytest.raises(InputError, match=r"must include 0\.5 when the point forecast"):
        create_model("multimodal", point="median", quantiles=[0.1, 0.9])
    assert create_model("multimodal", quantiles=[0.1, 0.9]).point == "mean"
    lightgbm = create_model("lightgbm")
    assert (lightgbm.point, lightgbm.config.booster_objective) == ("mean", "tweedie")
    assert create_model("lightgbm", objective="l1").point == "median"
    assert create_model("lightgbm", point="median").config.booster_objective == "l1"
    with pytest.raises(InputError, match="objective l1 gives the median, not the mean"):
        create_model("lightgbm", point="mean", objective="l1")


def test_baseline_configs_are_typed_and_ranged():
    with pytest.raises(InputError, match="parameter 'objective'"):
        create_model("lightgbm", objective="l3")
    with pytest.raises(InputError, match="parameter 'window': Input should be greater"):
        create_model("moving_average", window=0)
    with pytest.raises(InputError, match="parameter 'k': Input should be a valid integer"):
        create_model("knn_analogue", k="many")
    assert create_model("lightgbm", learning_rate="0.1").config.learning_rate == 0.1


def test_configuration_is_frozen_and_round_trips():
    model = create_model("msrl_bigru", hidden=24)
    with pytest.raises(Exception, match="frozen"):
        model.config.hidden = 8
    again = create_model("msrl_bigru", **model.params)
    assert again.config == model.config and again.config.layers == 3  # the preset's value


def test_capabilities_follow_the_configuration():
    assert not create_model("multimodal", quantiles=[]).supports_quantiles
    assert create_model("multimodal").supports_quantiles
    assert not create_model("msrl_bigru").supports_quantiles  # its preset has quantiles: []
    assert create_model("multimodal", horizon=6).min_history == 8


def test_every_bundled_preset_validates():
    for path in PRESET_DIR.glob("*.yaml"):
        preset = read_preset(path)
        assert preset.name == path.stem


def _preset_file(folder: Path, **params) -> Path:
    path = folder / "my_preset.yaml"
    path.write_text(yaml.safe_dump({"name": "my_preset", "seed_paper": "none",
                                    "description": "a test preset", "deviations": "none",
                                    "params": params}))
    return path


def test_components_take_their_own_params_validated_by_name(shop_panel, tmp_path,
                                                            monkeypatch):
    monkeypatch.setattr("salesfusion.models.multimodal.fitting.DEFAULT_CACHE", tmp_path / "c")
    model = create_model("multimodal", backbone={"name": "transformer", "params": {"heads": 2}},
                         fusion={"name": "multi_entity", "params": {"heads": 2}}, horizon=3,
                         **{**FAST, "hidden": 8}).fit(shop_panel)
    assert model.params["backbone"] == "transformer"
    assert model.params["backbone_params"] == {"heads": 2}
    assert model.network.backbone.encoder.layers[0].self_attn.num_heads == 2
    assert model.network.fusion.attention.num_heads == 2
    again = Forecaster.load(model.save(tmp_path / "model"))
    assert again.predict(3).equals(model.predict(3))
    with pytest.raises(InputError, match=r"backbone 'transformer', parameter 'head': not a "
                                         r"parameter of it; its parameters are \['heads', "
                                         r"'max_length'\]"):
        create_model("multimodal", backbone={"name": "transformer", "params": {"head": 2}})
    with pytest.raises(InputError, match="backbone 'gru', parameter 'heads'"):
        create_model("multimodal", backbone={"name": "gru", "params": {"heads": 2}})
    with pytest.raises(InputError, match="fusion_params are given without a fusion"):
        create_model("multimodal", fusion_params={"heads": 2})
    # A longer positional table takes a longer lookback.
    assert create_model("multimodal", lookback=600, backbone={
        "name": "transformer", "params": {"max_length": 1000}}).config.lookback == 600


def test_a_lookback_longer_than_the_backbone_takes_is_refused_when_configured():
    with pytest.raises(InputError, match="lookback 600 is longer than backbone 'transformer' "
                                         r"takes \(512 periods\)"):
        create_model("multimodal", backbone="transformer", lookback=600)
    assert create_model("multimodal", backbone="gru", lookback=600).config.lookback == 600
    with pytest.raises(InputError, match="at most 8 history periods"):
        TRANSFORMER(BackboneShape(input_dim=3, context_dim=2, lookback=9), max_length=8)


def test_a_misspelt_preset_key_names_the_file_and_the_key(tmp_path):
    path = _preset_file(tmp_path, backbone="gru", hiddn=8)
    with pytest.raises(InputError, match=f"{path}: model 'my_preset' has no parameter 'hiddn'"):
        read_preset(path)
    good = load_preset(_preset_file(tmp_path, backbone="lstm", hidden=8))
    assert good().config.backbone == "lstm" and good().config.hidden == 8


def test_a_model_trained_from_a_preset_file_loads_where_the_file_is_not(tmp_path, shop_spec,
                                                                        shop_panel):
    path = _preset_file(tmp_path, backbone="lstm", hidden=8, epochs=1, lookback=8,
                        fusion_dim=8, accelerator="cpu", modalities=["static"],
                        cache_dir=str(tmp_path / "cache"))
    out = tmp_path / "model"
    result = CliRunner().invoke(app, ["train", "--preset", str(path), "--spec", str(shop_spec),
                                      "--horizon", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    path.unlink()  # the preset file is gone: the folder alone must do
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"] == "multimodal" and manifest["label"] == "my_preset"
    loaded = Forecaster.load(out)
    assert loaded.name == "my_preset" and loaded.config.backbone == "lstm"
    again = loaded.save(tmp_path / "again")
    assert Forecaster.load(again).predict(3).equals(loaded.predict(3))


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_cli_misspelt_preset_key_exits_2_and_writes_nothing(tmp_path, shop_spec):
    path = _preset_file(tmp_path, backbone="gru", hiddn=8)
    out = tmp_path / "model"
    result = CliRunner().invoke(app, ["train", "--preset", str(path), "--spec", str(shop_spec),
                                      "--out", str(out)])
    _one_line_error(result, str(path), "'hiddn'", "did you mean 'hidden'")
    assert not out.exists()
    assert not any(p.name.startswith(".model") for p in tmp_path.iterdir())  # no staging


def test_cli_unknown_backbone_in_config_exits_2_before_reading_data(tmp_path):
    config = tmp_path / "model.yaml"
    config.write_text(yaml.safe_dump({"model": "multimodal", "params": {"backbone": "lstmm"}}))
    out = tmp_path / "model"
    # The spec does not exist: the configuration must fail first, before any data is read.
    result = CliRunner().invoke(app, ["train", "--config", str(config), "--spec",
                                      str(tmp_path / "missing.yaml"), "--out", str(out)])
    _one_line_error(result, str(config), "unknown backbone 'lstmm'",
                    "the valid choices are bigru, bilstm, cnn, gru, gtm, lstm, tft, transformer")
    assert not out.exists()


def test_components_command_lists_every_registry():
    result = CliRunner().invoke(app, ["components"])
    assert result.exit_code == 0, result.output
    for registry in ALL.values():
        assert f"{registry.kind}s" in result.stdout or registry.kind in result.stdout
        for name in registry.names():
            assert name in result.stdout


def test_components_say_what_each_model_and_loss_forecasts():
    models = CliRunner().invoke(app, ["components", "model"], terminal_width=200).stdout
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in models.splitlines() if line.startswith("│") and line.split("│")[1].strip()}
    assert rows["lightgbm"] == rows["multimodal"] == "mean, or median"
    assert rows["ets"] == rows["croston"] == "mean"
    losses = CliRunner().invoke(app, ["components", "loss"], terminal_width=200).stdout
    assert "losses" in losses
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in losses.splitlines() if line.startswith("│")}
    assert rows["mae"] == rows["pinball"] == "median" and rows["tweedie"] == "mean"


def test_network_builder_names_no_component():
    source = (Path(__file__).parents[1] / "src/salesfusion/models/network.py").read_text()
    for registry in (FUSIONS, BACKBONES, HEADS, LOSSES, TARGET_TRANSFORMS):
        for name in registry.names():
            assert f'"{name}"' not in source and f"'{name}'" not in source, name


class FutureMeanBackbone(TemporalBackbone):
    """A toy backbone declared to read future inputs: mean-pools the history and each
    forecast step's known inputs, with the context."""

    name = "toy_future_mean"
    reads_future = True
    seen_future: ClassVar[list[tuple[int, ...]]] = []

    def __init__(self, shape: BackboneShape, hidden: int = 8, layers: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.history = nn.Linear(shape.input_dim, hidden)
        self.future = nn.Linear(shape.future_dim, hidden)
        self.context = nn.Linear(shape.context_dim, hidden)
        self.out_dim = shape.horizon * hidden

    def forward(self, history: torch.Tensor, mask: torch.Tensor, context: torch.Tensor,
                future: torch.Tensor) -> torch.Tensor:
        type(self).seen_future.append(tuple(future.shape))
        weights = mask.float()[..., None]
        pooled = (self.history(history) * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        steps = torch.relu(self.future(future) + (pooled + self.context(context))[:, None])
        return steps.flatten(1)


@pytest.fixture
def toy_backbone():
    BACKBONES.register(FutureMeanBackbone)
    FutureMeanBackbone.seen_future = []
    yield FutureMeanBackbone
    BACKBONES.unregister(FutureMeanBackbone.name)


def test_a_new_backbone_from_the_test_file_alone_trains(toy_backbone, shop_panel, tmp_path,
                                                        monkeypatch):
    monkeypatch.setattr("salesfusion.models.multimodal.fitting.DEFAULT_CACHE", tmp_path / "cache")
    model = create_model("multimodal", backbone=toy_backbone.name, horizon=3,
                         **FAST).fit(shop_panel)
    assert isinstance(model.network.backbone, toy_backbone)
    # Reads future inputs itself: the head sees only its output, not flattened future inputs.
    assert model.network.head.linear.in_features == model.network.backbone.out_dim
    horizon, width = toy_backbone.seen_future[-1][1:]
    assert horizon == 3 and width >= 2  # calendar + the shop's future-known covariates
    forecast = model.predict(3)
    assert forecast.height == shop_panel.n_series * 3
    assert forecast["y_pred"].is_finite().all()


def test_missing_modality_for_an_attention_fusion_is_said(shop_panel, tmp_path, monkeypatch):
    """The tiny shop has no images: hierarchical MMA (queried by the image) cannot run, and
    the model says which fusion it used instead."""
    monkeypatch.setattr("salesfusion.models.multimodal.fitting.DEFAULT_CACHE", tmp_path / "cache")
    model = create_model("multimodal", fusion="hierarchical_mma", horizon=3,
                         **{**FAST, "epochs": 1}).fit(shop_panel)
    assert type(model.network.fusion).name == "concat"
    assert any("fusion 'hierarchical_mma' needs ['image']" in n and "using 'concat'" in n
               for n in model.notes)
    assert any(n.startswith("trained 1 epoch(s)") for n in model.notes)
    assert any(n.startswith("inputs used: modalities text, static") for n in model.notes)
    frame = model.predict(3)
    assert isinstance(frame, pl.DataFrame) and frame["y_pred"].is_finite().all()


def test_encoders_take_precedence_over_a_presets_shorthand_and_check_their_params():
    model = create_model("gtm", encoders={"text": {"name": "tfidf", "params": {"dim": 16}}})
    assert model.config.encoders["text"].params == {"dim": 16}
    with pytest.raises(InputError, match=r"encoder \(encoders.text\) 'tfidf' has no "
                                         r"parameter\(s\) \['bogus'\]"):
        create_model("multimodal", encoders={"text": {"name": "tfidf", "params": {"bogus": 1}}})
