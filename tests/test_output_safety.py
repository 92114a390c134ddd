"""Nothing outside ``--out`` is ever deleted or replaced, whatever a planted output record says;
no output lands inside a saved model or an embedding cache; a full disk is one line and leaves
nothing behind. Each case: exit 2, one ``error:`` line naming the cause, no traceback, and the
victim files exactly as they were."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.cli.output import RECORD
from salesfusion.encoders.cache import EmbeddingCache
from salesfusion.models.base import Forecaster
from salesfusion.staging import STAGING
from tests.conftest import make_shop

runner = CliRunner()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shop(tmp_path_factory.mktemp("safety"), n_items=4, weeks=20, covariates=False)


def _refused(result: Any, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output
    assert all(fragment in errors[0] for fragment in fragments), errors[0]
    return errors[0]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _plant(out: Path, entries: dict[str, Path]) -> None:
    """A record in ``out`` vouching for ``entries`` with their true hashes (an attacker can
    compute them as well as salesfusion)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / RECORD).write_text(json.dumps({"files": {
        name: _sha(target) for name, target in entries.items()}}))


def _victim(folder: Path, name: str = "victim.txt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    victim = folder / name
    victim.write_text("the user's own file")
    return victim


RUN_COMMANDS = {
    "backtest": ["backtest", "--spec", "{spec}", "--models", "naive", "--windows", "1",
                 "--out", "{out}"],
    "train": ["train", "--spec", "{spec}", "--preset", "naive", "--out", "{out}"],
}


def _planted_cases(tmp_path: Path) -> list[tuple[str, Path, Path, dict[str, Path]]]:
    """(case, output folder, victim, record entries)."""
    out = tmp_path / "run"
    relative = _victim(tmp_path, "relative_victim.txt")
    absolute = _victim(tmp_path / "elsewhere", "absolute_victim.txt")
    linked_folder = _victim(tmp_path / "linked", "linked_victim.txt")
    out.mkdir()
    (out / "reports").symlink_to(tmp_path / "linked")
    return [
        ("dot_dot", out, relative, {"../relative_victim.txt": relative}),
        ("absolute", out, absolute, {str(absolute): absolute}),
        ("through_a_link", out, linked_folder, {"reports/linked_victim.txt": linked_folder}),
    ]


@pytest.mark.parametrize("command", sorted(RUN_COMMANDS))
def test_a_planted_record_deletes_nothing_outside_out(shop: Path, tmp_path: Path,
                                                      command: str) -> None:
    for case, out, victim, entries in _planted_cases(tmp_path):
        _plant(out, entries)
        before = {path: path.read_text() for path in tmp_path.rglob("*") if path.is_file()}
        args = [a.format(spec=shop, out=out) for a in RUN_COMMANDS[command]]
        _refused(runner.invoke(app, args), RECORD, "did not write this record")
        assert victim.read_text() == "the user's own file", case
        after = {path: path.read_text() for path in tmp_path.rglob("*") if path.is_file()}
        assert after == before, case
        assert not list(out.parent.glob(f".run{STAGING}*")), case


def test_a_record_that_is_a_link_is_refused(shop: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    victim = _victim(tmp_path)
    elsewhere = tmp_path / "record.json"
    elsewhere.write_text(json.dumps({"files": {}}))
    out.mkdir()
    (out / RECORD).symlink_to(elsewhere)
    _refused(runner.invoke(app, ["backtest", "--spec", str(shop), "--models", "naive",
                                 "--windows", "1", "--out", str(out)]), "is a link")
    assert elsewhere.read_text() == json.dumps({"files": {}})
    assert victim.read_text() == "the user's own file"


def test_a_genuine_record_still_replaces_its_own_run(shop: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["backtest", "--spec", str(shop), "--models", "naive", "--windows", "1",
            "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    first = json.loads((out / RECORD).read_text())["files"]
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert set(json.loads((out / RECORD).read_text())["files"]) == set(first)


@pytest.fixture(scope="module")
def model(shop: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "naive"
    trained = runner.invoke(app, ["train", "--spec", str(shop), "--preset", "naive",
                                  "--out", str(folder)])
    assert trained.exit_code == 0, trained.output
    return folder


@pytest.mark.parametrize("inside", ["f.parquet", "sub/f.parquet"])
def test_predict_refuses_an_output_inside_the_model(shop: Path, model: Path,
                                                    inside: str) -> None:
    before = sorted(p.relative_to(model).as_posix() for p in model.rglob("*"))
    _refused(runner.invoke(app, ["predict", "--model", str(model), "--spec", str(shop),
                                 "--horizon", "2", "--out", str(model / inside)]),
             "inside the saved model", str(model))
    assert sorted(p.relative_to(model).as_posix() for p in model.rglob("*")) == before
    Forecaster.load(model)  # still loadable


@pytest.mark.parametrize("out_format", ["parquet", "partitioned"])
def test_outputs_refuse_an_embedding_cache(shop: Path, model: Path, tmp_path: Path,
                                           out_format: str) -> None:
    cache = tmp_path / "cache"
    EmbeddingCache(cache).put("minilm/v1", ["k"], np.ones((1, 4), dtype=np.float32))
    before = sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*"))
    for out in (cache / "forecasts.parquet" if out_format == "parquet" else cache,
                cache / "minilm" / "v1" / "f.parquet" if out_format == "parquet"
                else cache / "minilm" / "v1"):
        _refused(runner.invoke(app, ["predict", "--model", str(model), "--spec", str(shop),
                                     "--horizon", "2", "--out-format", out_format,
                                     "--out", str(out)]), "inside the embedding cache")
    assert sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*")) == before
    _refused(runner.invoke(app, ["data", "build", str(shop), "--out",
                                 str(cache / "panel.parquet")]), "embedding cache")


@pytest.fixture
def full_disk() -> Iterator[Path]:
    """A 1 MiB tmpfs filled to the last byte (mounting needs root, as CI runs)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mount = Path(tempfile.mkdtemp(prefix="salesfusion-full-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        with open(mount / "filler", "wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError:
                pass
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()


@pytest.mark.parametrize("command", ["data build", "backtest"])
def test_a_full_disk_is_one_line_and_leaves_nothing(shop: Path, full_disk: Path,
                                                    command: str) -> None:
    out = full_disk / "out" / ("panel.parquet" if command == "data build" else "run")
    args = (["data", "build", str(shop), "--out", str(out)] if command == "data build" else
            ["backtest", "--spec", str(shop), "--models", "naive", "--windows", "1",
             "--out", str(out)])
    _refused(runner.invoke(app, args), "no space left")
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]
