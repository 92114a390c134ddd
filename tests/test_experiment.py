"""``salesfusion experiment``: validated configs, cells cached and resumed after SIGKILL,
parallel jobs, the tables; and the ready-made experiments end to end (``--smoke``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.errors import InputError
from salesfusion.experiments.config import load_experiment
from tests.conftest import make_shop

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
TINY = {"epochs": 2, "lookback": 8, "hidden": 16, "fusion_dim": 16, "batch_size": 64,
        "accelerator": "cpu"}


def _experiment(folder: Path, **changes: object) -> Path:
    make_shop(folder, n_items=16, weeks=40)
    config = {
        "name": "tiny", "datasets": [{"spec": "spec.yaml", "label": "shop"}],
        "evaluation": {"kind": "backtest", "horizon": 4, "windows": 2}, "trials": 3,
        "models": [{"name": "naive", "baseline": True},
                   {"name": "moving_average", "baseline": True},
                   {"name": "multimodal", "params": TINY}],
        "ablation": {"model": "multimodal", "axes": {
            "text": {"on": {"modalities": ["text", "static"]}, "off": {"modalities": ["static"]}},
            "rnn": {"gru": {"backbone": "gru"}, "lstm": {"backbone": "lstm"}}}},
        **changes}
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_a_tiny_experiment_writes_every_table(tmp_path: Path) -> None:
    config = _experiment(tmp_path)
    out = tmp_path / "out"
    result = runner.invoke(app, ["experiment", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    # 4 ablation variants x 3 trials, and each unseeded baseline once
    cells = sorted(p.parent.relative_to(out / "cells").as_posix()
                   for p in (out / "cells").rglob("cell.json"))
    assert len(cells) == 14
    assert [c for c in cells if c.startswith("shop/naive")] == ["shop/naive/trial-0"]
    headline = pl.read_csv(out / "headline.csv")
    assert headline.height == 6 and sorted(headline["rank"]) == [1, 2, 3, 4, 5, 6]
    assert set(headline["best_baseline"]) == {"moving_average"}
    # every metric of the evaluation module per cell and trial, directional ones included
    assert {"WAPE", "MASE", "sMAPE", "R2", "direction_accuracy", "direction_AUC"} <= set(
        pl.read_csv(out / "cells.csv")["metric"])
    summary = pl.read_csv(out / "summary.csv")
    # the baselines stand for every trial, the seeded models vary
    trials = summary.filter(pl.col("metric") == "WAPE")
    assert set(trials["trials"]) == {3}
    assert trials.filter(pl.col("model") == "naive")["std"][0] == 0
    assert trials.filter(pl.col("model").str.starts_with("multimodal"))["std"].min() > 0
    significance = pl.read_csv(out / "significance.csv")
    assert significance.height == 5 and set(significance["model_b"]) == {"moving_average"}
    markdown = (out / "results.md").read_text()
    assert "## Ablation grid: RMSSE" in markdown and "Critical difference" in markdown
    assert "\\begin{table}" in (out / "results.tex").read_text()
    assert "<table" in (out / "results.html").read_text()
    assert (out / "plots.html").stat().st_size > 100_000  # plotly inlined once


@pytest.mark.parametrize(("change", "message"), [
    ({"metrics": ["WAPE", "F1"]}, "unknown metrics"),
    ({"primary_metric": "RMSE"}, "primary_metric RMSE cannot rank the models"),
    ({"metric": "R2"}, "at 'metric': Input should be 'rmsse', 'wape'"),
    ({"models": [{"name": "naive"}, {"name": "naive"}]}, "appear twice"),
    ({"ablation": {"model": "gru", "axes": {"x": {"a": {}, "b": {}}}}}, "ablation model 'gru'"),
    ({"models": [{"name": "multimodal", "params": {"hiden": 3}}]}, "no parameter 'hiden'"),
    ({"models": [{"name": "naive2"}]}, "unknown model 'naive2'"),
    ({"datasets": [{"name": "synthetic", "spec": "x.yaml"}]}, "exactly one of name"),
    ({"evaluation": {"kind": "holdout"}}, "evaluation.kind"),
    ({"evaluation": {"kind": "launch", "launch": {"test_fraction": 2}}}, "test_fraction"),
    ({"models": [{"name": "multimodal", "params": TINY, "tune": {"budget": 2}}]},
     "is ablated and tuned"),
])
def test_bad_configs_name_the_file_and_the_field(tmp_path: Path, change: dict,
                                                 message: str) -> None:
    path = _experiment(tmp_path, **change)
    if "ablation" not in change and "models" in change and "tune" not in str(change):
        raw = yaml.safe_load(path.read_text())
        raw.pop("ablation")
        path.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match=r"experiment\.yaml") as error:
        load_experiment(path)
    assert message in str(error.value)
    result = runner.invoke(app, ["experiment", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and not (tmp_path / "out").exists()


def _cells(out: Path) -> dict[str, tuple[int, int]]:
    return {p.parent.as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in (out / "cells").rglob("cell.json")}


def test_an_interrupted_experiment_resumes_without_recomputing_finished_cells(
        tmp_path: Path) -> None:
    config = _experiment(tmp_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [str(Path(sys.executable).parent / "salesfusion"), "experiment", str(config)]
    whole = tmp_path / "whole"
    subprocess.run([*command, "--out", str(whole)], env=env, check=True, capture_output=True)
    killed = tmp_path / "killed"
    process = subprocess.Popen([*command, "--out", str(killed)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not (killed / "cells").exists()
                                           or len(_cells(killed)) < 4):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = _cells(killed)
    assert 4 <= len(finished) < 14 and not (killed / "headline.csv").exists()
    result = subprocess.run([*command, "--out", str(killed)], env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert f"({len(finished)} already done)" in result.stderr
    after = _cells(killed)
    assert {k: after[k] for k in finished} == finished  # not one finished cell recomputed
    assert len(after) == 14
    assert not [p for p in (killed / "cells").rglob(".*staging*")]
    assert pl.read_csv(killed / "headline.csv").equals(pl.read_csv(whole / "headline.csv"))


def test_jobs_run_cells_in_processes_with_the_same_results(tmp_path: Path) -> None:
    config = _experiment(tmp_path, trials=2)
    results = {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        result = runner.invoke(app, ["experiment", str(config), "--out", str(out), "--jobs",
                                     str(jobs)])
        assert result.exit_code == 0, result.output
        results[jobs] = pl.read_csv(out / "summary.csv")
    assert results[1].equals(results[2])


def test_a_folder_of_something_else_is_refused(tmp_path: Path) -> None:
    config = _experiment(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["experiment", str(config), "--out", str(mine)])
    assert result.exit_code == 2 and "holds no salesfusion experiment" in result.output
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("name", ["seed000_comparison", "seed004_ablation", "seed001_recurrent",
                                  "cold_start"])
def test_the_ready_made_experiments_run_end_to_end(tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    result = runner.invoke(app, ["experiment", str(ROOT / "experiments" / f"{name}.yaml"),
                                 "--out", str(out), "--smoke"])
    assert result.exit_code == 0, result.output
    headline = pl.read_csv(out / "headline.csv")
    config = load_experiment(ROOT / "experiments" / f"{name}.yaml")
    assert headline.height == len(config.variants()) * len(config.datasets)
    assert (out / "results.md").is_file() and (out / "plots.html").is_file()
    if any(d.name == "synthetic" for d in config.datasets):  # the truth is known there
        oracle = pl.read_csv(out / "oracle.csv").filter(
            pl.col("metric") == config.headline_metric)
        best = headline.filter(pl.col("dataset") == "synthetic")["mean"].min()
        assert oracle["rows"][0] > 0 and 0 < oracle["value"][0] < best


def test_mlflow_tracking_logs_each_cell_once(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    config = _experiment(tmp_path, trials=2)
    out = tmp_path / "out"
    for _ in range(2):  # the rerun finds every cell run and logs nothing twice
        result = runner.invoke(app, ["experiment", str(config), "--out", str(out), "--mlflow"])
        assert result.exit_code == 0, result.output
    assert "0 cell run(s) logged, 10 already there" in result.output
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("salesfusion/tiny")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 10
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    wape = pl.read_csv(out / "cells.csv").filter(
        (pl.col("model") == "naive") & (pl.col("metric") == "WAPE"))["value"][0]
    naive = next(r for r in children if r.data.params["variant"] == "naive")
    assert naive.data.metrics["WAPE"] == pytest.approx(wape)
    history = client.get_metric_history(parents[0].info.run_id, "shop.naive.WAPE")
    assert len(history) == 1


def test_a_foreign_folder_in_place_of_a_cell_is_never_removed(tmp_path: Path) -> None:
    config = _experiment(tmp_path, trials=1)
    out = tmp_path / "out"
    assert runner.invoke(app, ["experiment", str(config), "--out", str(out)]).exit_code == 0
    cell = out / "cells" / "shop" / "moving_average" / "trial-0"
    (cell / "cell.json").unlink()  # now a folder salesfusion did not write
    (cell / "mine.txt").write_text("mine")
    raw = yaml.safe_load(config.read_text())
    raw["models"][1]["params"] = {"window": 3}  # the cell must be computed again
    config.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["experiment", str(config), "--out", str(out)])
    assert result.exit_code == 2 and "not written by salesfusion" in result.output
    assert (cell / "mine.txt").read_text() == "mine"
