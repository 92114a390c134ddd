"""The launch protocol's market scope: an item's entry into a new market, forecast from its
history abroad and its content."""

from datetime import date, datetime, timedelta
from typing import ClassVar

import polars as pl
import pytest
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.data.launch_splits import LaunchProtocol
from salesfusion.data.panel import Panel
from salesfusion.errors import InputError
from salesfusion.evaluation.launch import run_launch_backtest
from salesfusion.models.baselines.launch_curves import MedianLaunchCurve

START = datetime(2024, 1, 1)  # a Monday


def _panel() -> Panel:
    """OLD sells from the first week in GB; A launches in GB at week 2 and enters DE at week
    12; B is a new product launched in GB at week 12; C launches in GB and DE at week 3."""
    spans = {("OLD", "GB"): (0, 20), ("A", "GB"): (2, 20), ("A", "DE"): (12, 20),
             ("B", "GB"): (12, 20), ("C", "GB"): (3, 20), ("C", "DE"): (3, 20),
             ("D", "GB"): (5, 20), ("D", "FR"): (7, 20)}
    rows = [{"item_id": item, "market": market, "timestamp": START + timedelta(weeks=w),
             "y": float(1 + w % 3)}
            for (item, market), (first, end) in spans.items() for w in range(first, end)]
    return Panel(data=pl.DataFrame(rows).sort("item_id", "market", "timestamp"), freq="W")


class _Recording(MedianLaunchCurve):
    name = "recording_entries"
    fits: ClassVar[list[Panel]] = []

    def _fit(self, panel: Panel) -> None:
        type(self).fits.append(panel)
        super()._fit(panel)


def test_market_scope_tests_entries_and_fits_on_the_items_history_abroad():
    panel = _panel()
    cutoff = START + timedelta(weeks=10)
    protocol = LaunchProtocol(horizon=4, cutoffs=(cutoff.date(),), scope="market",
                              validation_periods=4)
    split = protocol.split(panel, cutoff)
    # A's entry into DE; not B (a new product), not C (launched in both at once).
    assert split.test_series.select("item_id", "market").rows() == [("A", "DE")]
    assert split.validation_series(panel).select("item_id", "market").rows() == [("D", "FR")]
    _Recording.fits.clear()
    forecasts = run_launch_backtest(_Recording(), panel, protocol)
    fit = _Recording.fits[0].data
    assert fit["timestamp"].max() < cutoff
    assert {"A", "C", "D", "OLD"} == set(fit["item_id"])  # A's GB history is there
    assert fit.filter(pl.col("market") == "DE")["item_id"].unique().to_list() == ["C"]
    assert forecasts.select("item_id", "market").unique().rows() == [("A", "DE")]
    assert forecasts["timestamp"].min() == START + timedelta(weeks=12)
    item_scope = LaunchProtocol(horizon=4, cutoffs=(cutoff.date(),)).split(panel, cutoff)
    assert item_scope.test_series.select("item_id", "market").rows() == [("B", "GB")]


def test_market_scope_without_entries_is_one_clear_error():
    panel = _panel().select_series(_panel().data.filter(pl.col("item_id") != "A"))
    with pytest.raises(InputError, match="no market entry of an item sold elsewhere"):
        LaunchProtocol(horizon=4, cutoffs=(date(2024, 3, 11),), scope="market").split(
            panel, datetime(2024, 3, 11))


def test_cli_launch_scope_market(tmp_path):
    _panel().data.write_csv(tmp_path / "sales.csv")
    (tmp_path / "spec.yaml").write_text(
        "name: entries\nfreq: W\nsales_grain: period\nsales:\n  path: sales.csv\n"
        "  columns: {item_id: item_id, market: market, timestamp: timestamp, quantity: y}\n")
    out = tmp_path / "entries"
    result = CliRunner().invoke(app, [
        "backtest", "--spec", str(tmp_path / "spec.yaml"), "--protocol", "launch",
        "--launch-scope", "market", "--models", "median_launch_curve", "--horizon", "4",
        "--cutoff", "2024-03-11", "--out", str(out)])
    assert result.exit_code == 0, result.output
    forecasts = pl.read_parquet(out / "forecasts.parquet")
    assert forecasts.select("item_id", "market").unique().rows() == [("A", "DE")]
    bad = CliRunner().invoke(app, [
        "backtest", "--spec", str(tmp_path / "spec.yaml"), "--protocol", "launch",
        "--launch-scope", "shelf", "--models", "median_launch_curve",
        "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "scope" in bad.stderr
    assert not (tmp_path / "bad").exists()
