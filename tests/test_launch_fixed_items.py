"""Fixed test items for the launch protocol (``test_items``, ``backtest --test-items FILE``), as
public new-product benchmarks give them: exactly those items are scored, from the cutoff at
their earliest launch, and nothing on or after it is trained on."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.data.launch_splits import LaunchProtocol
from salesfusion.data.panel import Panel
from salesfusion.datasets.synthetic import synthetic
from salesfusion.errors import InputError

START = datetime(2024, 1, 4)


def _panel() -> Panel:
    """Items A0..A9 launching one a week from week 1, in GB, eight weeks of sales each; OLD sells
    from the first week."""
    rows = [{"item_id": "OLD", "market": "GB", "timestamp": START + timedelta(weeks=w),
             "y": 5.0} for w in range(20)]
    rows += [{"item_id": f"A{i}", "market": "GB",
              "timestamp": START + timedelta(weeks=1 + i + w), "y": float(1 + i + w)}
             for i in range(10) for w in range(8)]
    return Panel(data=pl.DataFrame(rows).with_columns(pl.col("timestamp").cast(pl.Datetime("us")))
                 .sort("item_id", "market", "timestamp"), freq="W")


def test_fixed_items_are_the_test_part_and_the_cutoff_is_their_first_launch():
    panel = _panel()
    protocol = LaunchProtocol(horizon=4, test_items=("A6", "a8"))  # ids as the data's rule
    [cutoff] = protocol.cutoff_periods(panel)
    assert cutoff == START + timedelta(weeks=7)  # A6's launch
    split = protocol.split(panel, cutoff)
    assert split.test_series["item_id"].to_list() == ["A6", "A8"]  # not A7 or A9
    assert set(split.train_items.to_list()) == {"OLD", *(f"A{i}" for i in range(6))}
    assert split.fit_panel(panel).data["timestamp"].max() < cutoff


@pytest.mark.parametrize(("items", "expected"), [
    (("A6", "B1"), r"test items not in the panel: B1 \(1 of 2\)"),
    (("OLD",), "sells from the panel's first period"),
])
def test_fixed_items_that_cannot_be_tested_are_refused(items, expected):
    with pytest.raises(InputError, match=expected):
        LaunchProtocol(horizon=4, test_items=items).cutoff_periods(_panel())


def test_fixed_items_are_for_new_products():
    with pytest.raises(ValueError, match="test_items fix the test part of new products"):
        LaunchProtocol(horizon=4, test_items=("A6",), scope="market")


def test_backtest_test_items_file(tmp_path):
    shop = synthetic(tmp_path / "shop", n_items=40, n_weeks=30, seed=7)
    launches = (shop.panel().data.group_by("item_id").agg(pl.col("timestamp").min())
                .sort("timestamp", "item_id"))
    chosen = launches.filter(pl.col("timestamp") > launches["timestamp"].min())[
        "item_id"].tail(6).to_list()[::2]
    listing = tmp_path / "test_items.txt"
    listing.write_text("# the benchmark's test items\n" + "\n".join(chosen) + "\n\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "backtest", "--spec", str(shop.folder / "spec.yaml"), "--protocol", "launch",
        "--models", "median_launch_curve", "--horizon", "4", "--min-observed", "1",
        "--test-items", str(listing), "--out", str(out)])
    assert result.exit_code == 0, result.output
    scored = pl.read_parquet(out / "forecasts.parquet")["item_id"].unique().sort().to_list()
    assert scored == sorted(chosen)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    refused = CliRunner().invoke(app, [
        "backtest", "--spec", str(shop.folder / "spec.yaml"), "--protocol", "launch",
        "--models", "median_launch_curve", "--test-items", str(empty), "--out",
        str(tmp_path / "no")])
    assert refused.exit_code == 2 and "lists no item id" in refused.stderr
    assert not (tmp_path / "no").exists()


def test_fixed_items_with_cutoffs_or_too_few_periods_are_refused():
    with pytest.raises(ValueError, match="give test items or cutoffs, not both"):
        LaunchProtocol(horizon=4, test_items=("A6",), cutoffs=(START.date(),))
    panel = _panel()
    short = Panel(data=panel.data.filter(~((pl.col("item_id") == "A6")
                                           & (pl.col("timestamp") > START + timedelta(weeks=8)))),
                  freq="W")
    with pytest.raises(InputError, match="test items with fewer than 4 periods observed in any "
                                         "market: A6"):
        LaunchProtocol(horizon=4, test_items=("A6", "A8")).cutoff_periods(short)
