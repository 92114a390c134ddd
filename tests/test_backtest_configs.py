"""``backtest --models`` takes model config and preset files beside registered names: each
config is a model labelled by its file name, so two settings of one model compare side by side,
and a bad file stops the command before any data is read, naming the file."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from salesfusion.cli import app


def _config(folder: Path, name: str, model: str, **params: object) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"model": model, "params": params}))
    return path


def _backtest(models: str, spec: Path, out: Path):
    return CliRunner().invoke(app, ["backtest", "--spec", str(spec), "--models", models,
                                    "--horizon", "2", "--windows", "2", "--out", str(out)])


def test_configs_of_one_model_are_backtested_side_by_side(shop_spec, tmp_path):
    l2 = _config(tmp_path, "l2", "lightgbm", objective="l2", max_rounds=20)
    tweedie = _config(tmp_path, "tweedie", "lightgbm", max_rounds=20)
    result = _backtest(f"naive,{l2},{tweedie}", shop_spec, tmp_path / "run")
    assert result.exit_code == 0, result.output
    forecasts = pl.read_parquet(tmp_path / "run" / "forecasts.parquet")
    assert sorted(forecasts["model"].unique()) == ["l2", "naive", "tweedie"]
    by_model = {name: rows.sort("item_id", "market", "timestamp")["y_pred"]
                for (name,), rows in forecasts.group_by("model")}
    assert not by_model["l2"].equals(by_model["tweedie"])
    metrics = pl.read_csv(tmp_path / "run" / "metrics.csv", infer_schema=False)
    assert {"l2", "tweedie"} <= set(metrics["model"].to_list())


@pytest.mark.parametrize(("files", "expected"), [
    ({"a": ("lightgbm", {"max_rounds": 20}), "b/a": ("naive", {})}, "given twice"),
    ({"a": ("lightgbm", {"horizon": 5})}, "'horizon: 5' contradicts --horizon 2"),
    ({"a": ("lightgbm", {"max_round": 20})}, "has no parameter 'max_round'"),
    ({"a": ("lightgbmm", {})}, "unknown model 'lightgbmm'"),
])
def test_a_bad_model_file_stops_before_any_data_is_read(files, expected, tmp_path):
    paths = []
    for name, (model, params) in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        paths.append(_config(tmp_path, name, model, **params))
    # The spec does not exist: the models must fail first.
    result = _backtest(",".join(map(str, paths)), tmp_path / "missing.yaml", tmp_path / "run")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], lines
    assert not (tmp_path / "run").exists()
