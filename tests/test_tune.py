"""``salesfusion tune`` end to end on a small shop: outputs, the test periods kept from every
trial, resuming a search killed with SIGKILL, budgets, and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from salesfusion.cli import app

runner = CliRunner()
def _tune(spec: Path, out: Path, *extra: str) -> list[str]:
    return ["tune", "--config", str(spec.parent / "cfg.yaml"), "--space",
            str(spec.parent / "space.yaml"), "--spec", str(spec), "--out", str(out), *extra]


def _ends(folder: Path) -> list[dict]:
    lines = (folder / "trials.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == "end"]


def test_tune_writes_the_log_the_best_config_and_its_model(tune_shop: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "search"
    result = runner.invoke(app, _tune(tune_shop, out, "--budget", "4", "--searcher", "msrl"))
    assert result.exit_code == 0, result.output
    assert "trial 0 [1/4]" in result.output and "best RMSSE" in result.output
    trials = pl.read_parquet(out / "trials.parquet")
    assert trials.filter(pl.col("status") != "cached").height == 4
    assert pl.read_csv(out / "trials.csv").height == trials.height
    assert {"trial", "status", "score", "seconds", "seed", "param_hidden", "param_epochs",
            "param_lr"} <= set(trials.columns)
    trained = trials.filter(pl.col("status") == "complete")
    # never the same configuration twice
    assert trained.select("param_hidden", "param_epochs", "param_lr").is_unique().all()
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["model"] == "multimodal"
    row = trained.sort("score").row(0, named=True)
    assert {k: best["params"][k] for k in ("hidden", "epochs", "lr")} == {
        "hidden": row["param_hidden"], "epochs": row["param_epochs"], "lr": row["param_lr"]}
    session = json.loads((out / "search.json").read_text())["sessions"][0]
    assert {"commit", "date_utc", "threads"} <= set(session)
    metrics = pl.read_csv(out / "test_metrics.csv")
    assert set(metrics["market"]) == {"all", "GB", "DE"}
    # the best configuration is ready for `train --config`
    trained_model = tmp_path / "model"
    result = runner.invoke(app, ["train", "--config", str(out / "best.yaml"), "--spec",
                                 str(tune_shop), "--out", str(trained_model)])
    assert result.exit_code == 0, result.output
    assert (out / "model" / "manifest.json").is_file()


class _Spy:
    seen: ClassVar[list] = []


def _register_spy():
    from pydantic import Field

    from salesfusion.components import MODELS
    from salesfusion.models.baselines.statistical import MovingAverage
    from salesfusion.models.config import ModelConfig

    class SpyWindow(MovingAverage):
        """A moving average that records the last period of every panel it is given."""

        name = "spy_window"

        class Config(ModelConfig):
            window: int = Field(4, ge=1)

        def _fit(self, panel):
            _Spy.seen.append(panel.periods.max())
            return super()._fit(panel)

        def _predict(self, horizon, history, series):
            _Spy.seen.append(history.periods.max())
            return super()._predict(horizon, history, series)

    MODELS.register(SpyWindow)
    return SpyWindow


def test_the_test_periods_never_reach_a_trial(tune_shop: Path, tmp_path: Path) -> None:
    from salesfusion.components import MODELS

    _register_spy()
    space = tmp_path / "window.yaml"
    space.write_text("window: {type: int, low: 1, high: 8}\ngrid_points: 8\n")
    try:
        outs = []
        for run in range(2):
            _Spy.seen.clear()
            out = tmp_path / f"spy{run}"
            result = runner.invoke(app, ["tune", "--preset", "spy_window", "--space", str(space),
                                         "--spec", str(tune_shop), "--searcher", "grid",
                                         "--budget", "8", "--test-periods", "6", "--out",
                                         str(out)])
            assert result.exit_code == 0, result.output
            sales = pl.read_csv(tune_shop.parent / "sales.csv")
            periods = sorted(pl.read_parquet(out / "model" / "history.parquet")["timestamp"]
                             .unique())
            last_tuning = periods[-1]
            assert _Spy.seen and max(_Spy.seen) == last_tuning  # the final model's history
            assert pl.read_parquet(out / "trials.parquet").height == 8
            outs.append(out)
            # Change every sale of the test periods: the search must not notice.
            when = pl.col("when").str.to_datetime()
            sales.with_columns(
                pl.when(when > last_tuning + pl.duration(days=7)).then(pl.col("qty") * 50)
                .otherwise(pl.col("qty")).alias("qty")).write_csv(tune_shop.parent / "sales.csv")
        first, second = (pl.read_parquet(o / "trials.parquet") for o in outs)
        assert first["score"].to_list() == second["score"].to_list()
        # ... while the final model's test metrics do see them (after the search).
        assert not pl.read_csv(outs[0] / "test_metrics.csv").equals(
            pl.read_csv(outs[1] / "test_metrics.csv"))
    finally:
        MODELS.unregister("spy_window")


def _cli(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "salesfusion"), *args]


@pytest.mark.parametrize("searcher", ["msrl", "optuna"])
def test_a_killed_search_resumes_without_repeating_finished_trials(
        tune_shop: Path, tmp_path: Path, searcher: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "whole"
    args = ["--searcher", searcher, "--budget", "8"]
    subprocess.run(_cli(*_tune(tune_shop, reference, *args)), env=env, check=True,
                   capture_output=True)
    killed = tmp_path / "killed"
    process = subprocess.Popen(_cli(*_tune(tune_shop, killed, *args)), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        log = killed / "trials.jsonl"
        if log.is_file() and sum(1 for r in _ends(killed) if r["status"] != "cached") >= 3:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = {r["trial"] for r in _ends(killed)}
    assert not (killed / "best.yaml").exists()
    result = subprocess.run(_cli("tune", "--resume", str(killed)), env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "resumed:" in result.stderr
    ends = _ends(killed)
    # every trial ended once: none finished before the kill was trained again
    assert len({r["trial"] for r in ends}) == len(ends)
    starts = [json.loads(line) for line in (killed / "trials.jsonl").read_text().splitlines()]
    restarted = [r["trial"] for r in starts if r["event"] == "start"]
    assert not finished_before & {t for t in restarted if restarted.count(t) > 1}
    # and the search is the uninterrupted one, trial for trial
    whole = [(r["params"], r["status"], r["score"]) for r in _ends(reference)]
    assert [(r["params"], r["status"], r["score"]) for r in ends] == whole
    assert (killed / "best.yaml").read_text() == (reference / "best.yaml").read_text()


def test_resume_can_raise_the_budget_and_refuses_other_data(tune_shop: Path,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "search"
    assert runner.invoke(app, _tune(tune_shop, out, "--budget", "2")).exit_code == 0
    result = runner.invoke(app, ["tune", "--resume", str(out), "--budget", "4"])
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(out / "trials.parquet").filter(
        pl.col("status") != "cached").height == 4
    sales = pl.read_csv(tune_shop.parent / "sales.csv")
    sales.with_columns(pl.col("qty") + 1).write_csv(tune_shop.parent / "sales.csv")
    before = (out / "trials.jsonl").read_text()
    result = runner.invoke(app, ["tune", "--resume", str(out), "--budget", "6"])
    assert result.exit_code == 2
    assert "the search was run on other data" in result.output
    assert (out / "trials.jsonl").read_text() == before


def test_time_budget_stops_the_search(tune_shop: Path, tmp_path: Path) -> None:
    out = tmp_path / "search"
    result = runner.invoke(app, _tune(tune_shop, out, "--budget", "40", "--searcher", "random",
                                      "--time-budget", "1"))
    assert result.exit_code == 0, result.output
    assert "time budget of 1 s reached" in result.output
    trials = pl.read_parquet(out / "trials.parquet")
    assert trials.height < 40
    assert trials["seconds"].head(trials.height - 1).sum() < 1 <= trials["seconds"].sum()


@pytest.mark.parametrize(("extra", "message"), [
    (["--searcher-option", "update=sideways"], "searcher 'msrl', option 'update'"),
    (["--searcher-option", "nokey"], "write it as KEY=VALUE"),
    (["--searcher", "hill"], "unknown searcher 'hill'"),
    (["--metric", "R2"], "unknown tuning metric 'R2'"),
    (["--test-periods", "29"], "too few for a validation part"),
    (["--backend", "spark"], "use local or ray"),
])
def test_bad_input_is_one_line_and_writes_nothing(tune_shop: Path, tmp_path: Path, extra: list[str],
                                                  message: str) -> None:
    out = tmp_path / "search"
    result = runner.invoke(app, _tune(tune_shop, out, *extra))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists()


def test_a_model_without_a_space_and_a_used_folder_are_refused(tune_shop: Path,
                                                               tmp_path: Path) -> None:
    result = runner.invoke(app, ["tune", "--preset", "naive", "--spec", str(tune_shop), "--out",
                                 str(tmp_path / "s")])
    assert result.exit_code == 2 and "declares no search space" in result.output
    used = tmp_path / "mine"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    result = runner.invoke(app, _tune(tune_shop, used))
    assert result.exit_code == 2 and "not an empty folder" in result.output
    assert [p.name for p in used.iterdir()] == ["notes.txt"]
    result = runner.invoke(app, ["tune", "--resume", str(used)])
    assert result.exit_code == 2 and "no search to resume" in result.output
    result = runner.invoke(app, ["tune", "--resume", str(used), "--searcher", "grid",
                                 "--seed", "3"])
    assert result.exit_code == 2
    assert "--searcher, --seed: a resumed search keeps its definition" in result.output
