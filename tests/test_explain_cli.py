"""``salesfusion explain`` end to end on a small synthetic shop: a LightGBM, a small neural and a
statistical model, saved and explained; the tables, summary and offline report it writes, and
the bad inputs it refuses without leaving anything behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.datasets.synthetic import synthetic
from salesfusion.models.registry import create_model, model_class

runner = CliRunner()
HORIZON = 4
ERROR_COLUMNS = ["model", "segment", "wape", "bias", "mae", "n_series", "n_rows",
                 "actual_total"]
SHARE_COLUMNS = ["group", "share", "share_lo", "share_hi", "n"]
SECTIONS = ("Model and data", "Segments", "Holdout errors by segment", "What the model leans on",
            "KOL / live-stream response", "Demand cycles", "Notes")


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> tuple[Path, Path]:
    """The shop's spec and a folder of saved models fitted on all of it."""
    root = tmp_path_factory.mktemp("explain")
    dataset = synthetic(root / "shop", n_items=24, n_weeks=60, image_size=16,
                        events_per_market=30, seed=0)
    panel = dataset.panel()
    models = root / "models"
    create_model("lightgbm", horizon=HORIZON, max_rounds=40, threads=1).fit(panel).save(
        models / "lightgbm")
    # A small TFT (selection weights, attention) on the items' attributes alone: a content
    # modality for the inverted U without a text or image encoder.
    create_model("tft_multimodal", horizon=HORIZON, **model_class("tft_multimodal").test_params(),
                 modalities=["static"]).fit(panel).save(models / "tft")
    create_model("naive").fit(panel).save(models / "naive")
    return root / "shop" / "spec.yaml", models


def _explain(spec: Path, model: Path, out: Path, *options: str):
    return runner.invoke(app, ["explain", "--model", str(model), "--spec", str(spec),
                               "--out", str(out), *options])


def _read(out: Path, name: str) -> pl.DataFrame:
    parquet = pl.read_parquet(out / f"{name}.parquet")
    assert pl.read_csv(out / f"{name}.csv").height == parquet.height
    return parquet


def _check_common(out: Path, segments: set[str]) -> tuple[dict, str]:
    """What every run writes: summary with provenance, tables listed = tables on disk, the
    holdout, the cycles, and a self-contained report holding each section."""
    summary = json.loads((out / "summary.json").read_text())
    assert {"commit", "date_utc", "threads", "versions"} <= set(summary["provenance"])
    for files in summary["tables"].values():
        assert all((out / f).is_file() for f in files)
    written = {p.name for p in out.glob("*.parquet")}
    assert written == {f for files in summary["tables"].values() for f in files
                       if f.endswith(".parquet")}
    errors = _read(out, "errors_by_segment")
    assert errors.columns[:len(ERROR_COLUMNS)] == ERROR_COLUMNS
    assert set(errors["segment"]) == segments
    by_step = _read(out, "errors_by_segment_step")
    assert sorted(by_step["step"].unique()) == list(range(1, HORIZON + 1))
    forecasts = _read(out, "forecasts")
    assert forecasts["origin"].n_unique() == 1 and forecasts["step"].max() == HORIZON
    # The errors are those of the forecasts table (one segment recomputed by hand).
    name = sorted(segments)[0]
    rows = forecasts.filter(pl.col("segment") == name)
    wape = 100 * (rows["y_true"] - rows["y_pred"]).abs().sum() / rows["y_true"].abs().sum()
    assert errors.filter(pl.col("segment") == name)["wape"][0] == pytest.approx(wape)
    assert set(_read(out, "cycle_periods")["segment"]) == segments
    report = (out / "report.html").read_text()
    for section in SECTIONS:
        assert f">{section}<" in report, section
    assert 'src="http' not in report and "src='http" not in report
    assert report.count("plotly.js v") == 1  # the library inline, once
    # Numbers shown come from the written tables.
    assert f"{errors['wape'][0]:,.3f}" in report
    return summary, report


def test_lightgbm_by_declared_segment(shop, tmp_path):
    spec, models = shop
    out = tmp_path / "out"
    result = _explain(spec, models / "lightgbm", out, "--segment", "maturity")
    assert result.exit_code == 0, result.output
    assert "Permutation importance: done in" in result.stderr  # a progress line per step
    summary, report = _check_common(out, {"mature", "emerging"})
    assert summary["explanations"]["method"] == "permutation_importance"
    importance = _read(out, "importance")
    assert importance.columns == ["group", "features", "wape", "wape_permuted", "increase",
                                  "increase_sd"]
    assert {"history", "events"} <= set(importance["group"])
    assert set(_read(out, "segments")["segment"]) == {"mature", "emerging"}
    study = _read(out, "event_response_summary")
    assert set(study["segment"]) == {"mature", "emerging"} and (study["events"] > 0).all()
    # LightGBM reads the events: its counterfactual response, one lag per step after lag 0.
    response = _read(out, "model_response_curves")
    assert sorted(response["lag"].unique()) == list(range(HORIZON))
    assert summary["kol"] == {"data": True, "model": True}
    assert "WAPE increase when an input group is permuted" in report
    assert not (out / "attributions.parquet").exists()


def test_neural_model_attributions_by_learned_segment(shop, tmp_path):
    spec, models = shop
    out = tmp_path / "out"
    result = _explain(spec, models / "tft", out, "--segment", "learned", "--origins", "2",
                      "--max-windows", "40")
    assert result.exit_code == 0, result.output
    segments = set(_read(out, "segments")["segment"])
    assert all(name.startswith("segment_") for name in segments)
    summary, report = _check_common(out, segments)
    assert summary["segments"]["stability"] is not None
    explained = summary["explanations"]
    assert explained["method"] == "integrated_gradients" and len(explained["origins"]) == 2
    attributions = _read(out, "attributions")
    assert attributions.columns[:9] == ["item_id", "market", "origin", "step", "timestamp",
                                        "age", "group", "variable", "attribution"]
    assert attributions["origin"].n_unique() == 2
    assert attributions.select("item_id", "market", "origin").n_unique() <= 40
    assert {"history", "static"} <= set(attributions["group"])
    assert set(attributions["segment"]) <= segments
    for name, by in (("shares_by_step", ["step"]), ("shares_by_age", ["age"]),
                     ("shares_by_time", ["timestamp"]), ("shares_by_segment", ["segment"]),
                     ("shares_by_segment_age", ["segment", "age"]),
                     ("shares_by_segment_time", ["segment", "timestamp"])):
        shares = _read(out, name)
        assert shares.columns == [*by, *SHARE_COLUMNS]
        totals = shares.group_by(by).agg(pl.col("share").sum())["share"]
        assert ((totals - 1).abs() < 1e-9).all(), name
    assert _read(out, "inverted_u_curve").columns == ["x", "share", "lo", "hi"]
    assert explained["inverted_u"]["verdict"] in report
    weights = _read(out, "selection_weights")
    assert set(weights["kind"]) == {"static", "history", "future"}
    # Softmax weights per window (the history's: 0 for a launch window, nothing observed).
    sums = (weights.filter(pl.col("kind") != "history")
            .group_by("item_id", "market", "origin", "kind").agg(pl.col("weight").sum()))
    assert ((sums["weight"] - 1).abs() < 1e-4).all()
    assert explained["attention"] == ["attention/temporal.npy"]
    assert np.load(out / "attention" / "temporal.npy").shape[1] == HORIZON
    for title in ("Modality share by step", "Modality share by timestamp",
                  "Modality share over the life cycle", "Modality share by segment",
                  "Mean selection weight per variable", "Attention map: temporal"):
        assert title in report


def test_statistical_model_is_noted_not_explained(shop, tmp_path):
    spec, models = shop
    out = tmp_path / "out"
    result = _explain(spec, models / "naive", out, "--no-refit")
    assert result.exit_code == 0, result.output
    summary, report = _check_common(out, {"UK", "DE", "BR", "TH"})
    assert summary["explanations"] == {"method": None}
    notes = " ".join(n["note"] for n in summary["notes"])
    assert "no explanation method" in notes and "--no-refit" in notes
    assert "does not read events" in notes
    assert "no explanation method" in report
    assert not (out / "importance.parquet").exists()
    assert not (out / "model_response_curves.parquet").exists()
    # A folder salesfusion wrote may be written again.
    again = _explain(spec, models / "naive", out, "--no-refit")
    assert again.exit_code == 0, again.output


def _one_error(result) -> str:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    return errors[0]


def test_bad_model_folder_and_bad_segment_leave_nothing(shop, tmp_path):
    spec, models = shop
    tampered = tmp_path / "tampered"
    shutil.copytree(models / "naive", tampered)
    manifest = json.loads((tampered / "manifest.json").read_text())
    manifest["params"] = {"horizon": 99}
    (tampered / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "out"
    assert "checksum" in _one_error(_explain(spec, tampered, out))
    assert "not a saved salesfusion model" in _one_error(_explain(spec, tmp_path / "none", out))
    assert "'region'" in _one_error(_explain(spec, models / "naive", out, "--segment",
                                             "region"))
    assert "frequency" in _one_error(_explain(spec, models / "naive", out, "--freq", "M"))
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["tampered"]


def test_foreign_output_folder_is_refused_and_untouched(shop, tmp_path):
    spec, models = shop
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert "did not write" in _one_error(_explain(spec, models / "naive", out))
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left
