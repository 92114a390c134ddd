"""Folders of Parquet files as spec input (lazy, projected) and partitioned forecast output."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.cli.output import RECORD, staged_dataset
from salesfusion.data.io import read_raw
from salesfusion.data.panel import build_panel
from salesfusion.data.partitioned import (
    MANIFEST,
    scan_parquet_folder,
    series_bucket,
    write_dataset,
)
from salesfusion.data.spec import load_spec
from salesfusion.data.validate import load_tables
from salesfusion.errors import InputError
from tests.conftest import edit_spec, make_shop

runner = CliRunner()
SERIES = ["item_id", "market"]


def _shop(folder: Path) -> Path:
    return make_shop(folder, n_items=6, weeks=16, covariates=False)


def _split_sales(spec: Path, folder: str = "sales", buckets: int | None = None) -> Path:
    """The shop's sales.csv as ``<folder>/country=<m>[/bucket=<k>]/part-0.parquet`` without the
    country column (it lives in the folder names only), and the spec pointing at the folder."""
    sales = pl.read_csv(spec.parent / "sales.csv", infer_schema=False).with_columns(
        pl.col("qty").cast(pl.Int64), pl.col("unit_price").cast(pl.Float64))
    keys = ["country"]
    if buckets:
        width = len(str(buckets - 1))
        sales = sales.with_columns(series_bucket(sales["sku"], buckets).cast(pl.Utf8)
                                   .str.zfill(width).alias("bucket"))
        keys.append("bucket")
    for values, part in sales.partition_by(keys, as_dict=True).items():
        where = spec.parent / folder / "/".join(f"{k}={v}" for k, v in zip(keys, values,
                                                                           strict=True))
        where.mkdir(parents=True)
        part.drop(keys).write_parquet(where / "part-0.parquet")
    edit_spec(spec, **{"sales.path": folder})
    return spec.parent / folder


def _panel(spec: Path):
    return build_panel(load_tables(load_spec(spec)))


def _same_rows(left: pl.DataFrame, right: pl.DataFrame) -> None:
    keys = [c for c in ("model", "window", "item_id", "market", "timestamp") if c in left.columns]
    assert_frame_equal(left.sort(keys), right.select(left.columns).sort(keys))


def test_series_bucket_is_a_fixed_stable_hash():
    ids = pl.Series(["P001", "P002", "P001", None, "sku-ÄÖ"])
    # Fixed values: blake2b(digest_size=8) of the UTF-8 id, big-endian, modulo the bucket count
    # (Python's hash() would differ between processes).
    assert series_bucket(ids, 64).to_list() == [15, 4, 15, None, 53]
    assert series_bucket(ids, 1000).to_list()[:2] == [903, 932]
    with pytest.raises(ValueError, match="at least 1"):
        series_bucket(ids, 0)


@pytest.mark.parametrize("buckets", [None, 8])
def test_hive_partitioned_sales_build_the_same_panel_as_the_single_file(tmp_path, buckets):
    spec = _shop(tmp_path)
    single = _panel(spec)
    folder = _split_sales(spec, buckets=buckets)
    parted = _panel(spec)
    assert parted.log == single.log
    assert_frame_equal(parted.data, single.data)
    raw = read_raw(folder, "parquet")
    # Partition values are text: "bucket=07" stays "07", as a CSV cell would.
    assert raw["country"].dtype == pl.Utf8 and set(raw["country"]) == {"GB", "DE"}
    if buckets:
        assert raw["bucket"].dtype == pl.Utf8 and raw["bucket"].str.len_chars().min() == 1
        assert raw.filter(pl.col("sku") == "P001")["bucket"].unique().to_list() == ["7"]


def test_folder_read_projects_onto_the_asked_columns(tmp_path):
    spec = _shop(tmp_path)
    folder = _split_sales(spec)
    # A wide extra column whose type differs between the parts: reading it would be refused.
    for number, part in enumerate(sorted(folder.rglob("*.parquet"))):
        frame = pl.read_parquet(part)
        wide = pl.lit("x" * 200) if number == 0 else pl.lit(7)
        frame.with_columns(wide.alias("blob")).write_parquet(part)
    columns = load_spec(spec).sales.source_columns()
    assert sorted(columns) == ["country", "invoice", "qty", "sku", "unit_price", "when"]
    projected = read_raw(folder, "parquet", columns=columns)
    assert projected.columns == columns and projected.height > 0
    plan = scan_parquet_folder(folder, columns).select(columns).explain()
    assert f"PROJECT {len(columns)}/" in plan
    with pytest.raises(InputError, match=r"country=.*part-0\.parquet: column 'blob' is Int32"):
        read_raw(folder, "parquet")
    # A missing column: one row of every column, for the caller's message (role and columns).
    missing = read_raw(folder, "parquet", columns=[*columns, "nope"])
    assert missing.height == 1 and "blob" in missing.columns


def test_spec_load_does_not_read_unmapped_columns(tmp_path):
    spec = _shop(tmp_path)
    folder = _split_sales(spec)
    for number, part in enumerate(sorted(folder.rglob("*.parquet"))):
        wide = pl.lit("x") if number == 0 else pl.lit(7)
        pl.read_parquet(part).with_columns(wide.alias("blob")).write_parquet(part)
    assert _panel(spec).n_series == 12


def _bad_empty(folder: Path) -> Path:
    for part in folder.rglob("*.parquet"):
        part.unlink()
    return folder


def _bad_stray_csv(folder: Path) -> Path:
    (folder / "country=GB" / "notes.csv").write_text("a,b\n")
    return folder / "country=GB" / "notes.csv"


def _bad_schema(folder: Path) -> Path:
    part = folder / "country=GB" / "part-0.parquet"
    pl.read_parquet(part).with_columns(pl.col("qty").cast(pl.Utf8)).write_parquet(part)
    return part


def _bad_bytes(folder: Path) -> Path:
    (folder / "country=GB" / "part-0.parquet").write_bytes(b"not parquet at all")
    return folder / "country=GB" / "part-0.parquet"


def _bad_depth(folder: Path) -> Path:
    nested = folder / "country=GB" / "year=2021"
    nested.mkdir()
    (folder / "country=GB" / "part-0.parquet").rename(nested / "part-0.parquet")
    return nested / "part-0.parquet"


@pytest.mark.parametrize(("breaker", "fragment"), [
    (_bad_empty, "holds no .parquet files"), (_bad_stray_csv, "not a Parquet file"),
    (_bad_schema, "column 'qty' is String in this part"), (_bad_bytes, "cannot read as parquet"),
    (_bad_depth, "partition folders ['country', 'year'] differ")])
def test_bad_parquet_folders_exit_2_naming_the_path(tmp_path, breaker, fragment):
    spec = _shop(tmp_path)
    named = breaker(_split_sales(spec))
    # Markers and hidden files are skipped, never refused.
    (tmp_path / "sales" / "_SUCCESS").write_text("")
    (tmp_path / "sales" / ".crc").write_text("")
    result = runner.invoke(app, ["data", "validate", str(spec)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(named) in errors[0] and fragment in errors[0], errors


def _check_dataset(out: Path, plain: pl.DataFrame) -> None:
    """``out/forecasts`` read as a hive dataset is ``plain``; each series is in one part, the
    part its bucket names; the manifest counts every part's rows."""
    read = pl.scan_parquet(out / "forecasts", hive_partitioning=True).collect()
    assert read["market"].dtype == pl.Utf8
    _same_rows(plain, read.drop("bucket"))
    assert (read["bucket"] == series_bucket(read["item_id"], 64)).all()
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["buckets"] == 64 and manifest["rows"] == plain.height
    assert "blake2b" in manifest["hash"]
    parts = sorted(p.relative_to(out / "forecasts").as_posix()
                   for p in (out / "forecasts").rglob("*.parquet"))
    assert sorted(manifest["partitions"]) == parts
    files = set()
    for relative, rows in manifest["partitions"].items():
        part = pl.read_parquet(out / "forecasts" / relative)
        assert part.height == rows
        files |= {(key, relative) for key in part.select(SERIES).unique().iter_rows()}
    assert len(files) == plain.select(SERIES).n_unique()  # one file per series


def test_backtest_partitioned_output_equals_the_parquet_output(tmp_path):
    spec = _shop(tmp_path)
    common = ["backtest", "--models", "naive,moving_average", "--spec", str(spec),
              "--horizon", "2", "--windows", "2"]
    plain = runner.invoke(app, [*common, "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    out = tmp_path / "parted"
    for _ in range(2):  # a rerun replaces its own dataset
        parted = runner.invoke(app, [*common, "--out", str(out), "--out-format", "partitioned"])
        assert parted.exit_code == 0, parted.output
    assert not (out / "forecasts.parquet").exists() and (out / "metrics.csv").is_file()
    _check_dataset(out, pl.read_parquet(tmp_path / "plain" / "forecasts.parquet"))
    assert "forecasts/ (partitioned)" in parted.output
    # The dashboard reads a partitioned run as it reads a plain one.
    from salesfusion.serving.dashboard_data import read_backtest

    keys = ["model", "window", "item_id", "market", "timestamp"]
    left = read_backtest(out).sort(keys)
    right = read_backtest(tmp_path / "plain").sort(keys)
    assert left.select(right.columns).equals(right)
    # Back to one file: the run folder's earlier dataset goes (runs never mix).
    again = runner.invoke(app, [*common, "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert not (out / "forecasts").exists() and not (out / MANIFEST).exists()


def test_dashboard_reads_a_rerun_partitioned_backtest_anew(tmp_path):
    """A rerun replaces the parts deep inside forecasts/ (the folder's own time may stay)."""
    from salesfusion.serving.dashboard_data import read_backtest

    spec, out = _shop(tmp_path), tmp_path / "parted"
    for model in ("naive", "moving_average"):
        result = runner.invoke(app, ["backtest", "--models", model, "--spec", str(spec),
                                     "--horizon", "2", "--windows", "1", "--out", str(out),
                                     "--out-format", "partitioned"])
        assert result.exit_code == 0, result.output
        assert read_backtest(out)["model"].unique().to_list() == [model]


def test_predict_partitioned_output_equals_the_parquet_output(tmp_path):
    spec = _shop(tmp_path)
    model = tmp_path / "model"
    trained = runner.invoke(app, ["train", "--preset", "naive", "--spec", str(spec),
                                  "--out", str(model)])
    assert trained.exit_code == 0, trained.output
    common = ["predict", "--model", str(model), "--spec", str(spec), "--horizon", "3"]
    plain = runner.invoke(app, [*common, "--out", str(tmp_path / "fc.parquet")])
    assert plain.exit_code == 0, plain.output
    out = tmp_path / "shared"
    out.mkdir()
    (out / "notes.txt").write_text("the user's")
    parted = runner.invoke(app, [*common, "--out", str(out), "--out-format", "partitioned"])
    assert parted.exit_code == 0, parted.output
    _check_dataset(out, pl.read_parquet(tmp_path / "fc.parquet"))
    assert (out / "notes.txt").read_text() == "the user's"
    for bad, fragment in ((["--out-format", "csv"], "--out-format 'csv'"),
                          (["--out-format", "partitioned"], "give --out FOLDER")):
        args = [*common, *bad] + (["--out", str(tmp_path / "x")] if "csv" in bad else
                                  ["--to", "postgresql://nowhere/db"])
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and fragment in result.stderr, result.output


def _forecasts(markets: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"item_id": ["P001", "P002"] * len(markets),
                         "market": [m for m in markets for _ in range(2)],
                         "y_pred": [1.0, 2.0] * len(markets)})


def test_a_dataset_rewrite_drops_stale_parts_and_refuses_foreign_ones(tmp_path):
    out = tmp_path / "out"
    with staged_dataset(out) as staging:
        write_dataset(_forecasts(["GB", "DE", "A/B"]), staging)
    assert (out / "forecasts" / "market=A%2FB").is_dir()
    with staged_dataset(out) as staging:
        write_dataset(_forecasts(["GB"]), staging)
    assert sorted(p.name for p in (out / "forecasts").iterdir()) == ["market=GB"]
    assert sorted(json.loads((out / RECORD).read_text())["files"]) == [
        MANIFEST, *sorted(f"forecasts/{p}" for p in
                          json.loads((out / MANIFEST).read_text())["partitions"])]
    planted = out / "forecasts" / "market=FR" / "bucket=01" / "part-0.parquet"
    planted.parent.mkdir(parents=True)
    _forecasts(["FR"]).write_parquet(planted)
    with pytest.raises(InputError, match=r"market=FR/bucket=01/part-0\.parquet: a file "
                                         r"salesfusion did not write"), \
            staged_dataset(out) as staging:
        write_dataset(_forecasts(["GB"]), staging)
    assert planted.is_file()
