"""``salesfusion train --backend ray``: a neural model trained with Lightning DDP on Ray Train
workers of a local two-CPU cluster, deterministic per seed, its loss close to a local run's, and
the batch sharding that makes it so."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import yaml
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.errors import InputError
from salesfusion.models.registry import create_model
from salesfusion.training.ray_train import RankSlices, ray_plan, shard_loader
from tests.conftest import TUNE_TINY, _build, make_shop

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")  # one local cluster at a time
runner = CliRunner()
TINY = {**TUNE_TINY, "epochs": 3, "seed": 7}
LOSS = re.compile(r"best validation loss ([0-9.e+-]+)")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def trained(cluster: None, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny model trained three ways on one shop: through the CLI on Ray (2 workers),
    in Python on Ray (same seed) and locally."""

    folder = tmp_path_factory.mktemp("ray_shop")
    spec = make_shop(folder)
    panel = _build(spec)
    config = folder / "cfg.yaml"
    config.write_text(yaml.safe_dump({"model": "multimodal", "params": TINY}))
    cli = runner.invoke(app, ["train", "--config", str(config), "--spec", str(spec), "--out",
                              str(folder / "cli"), "--backend", "ray", "--workers", "2"])
    plan = ray_plan(2)
    again = create_model("multimodal", **TINY).train_on(plan).fit(panel)
    local = create_model("multimodal", **TINY).fit(panel)
    return {"folder": folder, "spec": spec, "panel": panel, "cli": cli, "again": again,
            "plan": plan, "local": local}


def _best_loss(notes: list[str] | str) -> float:
    text = notes if isinstance(notes, str) else " ".join(notes)
    return float(LOSS.search(text).group(1))


def test_ray_training_runs_two_ddp_workers_with_a_loss_like_a_local_run(trained: dict) -> None:
    cli = trained["cli"]
    assert cli.exit_code == 0, cli.output
    assert "trained on Ray: 2 workers, DDP" in cli.output
    assert "(on Ray: 2 worker(s), DDP)" in " ".join(trained["again"].notes)
    (run,) = trained["plan"].runs
    assert run.world_size == 2
    # Each rank was dealt half of every batch: both trained, on (nearly) equal shares.
    first, second = run.rows_per_rank
    assert first > 0 and second > 0 and abs(first - second) <= 0.05 * (first + second)
    ray_loss, local_loss = _best_loss(cli.output), _best_loss(trained["local"].notes)
    assert math.isfinite(ray_loss) and math.isfinite(local_loss)
    # The all-reduced gradient is the whole batch's: the same training up to float sums.
    assert 0.5 < ray_loss / local_loss < 2.0


def test_the_same_seed_on_ray_gives_the_same_forecasts_and_the_saved_model_predicts(
        trained: dict) -> None:
    from salesfusion.models.base import Forecaster

    assert trained["cli"].exit_code == 0, trained["cli"].output
    loaded = Forecaster.load(trained["folder"] / "cli")
    forecast = loaded.predict(3)
    assert forecast.height == 3 * trained["panel"].n_series
    values = forecast.select(pl.selectors.starts_with("y_pred", "q")).to_numpy()
    assert np.isfinite(values).all() and (forecast["y_pred"] >= 0).all()
    assert_frame_equal(forecast, trained["again"].predict(3))
    # Ray trained a network of its own, not the local one.
    assert not forecast["y_pred"].equals(trained["local"].predict(3)["y_pred"])


def test_models_that_cannot_train_on_ray_exit_2(tmp_path: Path) -> None:
    spec = make_shop(tmp_path)
    naive = runner.invoke(app, ["train", "--preset", "naive", "--spec", str(spec), "--out",
                                str(tmp_path / "naive"), "--backend", "ray"])
    assert naive.exit_code == 2
    assert "'naive'" in naive.output and "--backend ray" in naive.output
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({"model": "multimodal", "params": {
        **TINY, "checkpoint_dir": str(tmp_path / "ckpt")}}))
    resumable = runner.invoke(app, ["train", "--config", str(config), "--spec", str(spec),
                                    "--out", str(tmp_path / "m"), "--backend", "ray"])
    assert resumable.exit_code == 2
    assert "checkpoint_dir" in resumable.output and "--backend ray" in resumable.output
    local = runner.invoke(app, ["train", "--preset", "naive", "--spec", str(spec), "--out",
                                str(tmp_path / "n2"), "--workers", "2"])
    assert local.exit_code == 2 and "--backend ray" in local.output
    assert not any((tmp_path / name).exists() for name in ("naive", "m", "n2"))


def test_a_checkpoint_folder_is_refused_on_ray_before_training(module_shop_panel,
                                                              tmp_path: Path) -> None:

    model = create_model("multimodal", **{**TINY, "checkpoint_dir": str(tmp_path / "c")})
    with pytest.raises(InputError, match=r"checkpoint_dir.*--backend ray"):
        model.train_on(ray_plan(2)).fit(module_shop_panel)
    assert not (tmp_path / "c").exists()


def _loader(seed: int) -> torch.utils.data.DataLoader:
    data = torch.utils.data.TensorDataset(torch.arange(23))
    return torch.utils.data.DataLoader(data, batch_size=5, shuffle=True,
                                       generator=torch.Generator().manual_seed(seed))


def test_sharded_loaders_deal_out_each_seeded_batch_between_the_ranks() -> None:
    """Two epochs: each draws its order from the loader's generator, the same on every rank,
    and each batch is split disjointly and nearly evenly, so the ranks step together."""
    original = _loader(3)
    reference = [batch[0].tolist() for _ in range(2) for batch in original]
    shards = []
    for rank in range(2):
        loader, slices = shard_loader(_loader(3), rank, 2)
        shards.append([batch[0].tolist() for _ in range(2) for batch in loader])
        assert len(loader) == len(original) == 5
        assert slices.rows == sum(len(b) for b in shards[rank])
    assert reference[:5] != reference[5:]  # the second epoch has an order of its own
    assert len(shards[0]) == len(shards[1]) == len(reference)
    for batch, zero, one in zip(reference, *shards, strict=True):
        assert sorted(zero + one) == sorted(batch) and abs(len(zero) - len(one)) <= 1
    assert next(iter(shard_loader(_loader(4), 0, 2)[0]))[0].tolist() != shards[0][0]


def test_a_batch_smaller_than_the_world_gives_every_rank_a_row() -> None:
    parts = [list(RankSlices([[4, 9, 1], [7]], rank, 3)) for rank in range(3)]
    assert parts == [[[4], [7]], [[9], [7]], [[1], [7]]]
    with pytest.raises(InputError, match="batches of indices"):
        list(RankSlices([3, 4], 0, 2))


def test_an_iterable_training_loader_or_no_worker_is_refused() -> None:
    import lightning

    from salesfusion.training.trainer import TrainingSettings, train_module

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield from range(4)

    settings = TrainingSettings(epochs=1, patience=1, gradient_clip=0.0, accelerator="cpu",
                                ray=ray_plan(2))
    loader = torch.utils.data.DataLoader(Stream(), batch_size=2)
    with pytest.raises(InputError, match="map-style dataset"):
        train_module(lightning.LightningModule(), loader, None, settings)
    with pytest.raises(InputError, match="--workers"):
        ray_plan(0)
    with pytest.raises(InputError, match="model 'naive' is not a neural model"):
        create_model("naive").train_on(ray_plan(2))
