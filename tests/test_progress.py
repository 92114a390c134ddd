"""What a backtest shows while it runs: plain lines per model and window when the output is not a
terminal (CliRunner's is not), and the notes models keep in the log, notes.json and report."""

import html
import json
import re

import polars as pl
from rich.console import Console
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.data.splits import BacktestProtocol
from salesfusion.evaluation.progress import ConsoleProgress

runner = CliRunner()
WINDOW_LINE = re.compile(r"^\[(?P<model>\w+)\] window (?P<window>\d)/2 "
                         r"\(origin (?P<origin>\d{4}-\d\d-\d\d)\): (?P<work>fit\+predict|predict) "
                         r"\d+(\.\d)? s, elapsed \d+(\.\d)? s$")


def _origins(spec) -> list[str]:
    from salesfusion.data.panel import build_panel
    from salesfusion.data.spec import load_spec
    from salesfusion.data.validate import load_tables

    periods = build_panel(load_tables(load_spec(spec))).periods
    return [f"{o:%Y-%m-%d}" for o in BacktestProtocol(horizon=3, windows=2).origins(periods)]


def test_backtest_log_has_a_line_per_model_and_window(shop_spec, tmp_path):
    result = runner.invoke(app, ["backtest", "--spec", str(shop_spec), "--models",
                                 "naive,moving_average", "--horizon", "3", "--windows", "2",
                                 "--out", str(tmp_path / "bt")])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    windows = [m.groupdict() for m in map(WINDOW_LINE.match, lines) if m]
    origins = _origins(shop_spec)
    assert [(w["model"], w["window"], w["origin"], w["work"]) for w in windows] == [
        (model, str(i + 1), origins[i], "fit+predict")
        for model in ("naive", "moving_average") for i in range(2)]
    for text in ("[naive] backtesting 2 window(s)", "[moving_average] backtesting 2 window(s)"):
        assert text in lines
    for stage in ("Building the panel", "Writing the report"):
        assert any(re.fullmatch(rf"{stage}: done in \d+(\.\d)? s", line) for line in lines)
    assert any(re.fullmatch(r"\[naive\] done in \d+\.\d s", line) for line in lines)
    assert re.fullmatch(r"Backtest finished in \d+(\.\d)? s", lines[-1])
    assert "━" not in result.stderr  # no bars in a log file
    # The cross-table warning is longer than 80 columns and still one line.
    unsold = [line for line in lines if "P012" in line]
    assert unsold and all(line.lstrip().startswith("warning:") for line in unsold)


def test_without_refit_later_windows_only_predict(shop_spec, tmp_path):
    result = runner.invoke(app, ["backtest", "--spec", str(shop_spec), "--models", "naive",
                                 "--horizon", "3", "--windows", "2", "--no-refit",
                                 "--out", str(tmp_path / "bt")])
    assert result.exit_code == 0, result.output
    works = [m["work"] for m in map(WINDOW_LINE.match, result.stderr.splitlines()) if m]
    assert works == ["fit+predict", "predict"]


def test_model_notes_reach_the_log_notes_file_and_report(tmp_path, capsys):
    """A multimodal model with one image path that does not exist notes the masked image; the
    note is printed once (not once per window) and kept in notes.json and report.html."""
    from salesfusion.datasets.synthetic import synthetic
    from salesfusion.evaluation.report import write_report
    from salesfusion.evaluation.runner import backtest_models
    from salesfusion.models.registry import create_model

    panel = synthetic(tmp_path / "shop", n_items=16, n_weeks=14, seed=3).panel()
    first = panel.items["item_id"][0]
    panel.items = panel.items.with_columns(
        pl.when(pl.col("item_id") == first).then(pl.lit("images/none.png"))
        .otherwise(pl.col("image")).alias("image"))
    model = create_model("multimodal", epochs=1, lookback=8, hidden=8, fusion_dim=8, horizon=3,
                         accelerator="cpu", cache_dir=str(tmp_path / "cache"))
    protocol = BacktestProtocol(horizon=3, windows=2, refit=False)
    with ConsoleProgress(Console(stderr=True, soft_wrap=True)) as progress:
        run = backtest_models(panel, [model, "naive"], protocol, progress=progress)
    run.write(tmp_path)
    write_report(run, tmp_path / "report.html", title="notes")

    notes = json.loads((tmp_path / "notes.json").read_text())
    assert notes["naive"] == []
    masked = [n for n in notes["multimodal"] if "missing" in n["note"] or "unreadable" in n["note"]]
    assert len(masked) == 1 and masked[0]["windows"] == [0, 1]
    text = masked[0]["note"]
    assert capsys.readouterr().err.splitlines().count(f"[multimodal] note: {text}") == 1
    report = (tmp_path / "report.html").read_text()
    assert "<h2>Model notes</h2>" in report
    assert f"<b>multimodal</b>: {html.escape(text)}</li>" in report
