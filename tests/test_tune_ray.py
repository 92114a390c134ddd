"""The Ray backends on a local Ray cluster that this module starts and stops: real tuning trials
in parallel, each epoch's validation loss reported through ``ray.tune.report``, pruning through
the searcher, the local search reproduced trial for trial with one trial at a time, and an
experiment's cells as Ray tasks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from salesfusion.cli import app
from tests.conftest import TUNE_TINY
from tests.test_tune import _ends, _tune

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")  # one local cluster at a time
runner = CliRunner()


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_trials_run_in_parallel_on_ray_and_report_every_epoch(cluster: None, tune_shop: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "search"
    result = runner.invoke(app, _tune(tune_shop, out, "--backend", "ray", "--jobs", "2",
                                      "--searcher", "random", "--budget", "4"))
    assert result.exit_code == 0, result.output
    trials = pl.read_parquet(out / "trials.parquet").filter(pl.col("status") == "complete")
    assert trials.height == 4
    assert (out / "best.yaml").is_file() and (out / "model" / "manifest.json").is_file()
    # Each Ray trial reported its epochs one by one, then its score.
    reports = [[json.loads(line) for line in path.read_text().splitlines()]
               for path in (out / "ray").rglob("result.json")]
    assert len(reports) == 4
    for rows in reports:
        epochs = [r for r in rows if not r["final"]]
        assert [r["epoch"] for r in epochs] == list(range(1, len(epochs) + 1))
        assert rows[-1]["final"] and rows[-1]["status"] == "complete"
        assert len(rows[-1]["epochs_seen"]) == len(epochs)
    scores = sorted(trials["score"].to_list())
    assert len(set(scores)) == 4


def test_one_trial_at_a_time_on_ray_is_the_local_search(cluster: None, tune_shop: Path,
                                                       tmp_path: Path) -> None:
    ends = {}
    for backend in ("local", "ray"):
        out = tmp_path / backend
        result = runner.invoke(app, _tune(tune_shop, out, "--backend", backend, "--jobs", "1",
                                          "--searcher", "msrl", "--budget", "4"))
        assert result.exit_code == 0, result.output
        ends[backend] = [(r["params"], r["status"], r["score"]) for r in _ends(out)]
    assert ends["ray"] == ends["local"]


def test_the_searcher_prunes_ray_trials_between_epochs(cluster: None, tune_shop: Path,
                                                      tmp_path: Path) -> None:
    from salesfusion.components import SEARCHERS
    from salesfusion.models.registry import model_class
    from salesfusion.models.search_space import parse_space
    from salesfusion.tuning.log import TrialLog
    from salesfusion.tuning.objective import TuningData
    from salesfusion.tuning.ray_backend import run_search_ray
    from salesfusion.tuning.runner import Budget
    from salesfusion.tuning.searchers.basic import GridSearcher
    from tests.conftest import _build

    class PruneAfterTwo(GridSearcher):
        """The grid, stopping every trial after its second epoch."""

        name = "prune_after_two"

        def report(self, proposal: Any, epoch: int, value: float) -> bool:
            return epoch >= 2

    SEARCHERS.register(PruneAfterTwo)
    try:
        space = parse_space({"epochs": {"type": "int", "low": 4, "high": 6,
                                        "actions": [4, 6]}}, "test")
        searcher = PruneAfterTwo(space, 0)
        log = TrialLog(tmp_path / "pruned")
        log.create({}, {})
        data = TuningData.from_panel(_build(tune_shop), 4, 4)
        result = run_search_ray(model_class("multimodal"), TUNE_TINY, searcher, data, log,
                                Budget(2), 0, jobs=2, progress=lambda line: None)
    finally:
        SEARCHERS.unregister("prune_after_two")
    statuses = sorted(e.status for e in result.state.ends.values())
    assert statuses == ["pruned", "pruned"]
    assert all(len(e.epochs) >= 2 for e in result.state.ends.values())
    assert result.best is None


def test_experiment_cells_run_as_ray_tasks_with_the_local_results(cluster: None,
                                                                  tmp_path: Path) -> None:
    from tests.test_experiment import _experiment

    config = _experiment(tmp_path, trials=2)
    summaries = {}
    for backend in ("local", "ray"):
        out = tmp_path / backend
        result = runner.invoke(app, ["experiment", str(config), "--out", str(out), "--backend",
                                     backend, "--jobs", "2"])
        assert result.exit_code == 0, result.output
        summaries[backend] = pl.read_csv(out / "summary.csv")
    assert summaries["ray"].equals(summaries["local"])
