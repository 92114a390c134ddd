"""The bad-input corpus, part 4 (issue 26, section 4 and the duplicate-key item of section 5):
inputs that used to end in a traceback. YAML nested 20,000 deep or holding a key twice, dates
at the ends of Python's datetime range, JSON holding a 10,000-digit integer or nested too
deeply, compressed bytes in CSV files, damaged embedding-cache parts, and exchange rates that
are not positive finite numbers. Every refused case: exit 2, one ``error:`` line naming the
cause, no traceback, nothing written; a damaged cache part is encoded again with a warning."""

from __future__ import annotations

import gzip
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.data.panel import build_panel
from salesfusion.data.spec import load_spec
from salesfusion.data.validate import load_tables
from salesfusion.data.yamlfile import read_mapping
from salesfusion.encoders.cache import EmbeddingCache
from salesfusion.encoders.registry import create_encoder
from salesfusion.errors import InputError
from salesfusion.experiments.cells import read_cell
from salesfusion.models.registry import create_model
from salesfusion.training.checkpoints import CHECKPOINT, RECORD, CheckpointFolder
from salesfusion.tuning.log import TrialLog
from tests.conftest import edit_spec, make_shop

runner = CliRunner()
DEEP_YAML = "[" * 20_000 + "]" * 20_000
DEEP_JSON = "[" * 100_000 + "]" * 100_000
HUGE_INT = "9" * 10_000


def _shop(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return make_shop(folder, n_items=4, weeks=10, covariates=False)


def _only_error(result) -> str:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.output and "╭" not in result.output, result.output
    return errors[0]


def _set(table: str, column: str, row: int, value: str) -> Callable[[Path], None]:
    """Data row ``row`` (1-based) of ``table`` gets ``value`` as text."""
    def make(spec: Path) -> None:
        path = spec.parent / table
        frame = pl.read_csv(path, infer_schema=False)
        frame.with_columns(pl.when(pl.int_range(pl.len()) == row - 1).then(pl.lit(value))
                           .otherwise(pl.col(column)).alias(column)).write_csv(path)
    return make


def _sales_parquet(spec: Path) -> None:
    """sales.csv as a typed sales.parquet whose row 3 is 9999-12-31."""
    when = pl.col("when").str.to_datetime()
    frame = pl.read_csv(spec.parent / "sales.csv", infer_schema=False).with_columns(
        pl.when(pl.int_range(pl.len()) == 2).then(pl.datetime(9999, 12, 31)).otherwise(when)
        .alias("when"))
    frame.write_parquet(spec.parent / "sales.parquet")
    edit_spec(spec, **{"sales.path": "sales.parquet"})


def _fx_parquet(spec: Path) -> None:
    frame = pl.read_csv(spec.parent / "fx.csv").with_columns(
        pl.when(pl.int_range(pl.len()) == 4).then(float("inf")).otherwise(pl.col("USD"))
        .alias("USD"))
    frame.write_parquet(spec.parent / "fx.parquet")
    edit_spec(spec, **{"fx.path": "fx.parquet"})


def _gzip_under_csv(spec: Path) -> None:
    path = spec.parent / "sales.csv"
    path.write_bytes(gzip.compress(path.read_bytes()))


def _zip_under_csv(spec: Path) -> None:
    path = spec.parent / "sales.csv"
    text = path.read_bytes()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("sales.csv", text)


def _gzip_named(spec: Path, content: Callable[[bytes], bytes]) -> None:
    plain = spec.parent / "sales.csv"
    (spec.parent / "sales.csv.gz").write_bytes(content(plain.read_bytes()))
    plain.unlink()
    edit_spec(spec, **{"sales.path": "sales.csv.gz"})


def _append(text: str) -> Callable[[Path], None]:
    return lambda spec: spec.write_text(spec.read_text() + text)


RANGE = "outside the supported range 1900-01-01 to 2200-12-31"
# (case, how the input is broken, fragments of the one error line) for `data build`
BUILD: list[tuple[str, Callable[[Path], None], list[str]]] = [
    ("spec_nested_20000_deep", _append(f"notes: {DEEP_YAML}\n"),
     ["spec.yaml", "nests more than 100 levels deep"]),
    ("spec_nested_mappings_20000_deep", _append("notes: " + "{a: " * 20_000 + "}" * 20_000
                                                + "\n"),
     ["spec.yaml", "nests more than 100 levels deep"]),
    ("sales_date_year_9999", _set("sales.csv", "when", 4, "9999-12-30T10:00:00"),
     ["sales.csv", "'when' (role timestamp)", RANGE, "data row 4 ('9999-12-30T10:00:00')"]),
    ("sales_date_year_0001", _set("sales.csv", "when", 2, "0001-01-01"),
     ["sales.csv", "'when'", RANGE, "data row 2 ('0001-01-01')"]),
    ("sales_parquet_datetime_9999", _sales_parquet,
     ["sales.parquet", "'when'", RANGE, "data row 3 ('9999-12-31 00:00:00.000000')"]),
    ("fx_date_year_9999", _set("fx.csv", "Date", 3, "9999-12-31"),
     ["fx.csv", "column 'Date'", RANGE, "data row 3 ('9999-12-31')"]),
    ("gzip_bytes_named_csv", _gzip_under_csv,
     ["sales.csv", "gzip-compressed", "rename it to sales.csv.gz"]),
    ("zip_bytes_named_csv", _zip_under_csv, ["sales.csv", "zip-compressed", "not CSV text"]),
    ("csv_gz_truncated", lambda s: _gzip_named(s, lambda b: gzip.compress(b)[:300]),
     ["sales.csv.gz", "cannot be decompressed", "truncated"]),
    ("csv_gz_not_gzip", lambda s: _gzip_named(s, lambda b: b),
     ["sales.csv.gz", "cannot be decompressed", "not gzip"]),
    ("fx_rate_inf", _set("fx.csv", "GBP", 5, "inf"),
     ["fx.csv", "positive finite", "data row 5 column 'GBP' ('inf')"]),
    ("fx_rate_nan", _set("fx.csv", "USD", 7, "NaN"),
     ["fx.csv", "positive finite", "data row 7 column 'USD' ('NaN')"]),
    ("fx_rate_zero", _set("fx.csv", "GBP", 1, "0"),
     ["fx.csv", "data row 1 column 'GBP' ('0')"]),
    ("fx_rate_negative", _set("fx.csv", "GBP", 9, "-0.8"),
     ["fx.csv", "data row 9 column 'GBP' ('-0.8')"]),
    ("fx_parquet_rate_inf", _fx_parquet,
     ["fx.parquet", "positive finite", "data row 5 column 'USD' ('inf')"]),
]


@pytest.mark.parametrize(("case", "breaker", "fragments"), BUILD, ids=[c[0] for c in BUILD])
def test_data_build_refuses_with_one_line(tmp_path, case, breaker, fragments):
    spec = _shop(tmp_path)
    breaker(spec)
    out = tmp_path / "out" / "panel.parquet"
    message = _only_error(runner.invoke(app, ["data", "build", str(spec), "--out", str(out)]))
    for fragment in fragments:
        assert fragment in message, message
    assert not out.parent.exists()


def _line_of(text: str, start: str, after: int = 0) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1)
                if n > after and line.startswith(start))


@pytest.mark.parametrize("nested", [False, True], ids=["top_level_freq", "sales_columns"])
def test_duplicate_key_names_both_lines(tmp_path, nested):
    spec = _shop(tmp_path)
    text = spec.read_text()
    if nested:  # a second 'qty' mapping inside sales.columns
        text = text.replace("    quantity: qty\n", "    quantity: qty\n    quantity: units\n")
        first = _line_of(text, "    quantity: qty")
        second, key = _line_of(text, "    quantity: units"), "quantity"
    else:
        text += "freq: D\n"
        first, second, key = _line_of(text, "freq: W"), len(text.splitlines()), "freq"
    spec.write_text(text)
    message = _only_error(runner.invoke(app, ["data", "validate", str(spec)]))
    assert f"{spec}: key '{key}' appears twice" in message, message
    assert f"(line {first} and line {second})" in message, message


def test_yaml_merge_keys_still_override(tmp_path):
    """Control: a '<<' merge that the mapping overrides is YAML's way to reuse a block, not a
    duplicate key."""
    path = tmp_path / "t.yaml"
    path.write_text("base: &b {a: 1, c: 2}\nx:\n  <<: *b\n  a: 3\n")
    assert read_mapping(path, "test") == {"base": {"a": 1, "c": 2}, "x": {"a": 3, "c": 2}}


def test_model_config_nested_20000_deep(tmp_path):
    spec = _shop(tmp_path)
    config = tmp_path / "cfg.yaml"
    config.write_text(f"model: naive\nparams: {{notes: {DEEP_YAML}}}\n")
    out = tmp_path / "model"
    message = _only_error(runner.invoke(app, ["train", "--spec", str(spec), "--config",
                                              str(config), "--out", str(out)]))
    assert "cfg.yaml: nests more than 100 levels deep" in message, message
    assert not out.exists()


def test_experiment_config_duplicate_key(tmp_path):
    _shop(tmp_path)
    config = tmp_path / "experiment.yaml"
    config.write_text("name: tiny\ndatasets: [{spec: spec.yaml}]\nname: other\n"
                      "models: [{name: naive}]\n")
    out = tmp_path / "exp"
    message = _only_error(runner.invoke(app, ["experiment", str(config), "--out", str(out)]))
    assert "experiment.yaml: key 'name' appears twice in one mapping (line 1 and line 3)" \
        in message, message
    assert not out.exists()


def test_valid_gzip_csv_and_tsv_read_as_the_plain_file(tmp_path):
    plain = _shop(tmp_path / "plain")
    expected = build_panel(load_tables(load_spec(plain))).data
    for name in ("sales.csv.gz", "sales.tsv.gz"):
        spec = _shop(tmp_path / name)
        text = (spec.parent / "sales.csv").read_text()
        if name.startswith("sales.tsv"):
            text = text.replace(",", "\t")
        (spec.parent / name).write_bytes(gzip.compress(text.encode()))
        (spec.parent / "sales.csv").unlink()
        edit_spec(spec, **{"sales.path": name})
        assert build_panel(load_tables(load_spec(spec))).data.equals(expected), name


def test_dates_at_the_range_ends_build(tmp_path):
    """The supported range is inclusive: 1900-01-01 and 2200-12-31 are dates like others."""
    spec = _shop(tmp_path)
    _set("fx.csv", "Date", 1, "1900-01-01")(spec)
    _set("fx.csv", "Date", 2, "2200-12-31")(spec)
    assert load_tables(load_spec(spec)).fx is not None


# --- JSON the program reads back ---------------------------------------------------------------

@pytest.fixture(scope="module")
def naive_model(tmp_path_factory) -> tuple[Path, Path]:
    """(spec, saved naive model folder), made once."""
    root = tmp_path_factory.mktemp("model")
    spec = _shop(root)
    create_model("naive").fit(build_panel(load_tables(load_spec(spec)))).save(root / "naive")
    return spec, root / "naive"


def test_manifest_with_a_10000_digit_integer(naive_model, tmp_path):
    """json.loads raises a plain ValueError (not JSONDecodeError) past 4,300 digits."""
    spec, saved = naive_model
    folder = tmp_path / "naive"
    shutil.copytree(saved, folder)
    manifest = folder / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"params": {',
                                                     f'"params": {{"seed": {HUGE_INT}, ', 1))
    out = tmp_path / "f.parquet"
    message = _only_error(runner.invoke(app, ["predict", "--model", str(folder), "--spec",
                                              str(spec), "--out", str(out)]))
    assert f"{manifest}: cannot be read as JSON" in message and "10000 digits" in message
    assert "set_int_max_str_digits" not in message, message
    assert not out.exists()


def test_experiment_record_not_json(tmp_path):
    _shop(tmp_path)
    config = tmp_path / "experiment.yaml"
    config.write_text("name: tiny\ndatasets: [{spec: spec.yaml}]\nmodels: [{name: naive}]\n")
    out = tmp_path / "exp"
    out.mkdir()
    (out / "experiment.json").write_text(f'{{"config": {{"name": {HUGE_INT}}}}}')
    message = _only_error(runner.invoke(app, ["experiment", str(config), "--out", str(out)]))
    assert "experiment.json: cannot be read as JSON" in message, message
    assert sorted(p.name for p in out.iterdir()) == ["experiment.json"]


def test_search_log_checkpoint_and_cell_records_nested_too_deep(tmp_path):
    """RecursionError is not a ValueError: these readers caught only the latter."""
    content = DEEP_JSON
    log = TrialLog(tmp_path / "search")
    log.create({"seed": 1}, {})
    log.definition_path.write_text(content)
    with pytest.raises(InputError, match="not a salesfusion search record"):
        log.read_definition()
    log.trials_path.write_text(content + "\n")
    with pytest.raises(InputError, match=r"line 1: not a trial record"):
        log.records()
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / CHECKPOINT).write_bytes(b"weights")
    (folder / RECORD).write_text(content)
    with pytest.raises(InputError, match=f"{RECORD} is not valid JSON"):
        CheckpointFolder(folder, {}, "data").load()
    (tmp_path / "cell").mkdir()
    (tmp_path / "cell" / "cell.json").write_text(content)
    assert read_cell(tmp_path / "cell") is None  # an unreadable cell is run again


# --- the embedding cache --------------------------------------------------------------------

def _one_part(cache: Path) -> Path:
    parts = list(cache.rglob("part-*.parquet"))
    assert len(parts) == 1, parts
    return parts[0]


def _junk(part: Path) -> None:
    part.write_bytes(b"not parquet at all")


def _wrong_length(part: Path) -> None:
    keys = pl.read_parquet(part)["key"].to_list()
    pl.DataFrame({"key": keys, "vector": list(np.ones((len(keys), 3), np.float32))}
                 ).write_parquet(part)


def _nan(part: Path) -> None:
    frame = pl.read_parquet(part)
    vectors = np.asarray(frame["vector"].to_list(), np.float32)
    vectors[0, 0] = np.nan
    frame.with_columns(pl.Series("vector", list(vectors))).write_parquet(part)


def _truncated(part: Path) -> None:
    part.write_bytes(part.read_bytes()[:-30])


DAMAGE = [("junk", _junk, "cannot be read as Parquet"), ("truncated", _truncated, "cannot be read"),
          ("wrong_length", _wrong_length, "vectors of length [3]"),
          ("nan", _nan, "NaN or infinite")]


@pytest.mark.parametrize(("case", "damage", "reason"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_damaged_cache_part_is_encoded_again(tmp_path, case, damage, reason):
    spec = _shop(tmp_path)
    cache = tmp_path / "cache"
    args = ["encode", "--spec", str(spec), "--modality", "text", "--encoder", "tfidf",
            "--cache", str(cache)]
    assert runner.invoke(app, args).exit_code == 0
    part = _one_part(cache)
    damage(part)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "Traceback" not in again.output
    warnings = [line for line in again.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(part) in warnings[0] and reason in warnings[0], warnings
    assert "0 cache hits" in again.stderr
    third = runner.invoke(app, args)  # the part set aside, its vectors stored anew
    assert third.exit_code == 0 and str(cache) not in third.stderr, third.stderr
    assert "5 cache hits" in third.stderr, third.stderr


def test_damaged_part_gives_the_vectors_of_a_fresh_encoding(tmp_path):
    texts = ["red mug", "blue lamp", "green chair", "red lamp"]
    encoder = create_encoder("tfidf").fit(texts)
    cache = EmbeddingCache(tmp_path)
    encoder.encode(texts, cache=cache)
    _nan(_one_part(tmp_path))
    cached = encoder.encode(texts, cache=cache)
    fresh = encoder.encode(texts)
    assert np.isfinite(cached.vectors).all() and cache.stats.refused_parts == 1
    np.testing.assert_array_equal(cached.vectors, fresh.vectors)


def test_cache_refuses_to_store_nan_vectors(tmp_path):
    cache = EmbeddingCache(tmp_path)
    vectors = np.ones((2, 4), np.float32)
    vectors[1, 2] = np.inf
    with pytest.raises(InputError, match=r"1 vector\(s\) holding NaN"):
        cache.put("enc/v1", ["a" * 64, "b" * 64], vectors)
    assert not list(tmp_path.rglob("*.parquet"))


def test_cache_never_serves_vectors_of_another_length(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put("enc/v1", ["a"], np.ones((1, 4), np.float32))
    assert cache.get("enc/v1", ["a"], width=8) == {}
    assert cache.stats.refused_parts == 1 and cache.keys("enc/v1") == set()
