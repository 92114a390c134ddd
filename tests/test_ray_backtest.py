"""Backtests on a local Ray cluster give the forecasts of the local loop; LightGBM's threads and
rounds settings (the one-machine speed work of the scale issue)."""

from __future__ import annotations

import os

import polars as pl
import pytest
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.data.splits import BacktestProtocol
from salesfusion.evaluation.runner import backtest_models
from salesfusion.models.backtest import WindowDone
from salesfusion.models.registry import create_model
from salesfusion.threads import default_threads

pytestmark = pytest.mark.xdist_group("ray")
runner = CliRunner()
MODELS = ["naive", "lightgbm", "imapa"]


class Heard:
    """A progress listener that keeps what it hears."""

    def __init__(self) -> None:
        self.windows: list[WindowDone] = []
        self.done: list[str] = []
        self.failed: dict[str, str] = {}

    def model_started(self, model: str, windows: int) -> None:
        pass

    def window_done(self, done: WindowDone) -> None:
        self.windows.append(done)

    def model_done(self, model: str, seconds: float, notes) -> None:
        self.done.append(model)

    def model_failed(self, model: str, error: str) -> None:
        self.failed[model] = error


# First in the module: no session runs yet (the fixture's starts at the next test).
def test_cli_backtest_on_ray_writes_the_local_forecasts(tmp_path, shop_spec) -> None:
    common = ["backtest", "--models", "naive,seasonal_naive", "--spec", str(shop_spec),
              "--horizon", "2", "--windows", "2"]
    local = runner.invoke(app, [*common, "--out", str(tmp_path / "local")])
    assert local.exit_code == 0, local.output
    # No session is running here: the command starts a local cluster and stops it.
    import ray

    assert not ray.is_initialized()
    on_ray = runner.invoke(app, [*common, "--out", str(tmp_path / "ray"), "--backend", "ray",
                                 "--workers", "2"])
    assert on_ray.exit_code == 0, on_ray.output
    assert not ray.is_initialized()
    assert pl.read_parquet(tmp_path / "ray" / "forecasts.parquet").equals(
        pl.read_parquet(tmp_path / "local" / "forecasts.parquet"))


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _models() -> list:
    return [create_model("naive", horizon=3), create_model("lightgbm", horizon=3, max_rounds=20),
            create_model("imapa", horizon=3)]


def test_a_ray_backtest_equals_the_local_one(module_shop_panel, ray_cluster) -> None:
    protocol = BacktestProtocol(horizon=3, windows=2, step=3, refit=True)
    local = backtest_models(module_shop_panel, _models(), protocol)
    heard = Heard()
    on_ray = backtest_models(module_shop_panel, _models(), protocol, heard, on_ray=True)
    assert on_ray.forecasts.equals(local.forecasts)
    assert on_ray.metrics.equals(local.metrics)
    assert on_ray.notes == local.notes
    # Every (model, window) was its own task, heard as it finished.
    assert sorted((w.model, w.window) for w in heard.windows) == sorted(
        (m, w) for m in MODELS for w in range(2))
    assert sorted(heard.done) == sorted(MODELS) and not heard.failed
    # Without refit a model's windows share one fit: one task per model, same result.
    protocol = BacktestProtocol(horizon=3, windows=2, step=3, refit=False)
    assert backtest_models(module_shop_panel, _models(), protocol, on_ray=True).forecasts.equals(
        backtest_models(module_shop_panel, _models(), protocol).forecasts)


def test_a_failing_model_on_ray_keeps_the_others(module_shop_panel, ray_cluster) -> None:
    protocol = BacktestProtocol(horizon=3, windows=2, step=3, refit=True)
    broken = create_model("lightgbm", horizon=2, max_rounds=5)  # asked for 3 periods
    heard = Heard()
    run = backtest_models(module_shop_panel, [create_model("naive", horizon=3), broken],
                          protocol, heard, on_ray=True)
    assert set(run.forecasts["model"].unique()) == {"naive"}
    assert "horizons up to 2" in run.failures["lightgbm"]
    assert "lightgbm" in heard.failed


@pytest.mark.parametrize(("options", "named"), [
    (["--backend", "spark"], "--backend"),
    (["--workers", "2"], "--workers"),
    (["--ray-address", "127.0.0.1:1"], "--ray-address"),
])
def test_cli_backtest_refuses_bad_backend_options(tmp_path, shop_spec, options, named) -> None:
    result = runner.invoke(app, ["backtest", "--models", "naive", "--spec", str(shop_spec),
                                 "--out", str(tmp_path / "out"), *options])
    assert result.exit_code == 2
    assert named in result.output
    assert not (tmp_path / "out").exists()


def test_lightgbm_without_early_stopping_trains_max_rounds_once(module_shop_panel) -> None:
    fitted = create_model("lightgbm", horizon=3, max_rounds=7, early_stopping=False).fit(
        module_shop_panel)
    assert fitted.booster.num_trees() == 7
    stopped = create_model("lightgbm", horizon=3, max_rounds=400, early_stopping_rounds=3).fit(
        module_shop_panel)
    assert stopped.booster.num_trees() < 400


def test_lightgbm_threads_follow_omp_num_threads(monkeypatch) -> None:
    from salesfusion.models.baselines.boosting import booster_params

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert default_threads() == 1
    assert booster_params(create_model("lightgbm").config)["num_threads"] == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_threads() == len(os.sched_getaffinity(0))
    assert booster_params(create_model("lightgbm", threads=3).config)["num_threads"] == 3
    # Passive OpenMP waiting is the package's default (set on import, before OpenMP loads).
    assert os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
