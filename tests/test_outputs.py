"""Staged output never loses a user's files, never mixes runs and cleans up after killed runs."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.cli.output import RECORD, staged_file, staged_run
from salesfusion.errors import InputError
from salesfusion.staging import STAGING
from tests.conftest import make_shop


def _write(folder, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def test_a_run_replaces_our_earlier_run_and_removes_its_leftovers(tmp_path):
    out = tmp_path / "run"
    with staged_run(out) as staging:
        _write(staging, {"metrics.csv": "a", "report.html": "r", "member_0/weights": "w"})
    with staged_run(out) as staging:
        _write(staging, {"metrics.csv": "b", "metrics_since_launch.csv": "s"})
    assert sorted(p.name for p in out.iterdir()) == [RECORD, "metrics.csv",
                                                     "metrics_since_launch.csv"]
    assert (out / "metrics.csv").read_text() == "b"
    assert set(json.loads((out / RECORD).read_text())["files"]) == {
        "metrics.csv", "metrics_since_launch.csv"}


@pytest.mark.parametrize("planted", ["notes.txt", "sub/data.parquet"])
def test_a_run_folder_holding_foreign_files_is_refused_and_untouched(tmp_path, planted):
    out = tmp_path / "run"
    _write(out, {planted: "mine"})
    with (pytest.raises(InputError, match="salesfusion did not write"),
          staged_run(out) as staging):
        _write(staging, {"metrics.csv": "a"})
    assert (out / planted).read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == [planted.split("/")[0]]
    assert not list(tmp_path.glob(f".run{STAGING}*"))  # the staging folder is gone too


def test_our_file_changed_since_is_the_users_now(tmp_path):
    out = tmp_path / "run"
    with staged_run(out) as staging:
        _write(staging, {"metrics.csv": "a"})
    (out / "metrics.csv").write_text("edited by hand")
    with (pytest.raises(InputError, match=r"metrics\.csv: a file salesfusion did not write"),
          staged_run(out) as staging):
        _write(staging, {"metrics.csv": "b"})
    assert (out / "metrics.csv").read_text() == "edited by hand"


def test_a_file_output_replaces_only_its_own_earlier_file(tmp_path):
    target = tmp_path / "forecasts.parquet"
    (tmp_path / "other.csv").write_text("the user's")
    for text in ("first", "second"):
        with staged_file(target) as path:
            path.write_text(text)
    assert target.read_text() == "second"
    assert (tmp_path / "other.csv").read_text() == "the user's"
    users = tmp_path / "theirs.parquet"
    users.write_text("the user's")
    with (pytest.raises(InputError, match=r"theirs\.parquet: a file salesfusion did not write"),
          staged_file(users) as path):
        path.write_text("ours")
    assert users.read_text() == "the user's"


def test_a_failed_block_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="boom"), staged_file(tmp_path / "out.parquet") as path:
        path.write_text("half")
        raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []


def test_staging_left_by_a_killed_run_is_removed_by_the_next(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    abandoned = tmp_path / f".run{STAGING}{dead}-abc123"
    live = tmp_path / f".run{STAGING}{os.getpid()}-def456"  # a run still writing
    _write(abandoned, {"metrics.csv": "half"})
    _write(live, {"metrics.csv": "half"})
    with staged_run(tmp_path / "run") as staging:
        _write(staging, {"metrics.csv": "a"})
    assert not abandoned.exists() and live.exists()


def test_cli_data_build_leaves_a_partitioned_dataset_at_out_alone(tmp_path):
    spec = make_shop(tmp_path, covariates=False)
    dataset = tmp_path / "d" / "panel.parquet"
    _write(dataset, {"part-0.parquet": "the user's partition"})
    result = CliRunner().invoke(app, ["data", "build", str(spec), "--out", str(dataset)])
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "a folder salesfusion did not write" in errors[0]
    assert (dataset / "part-0.parquet").read_text() == "the user's partition"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["panel.parquet"]
    again = CliRunner().invoke(app, ["data", "build", str(spec), "--out",
                                     str(tmp_path / "d" / "built.parquet")])
    assert again.exit_code == 0, again.output


def test_cli_unwritable_out_is_one_line(tmp_path):
    spec = make_shop(tmp_path, covariates=False)
    result = CliRunner().invoke(app, ["data", "build", str(spec), "--out", "/proc/x/p.parquet"])
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: /proc/x/p.parquet: cannot write the output there (No such file or "
                      "directory)"]
    assert "Traceback" not in result.output
