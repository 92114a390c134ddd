"""Selection by the planner's loss (issue 27 section 3): ensembles, ``tune``, ``experiment`` and
the report's "which model to trust" choose by a named metric, rmsse by default.

The planted case: intermittent series that sell ``s`` units every fifth week and nothing else.
At the last origin (week 35, nothing sold; a sale in week 34) ``naive`` forecasts 0, the low
median, and ``moving_average`` (4 weeks) forecasts s/4, close to the mean s/5; the four weeks
scored hold one sale. Absolute error is lowest at 0 (WAPE 100 % against 110 % for s/4), squared
error at s/4 (the mean of the four weeks): WAPE picks naive, RMSSE moving_average.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.data.panel import Panel
from salesfusion.data.splits import BacktestProtocol
from salesfusion.errors import InputError
from salesfusion.evaluation.backtest import metrics_table
from salesfusion.evaluation.report_sections import trust_per_market, trust_section
from salesfusion.models.backtest import run_backtest
from salesfusion.models.registry import create_model
from salesfusion.scoring.selection import MetricUnavailable, check_metric, selection_score

runner = CliRunner()
START = datetime(2024, 1, 1)  # a Monday
WEEKS = 40
MEMBERS = ["naive", "moving_average"]


def _sales(week: int, item: int) -> float:
    return float(10 + item) if week % 5 == 4 else 0.0


def _panel() -> Panel:
    rows = [{"item_id": f"I{i}", "market": "GB", "timestamp": START + timedelta(weeks=w),
             "y": _sales(w, i)} for i in range(6) for w in range(WEEKS)]
    return Panel(data=pl.DataFrame(rows), freq="W")


def _spec(folder: Path) -> Path:
    """The planted panel as a dataset spec (a sale in week 0 too, so every series starts
    there; the weeks are whole though the sales fall on their Mondays)."""
    rows = [{"sku": f"I{i}", "country": "GB", "when": str((START + timedelta(weeks=w)).date()),
             "qty": int(_sales(w, i) or (1 if w == 0 else 0))}
            for i in range(6) for w in range(WEEKS) if _sales(w, i) or w == 0]
    pl.DataFrame(rows).write_csv(folder / "sales.csv")
    spec = {"name": "planted", "freq": "W", "sales": {"path": "sales.csv", "columns": {
        "item_id": "sku", "market": "country", "timestamp": "when", "quantity": "qty"}},
        "cleaning": {"drop_partial_periods": False}}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_metric_names_and_scores_lower_is_better() -> None:
    assert check_metric("WAPE") == "wape" and check_metric("rmsse") == "rmsse"
    with pytest.raises(InputError, match="unknown selection metric 'R2'; use one of rmsse"):
        check_metric("R2")
    frame = pl.DataFrame({"item_id": ["a"] * 4, "market": ["GB"] * 4,
                          "y_true": [0.0, 0.0, 0.0, 10.0], "rmsse_scale": [4.0] * 4})
    median, mean = (frame.with_columns(pl.lit(v).alias("y_pred")) for v in (0.0, 2.5))
    assert selection_score(median, "wape") < selection_score(mean, "wape")
    assert selection_score(mean, "rmsse") < selection_score(median, "rmsse")
    assert selection_score(median, "bias_abs") == pytest.approx(100.0)  # |-100 %|
    assert selection_score(mean) == selection_score(mean, "rmsse")  # the default
    with pytest.raises(MetricUnavailable, match="metric pinball needs quantile forecasts"):
        selection_score(mean, "pinball")
    banded = mean.with_columns(pl.lit(0.0).alias("q0.1"), pl.lit(5.0).alias("q0.9"))
    # q0.1 (0) pays 0.1 x 10 on the sale; q0.9 (5) pays 0.1 x 5 on each zero, 0.9 x 5 on it.
    assert selection_score(banded, "pinball") == pytest.approx((0.1 * 10 + 3 * 0.5 + 4.5) / 2 / 4)


def test_ensemble_weights_follow_the_metric() -> None:
    panel = _panel()
    assert create_model("ensemble", members=MEMBERS).config.metric == "rmsse"
    by_rmsse = create_model("ensemble", members=MEMBERS, horizon=4).fit(panel)
    by_wape = create_model("ensemble", members=MEMBERS, horizon=4, metric="wape").fit(panel)
    assert by_rmsse._weights.tolist() == [0.0, 1.0]  # moving_average: the mean wins RMSSE
    assert by_wape._weights.tolist() == [1.0, 0.0]  # naive: the zero median wins WAPE
    assert "chosen on the last 3 runs of 4 periods by RMSSE" in " ".join(by_rmsse.notes)
    assert "chosen on the last 3 runs of 4 periods by WAPE" in " ".join(by_wape.notes)
    with pytest.raises(MetricUnavailable, match=r"member\(s\) moving_average give none"):
        create_model("ensemble", members=MEMBERS, horizon=4, metric="pinball").fit(panel)


def test_a_saved_ensemble_without_a_metric_loads_as_wape(tmp_path: Path) -> None:
    model = create_model("ensemble", members=MEMBERS, horizon=4, metric="wape").fit(_panel())
    model.save(tmp_path / "m")
    state = json.loads((tmp_path / "m" / "ensemble.json").read_text())
    assert state["metric"] == "wape"
    # An ensemble saved before the metric existed: no metric in its state.
    state.pop("metric")
    fresh = create_model("ensemble", members=MEMBERS, horizon=4)
    (tmp_path / "m" / "ensemble.json").write_text(json.dumps(state))
    fresh._load_state(tmp_path / "m")
    assert fresh.config.metric == "wape"


def test_the_report_trusts_the_model_the_metric_prefers() -> None:
    panel = _panel()
    protocol = BacktestProtocol(horizon=4, windows=1)
    forecasts = pl.concat([run_backtest(create_model(name), panel, protocol)
                           for name in MEMBERS], how="diagonal")
    metrics = metrics_table(forecasts)
    assert trust_per_market(metrics, "wape")["best"].to_list() == ["naive"]
    by_rmsse = trust_per_market(metrics, "rmsse")
    assert by_rmsse["best"].to_list() == ["moving_average"] and "best RMSSE" in by_rmsse.columns
    assert "chosen by metric <b>rmsse</b>" in trust_section(metrics, "rmsse")
    with pytest.raises(MetricUnavailable, match="metric pinball needs quantile forecasts"):
        trust_per_market(metrics.filter(pl.col("model") == "moving_average"), "pinball")


def _tune(spec: Path, out: Path, *extra: str) -> list[str]:
    (spec.parent / "space.yaml").write_text(yaml.safe_dump(
        {"window": {"type": "int", "low": 1, "high": 4, "actions": [1, 4]}}))
    return ["tune", "--preset", "moving_average", "--space", str(spec.parent / "space.yaml"),
            "--spec", str(spec), "--searcher", "grid", "--test-periods", "0", "--horizon", "4",
            "--budget", "2", "--out", str(out), *extra]


def test_tune_minimises_the_metric_named(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    chosen = {}
    for metric, label in ((None, "RMSSE"), ("wape", "WAPE")):
        out = tmp_path / f"search-{metric}"
        result = runner.invoke(app, _tune(spec, out, *(["--metric", metric] if metric else [])))
        assert result.exit_code == 0, result.output
        assert f"metric {label} on the last 4" in result.output
        assert f"validation {label}" in result.output
        trials = pl.read_csv(out / "trials.csv")
        assert set(trials["metric"]) == {metric or "rmsse"}
        assert json.loads((out / "search.json").read_text())["definition"]["metric"] == (
            metric or "rmsse")
        assert f"validation {label}" in (out / "best.yaml").read_text()
        chosen[label] = yaml.safe_load((out / "best.yaml").read_text())["params"]["window"]
    assert chosen == {"RMSSE": 4, "WAPE": 1}  # the mean-like window, the last (zero) value


def test_pinball_without_quantiles_is_one_error_line(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    out = tmp_path / "search"
    result = runner.invoke(app, _tune(spec, out, "--metric", "pinball"))
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "metric pinball needs quantile" in result.output
    assert not out.exists()
    result = runner.invoke(app, _tune(spec, out, "--metric", "R2"))
    assert result.exit_code == 2 and "unknown tuning metric 'R2'" in result.output


def _experiment(folder: Path) -> Path:
    _spec(folder)
    config = {"name": "planted", "datasets": [{"spec": "spec.yaml", "label": "planted"}],
              "evaluation": {"kind": "backtest", "horizon": 4, "windows": 1}, "trials": 1,
              "models": [{"name": "naive", "baseline": True}, {"name": "moving_average"}]}
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_experiment_ranks_and_tests_by_the_metric(tmp_path: Path) -> None:
    config = _experiment(tmp_path)
    best = {}
    for metric, label in ((None, "RMSSE"), ("wape", "WAPE")):
        out = tmp_path / f"out-{metric}"
        result = runner.invoke(app, ["experiment", str(config), "--out", str(out),
                                     *(["--metric", metric] if metric else [])])
        assert result.exit_code == 0, result.output
        assert f"by metric {metric or 'rmsse'}" in result.output
        markdown = (out / "results.md").read_text()
        assert f"## Headline: {label} (mean ± std over trials; ranked by metric " \
               f"{metric or 'rmsse'})" in markdown
        assert f"Critical-difference ranking by {label}" in markdown
        headline = pl.read_csv(out / "headline.csv")
        best[label] = headline.filter(pl.col("rank") == 1)["model"][0]
        significance = pl.read_csv(out / "significance.csv")
        assert significance["metric"].to_list() == [label if label == "RMSSE" else "MAE"]
    assert best == {"RMSSE": "moving_average", "WAPE": "naive"}
    result = runner.invoke(app, ["experiment", str(config), "--out", str(tmp_path / "p"),
                                 "--metric", "pinball"])
    assert result.exit_code == 2, result.output
    assert "metric pinball needs quantile forecasts but model(s) moving_average" in \
        result.output and result.output.count("\n") == 1


def test_backtest_report_trusts_by_the_metric_named(tmp_path: Path, shop_spec: Path) -> None:
    common = ["backtest", "--models", "naive,moving_average", "--spec", str(shop_spec),
              "--horizon", "2", "--windows", "1"]
    done = runner.invoke(app, [*common, "--out", str(tmp_path / "wape"), "--metric", "WAPE"])
    assert done.exit_code == 0, done.output
    assert "chosen by metric <b>wape</b>" in (tmp_path / "wape" / "report.html").read_text()
    bad = runner.invoke(app, [*common, "--out", str(tmp_path / "bad"), "--metric", "r2"])
    assert bad.exit_code == 2 and "unknown selection metric 'r2'" in bad.output
    assert not (tmp_path / "bad").exists()
