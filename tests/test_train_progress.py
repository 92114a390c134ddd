"""``train`` shows how far a fit has got: LightGBM's rounds (probe fit, then final fit) and a
neural model's epochs, with the time left, as bars on a terminal and plain lines in a log; and
listening changes nothing the model learns."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from salesfusion.cli import app, fit_display
from salesfusion.cli.fit_display import FitDisplay
from salesfusion.models.registry import create_model
from salesfusion.training.fit_progress import FitStep, listen_to_fit
from tests.conftest import _build, make_shop

runner = CliRunner()


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    return make_shop(tmp_path_factory.mktemp("progress_shop"), n_items=12, weeks=40)


def test_listening_to_a_lightgbm_fit_hears_every_round_and_changes_nothing(spec):
    panel = _build(spec)
    heard: list[FitStep] = []
    with listen_to_fit(heard.append):
        listened = create_model("lightgbm", max_rounds=300).fit(panel)
    silent = create_model("lightgbm", max_rounds=300).fit(panel)
    assert listened.predict(3).equals(silent.predict(3))
    probe = [s for s in heard if s.stage.startswith("probe") and not s.finished]
    assert [s.done for s in probe] == list(range(1, len(probe) + 1))
    assert all(s.total == 300 and s.may_stop_early for s in probe)
    ended = {s.stage: s for s in heard if s.finished}
    assert set(ended) == {"probe fit (early stopping)", "final fit"}
    # The probe ran its best round plus the patience (or to the end); the refit runs the best.
    assert ended["probe fit (early stopping)"].done == probe[-1].done + (probe[-1].done < 300)
    final = [s for s in heard if s.stage == "final fit" and not s.finished]
    assert final[-1].done == ended["final fit"].done == final[-1].total
    assert ended["final fit"].done == listened.booster.current_iteration()


def test_train_prints_rounds_and_time_left_when_piped(spec, tmp_path, monkeypatch):
    monkeypatch.setattr(fit_display, "PLAIN_EVERY", 0.0)  # a progress line on every report
    config = tmp_path / "lgb.yaml"
    config.write_text("model: lightgbm\nparams: {max_rounds: 40, early_stopping: false}\n")
    result = runner.invoke(app, ["train", "--config", str(config), "--spec", str(spec),
                                 "--out", str(tmp_path / "model")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "Training lightgbm on 24 series" in lines
    assert "[lightgbm] final fit: up to 40 rounds" in lines
    progress = [line for line in lines if line.startswith("[lightgbm] final fit: ")
                and "elapsed" in line]
    assert progress and all("left" in line for line in progress)
    assert any(line.startswith("[lightgbm] final fit: 40 rounds in ") for line in lines)
    assert "\x1b[" not in result.output  # plain text, no terminal codes


def test_a_neural_training_shows_its_epochs(spec, tmp_path):
    config = tmp_path / "mm.yaml"
    config.write_text("model: multimodal\nparams: {epochs: 2, lookback: 8, hidden: 8, "
                      "fusion_dim: 8, horizon: 2, accelerator: cpu, patience: 5}\n")
    result = runner.invoke(app, ["train", "--config", str(config), "--spec", str(spec),
                                 "--out", str(tmp_path / "model")])
    assert result.exit_code == 0, result.output
    assert ("[multimodal] training: up to 2 epochs (early stopping may end it sooner)"
            in result.output.splitlines())
    assert "[multimodal] training: 2 epochs in " in result.output


def test_on_a_terminal_the_fit_is_a_bar_with_the_time_left():
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=140)
    with FitDisplay(console, "lightgbm", "Training lightgbm on 3 series") as shown:
        for done in range(1, 11):
            shown.step(FitStep("probe fit (early stopping)", done, 100, "rounds", True))
        shown.step(FitStep("probe fit (early stopping)", 60, 100, "rounds", False,
                           finished=True))
    text = stream.getvalue()
    assert "lightgbm: probe fit (early stopping)" in text and "left" in text
    assert "stopped early after 60 of 100 rounds" in text
