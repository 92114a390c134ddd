"""The CLI's happy paths and output contract."""

import json
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from salesfusion.cli import DEMO_MODELS, app

runner = CliRunner()


def test_backtest_writes_the_output_contract(shop_spec, tmp_path):
    out = tmp_path / "bt"
    result = runner.invoke(app, ["backtest", "--spec", str(shop_spec), "--models",
                                 "naive,moving_average,ets", "--horizon", "3", "--windows", "2",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = pl.read_csv(out / "metrics.csv", schema_overrides={"window": pl.Utf8})
    assert metrics.columns == ["model", "window", "segment", "metric", "value"]
    assert set(metrics["window"].unique()) == {"0", "1", "all"}
    assert set(metrics["segment"].unique()) == {"all", "GB", "DE"}
    assert set(metrics["model"].unique()) == {"naive", "moving_average", "ets"}
    forecasts = pl.read_parquet(out / "forecasts.parquet")
    assert forecasts.columns[:7] == ["item_id", "market", "timestamp", "model", "window",
                                     "y_true", "y_pred"]
    assert "q0.1" in forecasts.columns and "q0.9" in forecasts.columns
    report = (out / "report.html").read_text()
    assert "plotly" in report.lower() and "moving_average" in report
    assert '<script src="http' not in report  # self-contained: plotly.js is inline


def test_metrics_can_be_recomputed_from_the_forecasts_file(shop_spec, tmp_path):
    from salesfusion.evaluation.backtest import metrics_table

    out = tmp_path / "bt"
    runner.invoke(app, ["backtest", "--spec", str(shop_spec), "--models", "naive",
                        "--horizon", "2", "--windows", "2", "--out", str(out)])
    recomputed = metrics_table(pl.read_parquet(out / "forecasts.parquet"))
    written = pl.read_csv(out / "metrics.csv", schema_overrides={"window": pl.Utf8})
    joined = written.join(recomputed, on=["model", "window", "segment", "metric"])
    assert joined.height == written.height
    assert ((joined["value"] - joined["value_right"]).abs() < 1e-4).all()


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".duckdb"])
def test_data_build_and_validate(shop_spec, tmp_path, suffix):
    result = runner.invoke(app, ["data", "validate", str(shop_spec)])
    assert result.exit_code == 0 and "OK" in result.stderr
    out = tmp_path / "panels" / f"panel{suffix}"
    result = runner.invoke(app, ["data", "build", str(shop_spec), "--freq", "M", "--out",
                                 str(out)])
    assert result.exit_code == 0, result.output
    if suffix == ".duckdb":
        with duckdb.connect(str(out), read_only=True) as con:
            frame = pl.from_arrow(con.sql("SELECT * FROM panel").to_arrow_table())
    else:
        frame = pl.read_parquet(out) if suffix == ".parquet" else pl.read_csv(out)
    assert {"item_id", "market", "timestamp", "y", "price_local"} <= set(frame.columns)


def test_duckdb_source_table(shop_spec, tmp_path):
    """A spec may read its sales from a table inside a DuckDB file."""
    import yaml

    db = tmp_path / "shop.duckdb"
    with duckdb.connect(str(db)) as con:
        source = shop_spec.parent / "sales.csv"
        con.execute(f"CREATE TABLE tx AS SELECT * FROM read_csv_auto('{source}')")
    spec = yaml.safe_load(shop_spec.read_text())
    spec["sales"].update(path=str(db), table="tx")
    path = tmp_path / "duck.yaml"
    path.write_text(yaml.safe_dump(spec))
    csv_panel = runner.invoke(app, ["data", "build", str(shop_spec), "--out",
                                    str(tmp_path / "a.parquet")])
    duck_panel = runner.invoke(app, ["data", "build", str(path), "--out",
                                     str(tmp_path / "b.parquet")])
    assert csv_panel.exit_code == 0 and duck_panel.exit_code == 0, duck_panel.output
    a = pl.read_parquet(tmp_path / "a.parquet")
    b = pl.read_parquet(tmp_path / "b.parquet")
    assert a.equals(b)


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    """`salesfusion demo` on the bundled data: every baseline on OR-weekly, with the known
    reference points (last value near 87% WAPE, 4-week moving average near 70%)."""
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "salesfusion.cli", "demo", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = pl.read_csv(out / "metrics.csv", schema_overrides={"window": pl.Utf8})
    assert set(metrics["model"].unique()) == set(DEMO_MODELS)
    overall = metrics.filter((pl.col("window") == "all") & (pl.col("segment") == "all")
                             & (pl.col("metric") == "WAPE"))
    wape = dict(zip(overall["model"], overall["value"], strict=True))
    assert wape["naive"] == pytest.approx(86.8, abs=0.5)
    assert wape["moving_average"] == pytest.approx(69.9, abs=0.5)
    overall = metrics.filter((pl.col("window") == "all") & (pl.col("segment") == "all"))
    score = {(m, k): v for m, k, v in overall.select("model", "metric", "value").iter_rows()}
    # The learned models forecast the mean: their totals stay near demand (the median lightgbm
    # forecast 36 % less than was sold) and their squared errors beat the last value's.
    # (Measured: lightgbm -4.1 %, multimodal -12.5 %; as medians they were -36 % and -32 %.)
    for model, most in (("lightgbm", 10), ("multimodal", 20)):
        assert abs(score[model, "bias_pct"]) < most, (model, score[model, "bias_pct"])
        assert score[model, "RMSSE"] < score["naive", "RMSSE"]
    assert set(metrics["segment"].unique()) == {"all", "United Kingdom", "France", "Germany",
                                                "EIRE", "Belgium"}
    forecasts = pl.read_parquet(out / "forecasts.parquet")
    assert forecasts.filter(pl.col("model") == "naive").height == 1645 * 12
    assert Path(out / "report.html").stat().st_size > 100_000


def test_encode_reports_throughput_and_cache_hits(tmp_path):
    from salesfusion.datasets.synthetic import generate

    generate(tmp_path / "shop", n_items=40, n_weeks=6, seed=2)
    (tmp_path / "shop" / "images" / "S00003.png").write_bytes(b"broken")
    spec = str(tmp_path / "shop" / "spec.yaml")
    args = ["encode", "--spec", spec, "--modality", "image", "--encoder", "color_texture",
            "--cache", str(tmp_path / "cache")]
    first = runner.invoke(app, [*args, "--out", str(tmp_path / "out" / "img.parquet")])
    assert first.exit_code == 0, first.output
    assert "0 cache hits" in first.stderr and "1 masked" in first.stderr
    assert "S00003" in first.stderr  # the masked item is listed with its reason
    second = runner.invoke(app, args)
    assert "39 cache hits" in second.stderr
    written = pl.read_parquet(tmp_path / "out" / "img.parquet")
    assert written.height == 40 and written["mask"].sum() == 39
    assert "unreadable" in written.filter(~pl.col("mask"))["problem"][0]
    wrong = runner.invoke(app, ["encode", "--spec", spec, "--modality", "text", "--encoder",
                                "color_texture"])
    assert wrong.exit_code == 2 and "encodes image, not text" in wrong.stderr


def test_train_then_predict_with_cold_start(shop_spec, tmp_path, monkeypatch):
    """A preset configured in a YAML file trains on a spec with events and exogenous columns,
    saves, and forecasts every series plus the never-sold items of the items table."""
    monkeypatch.setattr("salesfusion.models.multimodal.fitting.DEFAULT_CACHE", tmp_path / "cache")
    config = tmp_path / "memf.yaml"
    config.write_text("model: memf\nparams: {epochs: 1, lookback: 8, hidden: 16, "
                      "fusion_dim: 16, horizon: 3}\n")
    trained = runner.invoke(app, ["train", "--config", str(config), "--spec", str(shop_spec),
                                  "--out", str(tmp_path / "model")])
    assert trained.exit_code == 0, trained.output
    assert (tmp_path / "model" / "weights.safetensors").is_file()
    assert (tmp_path / "model" / "history_events.parquet").is_file()
    out = tmp_path / "fc" / "forecasts.parquet"
    predicted = runner.invoke(app, ["predict", "--model", str(tmp_path / "model"), "--spec",
                                    str(shop_spec), "--horizon", "3", "--cold-start",
                                    "--out", str(out)])
    assert predicted.exit_code == 0, predicted.output
    forecast = pl.read_parquet(out)
    assert forecast["model"].unique().to_list() == ["memf"]
    new = forecast.filter(pl.col("item_id") == "P012")  # in the items table, never sold
    assert sorted(new["market"].unique()) == ["DE", "GB"] and new.height == 6
    assert forecast["y_pred"].is_finite().all()
    assert forecast.height == 3 * (forecast.select("item_id", "market").n_unique())
    too_far = runner.invoke(app, ["predict", "--model", str(tmp_path / "model"), "--spec",
                                  str(shop_spec), "--horizon", "5", "--out",
                                  str(tmp_path / "x" / "f.parquet")])
    assert too_far.exit_code == 2 and "horizons up to 3" in too_far.output
    assert not (tmp_path / "x" / "f.parquet").exists()


def test_encoder_loading_prints_no_third_party_output(shop_spec, tmp_path):
    """Output to a pipe, as in a log file: loading MiniLM shows no transformers / tqdm bars or
    Python warnings, and no log line is hard-wrapped at the console width."""
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "60"}
    done = subprocess.run([sys.executable, "-m", "salesfusion.cli", "encode", "--spec",
                           str(shop_spec), "--modality", "text", "--encoder", "minilm",
                           "--cache", str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    for noise in ("Loading", "Batches", "it/s", "%|", "Warning", "\r"):
        assert not [line for line in lines if noise in line], done.stderr
    # Both lines are longer than 60 columns.
    assert any(re.fullmatch(r"minilm: 13 inputs \(13 unique contents\), 0 cache hits, "
                            r"0 masked, .* inputs/s", line) for line in lines), done.stderr
    unsold = [line for line in lines if "P012" in line]  # the item without sales
    assert unsold and all(line.lstrip().startswith("warning:") for line in unsold)


def test_ets_on_short_series_falls_back_per_series_and_keeps_the_others(tmp_path):
    """statsforecast's ETS refuses series this short ("tiny datasets"): they are forecast by the
    fallback, counted in the log and notes, and every model's results are written."""
    from tests.conftest import make_shop

    spec = make_shop(tmp_path, weeks=8)
    out = tmp_path / "out"
    result = runner.invoke(app, ["backtest", "--spec", str(spec), "--models", "naive,ets",
                                 "--horizon", "2", "--windows", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "series too short for AutoETS" in result.output
    metrics = pl.read_csv(out / "metrics.csv", infer_schema=False)
    assert set(metrics["model"]) == {"naive", "ets"}
    notes = json.loads((out / "notes.json").read_text())
    assert any("too short for AutoETS" in str(note) for note in notes["ets"])


def test_one_model_failing_keeps_the_others_results(tmp_path):
    """With 3 windows of 2 weeks on an 8-week shop, the first training panel has 2 periods:
    enough for naive, too few for lstm. naive's results are written, the failure is in
    failures.json, the report and stderr, exit code 1; alone, lstm's failure is exit code 2."""
    from tests.conftest import make_shop

    spec = make_shop(tmp_path, weeks=8)
    out = tmp_path / "out"
    args = ["--horizon", "2", "--windows", "3"]
    result = runner.invoke(app, ["backtest", "--spec", str(spec), "--models", "naive,lstm",
                                 *args, "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "error: model 'lstm' failed: InputError: model 'lstm' needs at least" in result.output
    metrics = pl.read_csv(out / "metrics.csv", infer_schema=False)
    assert set(metrics["model"]) == {"naive"}
    assert "needs at least" in json.loads((out / "failures.json").read_text())["lstm"]
    assert "failed, no results" in (out / "report.html").read_text()
    alone = runner.invoke(app, ["backtest", "--spec", str(spec), "--models", "lstm", *args,
                                "--out", str(tmp_path / "alone")])
    assert alone.exit_code == 2 and "every model failed; lstm" in alone.output
    assert not (tmp_path / "alone").exists()
