"""Search spaces: declared in presets, validated against the model configuration."""

from __future__ import annotations

import pytest

from salesfusion.errors import InputError
from salesfusion.models.registry import model_class
from salesfusion.models.search_space import parse_space


def test_msrl_bigru_declares_the_papers_three_states() -> None:
    space = model_class("msrl_bigru").search_space
    assert space is not None
    assert space.names == ["hidden", "epochs", "lr"]  # s1, s2, s3 of seed 000 section 4.3
    assert space.values("hidden") == [16, 32, 64, 128]
    assert space.values("lr") == [0.0005, 0.001, 0.003, 0.007, 0.01]
    assert space.size() == 4 * 4 * 5


def test_values_without_actions_spread_over_the_range() -> None:
    space = parse_space({"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
                         "layers": {"type": "int", "low": 1, "high": 3},
                         "hidden": {"type": "int", "low": 8, "high": 128, "log": True},
                         "backbone": {"type": "categorical", "choices": ["gru", "lstm"]},
                         "grid_points": 3}, "test")
    assert space.values("lr") == pytest.approx([0.001, 0.01, 0.1])
    assert space.values("layers") == [1, 2, 3]
    assert space.values("hidden") == [8, 32, 128]
    assert space.values("backbone") == ["gru", "lstm"]
    assert space.size() == 3 * 3 * 3 * 2


@pytest.mark.parametrize(("raw", "message"), [
    ({"lr": {"type": "float", "low": 0.1, "high": 0.01}}, "low must be below high"),
    ({"lr": {"type": "float", "low": 0, "high": 0.1, "log": True}}, "log-scaled dimension"),
    ({"hidden": {"type": "int", "low": 8, "high": 16, "actions": [8, 32]}}, "outside low..high"),
    ({"hidden": {"type": "int", "low": 8, "high": 16, "actions": [8, 8]}}, "listed twice"),
    ({"lr": {"type": "uniform", "low": 0.1, "high": 1}}, "lr"),
    ({}, "a search space is a mapping"),
])
def test_bad_spaces_are_one_clear_error(raw: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_space(raw, "space.yaml")


def test_every_value_is_checked_against_the_model_config() -> None:
    model = model_class("multimodal")
    unknown = parse_space({"hiden": {"type": "int", "low": 8, "high": 16}}, "space.yaml")
    with pytest.raises(InputError, match="'hiden' is not a parameter of model 'multimodal'"):
        unknown.check_against(model.Config, {}, owner="multimodal", source="space.yaml")
    invalid = parse_space({"dropout": {"type": "float", "low": 0.5, "high": 1.5}}, "space.yaml")
    with pytest.raises(InputError, match=r"space\.yaml: search space dimension 'dropout', value"):
        invalid.check_against(model.Config, {}, owner="multimodal", source="space.yaml")
    bad_choice = parse_space({"backbone": {"type": "categorical", "choices": ["gru", "rnn9"]}},
                             "space.yaml")
    with pytest.raises(InputError, match="rnn9"):
        bad_choice.check_against(model.Config, {}, owner="multimodal", source="space.yaml")


def test_a_preset_with_a_bad_space_is_refused_when_loaded(tmp_path) -> None:
    from salesfusion.models.presets import load_preset

    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nseed_paper: none\ndescription: d\ndeviations: none\n"
                    "params: {backbone: gru}\n"
                    "search_space:\n  layers: {type: int, low: 0, high: 2}\n")
    with pytest.raises(InputError, match=r"mine\.yaml: search space dimension 'layers', value 0"):
        load_preset(path)
