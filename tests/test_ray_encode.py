"""``salesfusion encode --backend ray``: Ray Data actors encode into the same content-hash cache
and give what the local path gives (vectors, mask, problems, cache hits), on a local cluster."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.datasets.synthetic import SyntheticDataset, synthetic
from salesfusion.distributed import ray_session
from salesfusion.encoders.base import Encoded
from salesfusion.encoders.cache import EmbeddingCache
from salesfusion.encoders.inputs import Catalogue, build_encoder
from salesfusion.encoders.ray_encode import encode_with_ray

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytestmark = pytest.mark.xdist_group("ray")  # one local cluster at a time
runner = CliRunner()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return synthetic(tmp_path_factory.mktemp("shop"), n_items=24, n_weeks=6, image_size=16,
                     seed=4)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _same(ray_result: Encoded, local: Encoded) -> None:
    assert np.allclose(ray_result.vectors, local.vectors, atol=1e-6)
    assert (ray_result.mask == local.mask).all()
    assert ray_result.problems == local.problems
    assert (ray_result.cache_hits, ray_result.unique) == (local.cache_hits, local.unique)


def _parts(cache: Path) -> int:
    return len(list(cache.rglob("part-*.parquet")))


def test_cli_ray_output_equals_local_and_stops_the_cluster_it_started(shop: SyntheticDataset,
                                                                     tmp_path: Path) -> None:
    # First in the module, before the cluster fixture: the command starts its own cluster.
    running = ray.is_initialized()
    folder = shutil.copytree(shop.folder, tmp_path / "shop")
    broken = sorted((folder / "images").iterdir())[3]
    broken.write_bytes(b"not a png")
    args = ["encode", "--spec", str(folder / "spec.yaml"), "--modality", "image",
            "--encoder", "color_texture", "--batch-size", "5"]
    local = runner.invoke(app, [*args, "--cache", str(tmp_path / "local"),
                                "--out", str(tmp_path / "local.parquet")])
    assert local.exit_code == 0, local.output
    on_ray = runner.invoke(app, [*args, "--cache", str(tmp_path / "ray"), "--backend", "ray",
                                 "--workers", "2", "--out", str(tmp_path / "ray.parquet")])
    assert on_ray.exit_code == 0, on_ray.output
    assert ray.is_initialized() == running
    assert "Encoding on Ray with 2 workers" in on_ray.stderr
    # Plain progress lines as batches finish: 24 contents in batches of at most 5.
    progress = [line for line in on_ray.stderr.splitlines() if " on Ray: " in line]
    assert len(progress) >= 5 and progress[-1].endswith("24/24 contents encoded")
    assert "24 inputs (24 unique contents), 0 cache hits, 1 masked" in on_ray.stderr
    written = pl.read_parquet(tmp_path / "ray.parquet")
    assert written.height == 24 and written["mask"].sum() == 23
    # The corrupt image is masked with its reason, as on the local path.
    masked = written.filter(~pl.col("mask"))
    assert masked["problem"][0].startswith("unreadable") and broken.stem in on_ray.stderr
    assert_frame_equal(written, pl.read_parquet(tmp_path / "local.parquet"))


def test_cli_rejects_bad_backend_options(shop: SyntheticDataset, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["encode", "--spec", str(shop.folder / "spec.yaml"), "--modality", "text",
            "--encoder", "tfidf", "--cache", str(tmp_path / "cache")]
    for extra, named in ((["--backend", "spark"], "--backend 'spark'"),
                         (["--backend", "ray", "--workers", "0"], "--workers"),
                         (["--ray-address", "auto"], "--ray-address apply to --backend ray")):
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 2 and named in result.stderr, result.output
    monkeypatch.setitem(sys.modules, "ray.data", None)  # as when Ray Data is not installed
    missing = runner.invoke(app, [*args, "--backend", "ray"])
    assert missing.exit_code == 2
    assert "pip install 'salesfusion[ray]'" in missing.stderr, missing.output
    assert not (tmp_path / "cache").exists()  # nothing was encoded


@pytest.mark.parametrize(("modality", "name"), [("text", "tfidf"),
                                                 ("image", "efficientnet_lite0")])
def test_ray_vectors_equal_local_and_share_the_cache(cluster: None, shop: SyntheticDataset,
                                                     tmp_path: Path, modality: str,
                                                     name: str) -> None:
    catalogue = Catalogue.from_tables(shop.tables)
    inputs, _ = catalogue.inputs(modality)
    encoder = build_encoder(catalogue, modality, name)
    if encoder.needs_fit:  # the actors get the fitted encoder
        encoder.fit(catalogue.fit_corpus(encoder, inputs))
    local = encoder.encode(inputs, batch_size=7, cache=EmbeddingCache(tmp_path / "local"))
    cache = EmbeddingCache(tmp_path / "ray")
    on_ray = encode_with_ray(encoder, inputs, 7, cache, workers=2, progress=False)
    _same(on_ray, local)
    assert on_ray.unique == 24 and on_ray.cache_hits == 0 and on_ray.mask.all()
    parts = _parts(tmp_path / "ray")  # one per batch of at most 7
    assert cache.stats.stored == 24 and parts >= 4
    # What the actors wrote is the local path's cache: a local rerun encodes nothing ...
    rerun = encoder.encode(inputs, batch_size=7, cache=EmbeddingCache(tmp_path / "ray"))
    assert rerun.cache_hits == rerun.unique == 24
    assert np.allclose(rerun.vectors, local.vectors, atol=1e-6)
    # ... and neither does a Ray rerun.
    again = encode_with_ray(encoder, inputs, 7, EmbeddingCache(tmp_path / "ray"), workers=2)
    assert again.cache_hits == again.unique == 24 and _parts(tmp_path / "ray") == parts
    assert np.allclose(again.vectors, local.vectors, atol=1e-6)


def test_ray_session_leaves_a_running_session_running(cluster: None) -> None:
    with ray_session(None, workers=1):
        assert ray.is_initialized()
    assert ray.is_initialized()
