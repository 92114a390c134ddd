"""scripts/update_readme.py: a missing source is a loud error that leaves every page untouched;
tables are rewritten from their sources only, and only those named with --only, in the one page
(README.md or docs/*.md) that holds each table's markers."""

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "update_readme.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def _table(text: str, name: str) -> str:
    return text.split(f"<!-- {name}-table:start -->")[1].split(f"<!-- {name}-table:end -->")[0]


class Pages:
    """Copies of the README and the docs pages, as the script is run on them."""

    def __init__(self, folder: Path) -> None:
        self.paths = []
        for source in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
            copy = folder / source.relative_to(ROOT)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(source.read_bytes())
            self.paths.append(copy)

    @property
    def args(self) -> list[str]:
        return ["--pages", *map(str, self.paths)]

    def read_bytes(self) -> list[bytes]:
        return [path.read_bytes() for path in self.paths]

    def read_text(self) -> str:
        return "\n".join(path.read_text() for path in self.paths)


@pytest.fixture
def readme(tmp_path: Path) -> Pages:
    return Pages(tmp_path / "pages")


def _demo_metrics(path: Path) -> Path:
    rows = []
    for model, base in (("alpha", 10.0), ("beta", 20.0)):
        for segment, shift in (("all", 0.0), ("United Kingdom", 1.0), ("France", 2.0),
                               ("Germany", 4.0)):
            for k, metric in enumerate(("WAPE", "MASE", "sMAPE", "MAE", "RMSE")):
                rows.append({"model": model, "window": "all", "segment": segment,
                             "metric": metric, "value": base + shift + k / 10})
    pl.DataFrame(rows).write_csv(path)
    return path


def test_missing_source_is_one_clear_error_and_readme_is_untouched(readme, tmp_path):
    before = readme.read_bytes()
    missing = tmp_path / "runs" / "demo" / "metrics.csv"
    done = _run(*readme.args, "--only", "demo", "--metrics", str(missing))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert str(missing) in lines[0] and "`make readme`" in lines[0]
    assert readme.read_bytes() == before


def test_one_missing_source_blocks_every_table(readme, tmp_path):
    """All or nothing: the peers table's source exists, but the demo one is missing."""
    before = readme.read_bytes()
    done = _run(*readme.args, "--only", "peers,demo", "--metrics",
                str(tmp_path / "absent.csv"))
    assert done.returncode == 1 and "absent.csv not found" in done.stderr
    assert readme.read_bytes() == before


def test_missing_neural_run_names_the_model_and_make_results(readme, tmp_path):
    before = readme.read_bytes()
    neural = tmp_path / "neural"
    (neural / "gru").mkdir(parents=True)
    _demo_metrics(neural / "gru" / "metrics.csv")
    done = _run(*readme.args, "--only", "neural", "--neural", str(neural),
                "--neural-models", "gru lstm")
    assert done.returncode == 1
    assert str(neural / "lstm" / "metrics.csv") in done.stderr
    assert str(neural / "gru" / "metrics.csv") not in done.stderr
    assert "`make results`" in done.stderr
    assert readme.read_bytes() == before


def test_only_rewrites_the_named_table_from_its_source(readme, tmp_path):
    before = readme.read_text()
    metrics = _demo_metrics(tmp_path / "metrics.csv")
    done = _run(*readme.args, "--only", "demo", "--metrics", str(metrics))
    assert done.returncode == 0, done.stderr
    after = readme.read_text()
    lines = _table(after, "demo").strip().splitlines()
    assert lines[0] == ("| model | WAPE | MASE | sMAPE | MAE | RMSE | "
                        "WAPE other countries (mean) |")
    # Sorted by WAPE; the last column is the mean WAPE of France and Germany (not the UK).
    assert lines[2] == "| alpha | 10.000 | 10.100 | 10.200 | 10.300 | 10.400 | 13.000 |"
    assert lines[3] == "| beta | 20.000 | 20.100 | 20.200 | 20.300 | 20.400 | 23.000 |"
    for name in ("neural", "peers", "speed", "ablation"):
        assert _table(after, name) == _table(before, name)
    outside = after.replace(_table(after, "demo"), "")
    assert outside == before.replace(_table(before, "demo"), "")


def test_markers_in_two_pages_are_refused(readme, tmp_path):
    extra = readme.paths[0]
    extra.write_text(extra.read_text() + "\n<!-- demo-table:start -->\n<!-- demo-table:end -->\n")
    before = readme.read_bytes()
    done = _run(*readme.args, "--only", "demo", "--metrics",
                str(_demo_metrics(tmp_path / "metrics.csv")))
    assert done.returncode == 1 and "expected one '<!-- demo-table:start -->'" in done.stderr
    assert readme.read_bytes() == before


def test_unknown_table_name_is_refused(readme):
    before = readme.read_bytes()
    done = _run(*readme.args, "--only", "demo,bogus")
    assert done.returncode == 2 and "unknown table(s) ['bogus']" in done.stderr
    assert readme.read_bytes() == before


def _launch_results(path: Path) -> Path:
    def row(model: str, wape: float, seeds: int, **extra: float) -> dict:
        return {"model": model, "wape_mean": wape, "wape_std": 0.5 if seeds > 1 else 0.0,
                "rmse_mean": 2.0, "smape_mean": 80.0, "seeds": seeds, "bias_pct_mean": -5.0,
                "rmsse_mean": 0.9, **extra}

    path.write_text(json.dumps({
        "command": "benchmarks/launch.py --seeds 3 --ablation",
        "provenance": {"commit": "0123456789abcdef", "date_utc": "2026-11-21T00:00:00+00:00",
                       "threads": {"env": {"OMP_NUM_THREADS": "2"}}},
        "benchmarks": {"synthetic": {
            "test_series": 1200, "oracle": {"WAPE": 40.0, "RMSE": 1.5, "sMAPE": 70.0},
            "rows": [row("median_launch_curve", 80.0, 1, vs_best_reference_pct=0.0,
                         vs_oracle=2.0),
                     row("multimodal_launch", 50.0, 3, vs_best_reference_pct=-37.5,
                         vs_oracle=1.25)],
            "ablation": [row("multimodal_launch", 50.0, 3), row("epochs: 20", 45.0, 3)]}}}))
    return path


def test_launch_tables_come_from_the_launch_results(readme, tmp_path):
    source = _launch_results(tmp_path / "launch.json")
    done = _run(*readme.args, "--only", "launch,launch-ablation", "--launch",
                str(source), "--launch-ablation", str(source))
    assert done.returncode == 0, done.stderr
    text = readme.read_text()
    launch = _table(text, "launch").strip().splitlines()
    assert launch[0].startswith("commit 0123456789ab, 2026-11-21") and "THREADS=2" in launch[0]
    assert launch[4] == ("| synthetic (1,200 series) | median_launch_curve | 80.000 |  | "
                         "-5.000 | 0.900 | 2.000 | 80.000 | 0.000 | 2.000 | 1 |")
    assert launch[5].startswith("| synthetic (1,200 series) | multimodal_launch | 50.000 | "
                                "0.500 |")
    assert launch[6].startswith("| synthetic (1,200 series) | oracle (true mean) | 40.000 |")
    ablation = _table(text, "launch-ablation").strip().splitlines()
    assert ablation[3] == "| synthetic | epochs: 20 | 45.000 | 0.500 | -10.000 | 3 |"


def test_searchers_table_comes_from_the_searcher_benchmark(readme, tmp_path):
    def spread(mean: float) -> dict:
        return {"mean": mean, "std": 0.01}

    def searcher(final: float, found: int) -> dict:
        return {"curve": [spread(final + 0.2), spread(final + 0.1), spread(final + 0.05),
                          spread(final + 0.02), spread(final)],
                "final": spread(final), "finals": [final] * 4, "found_optimum": found,
                "regret_percent": spread(100 * (final / 1.5 - 1)),
                "test_rmse": spread(final + 1), "training_seconds": spread(120.0)}

    source = tmp_path / "searchers.json"
    source.write_text(json.dumps({
        "command": "benchmarks/searchers.py --seeds 4 --budget 5", "seeds": 4, "budget": 5,
        "provenance": {"commit": "0123456789abcdef", "date_utc": "2026-11-22T00:00:00+00:00",
                       "threads": {"env": {"OMP_NUM_THREADS": "1"}}},
        "datasets": {"synthetic": {
            "settings": 27, "optimum_validation_rmse": 1.5,
            "searchers": {"msrl (paper update)": searcher(1.8, 1), "random": searcher(1.6, 3)},
            "paired_tests": {"msrl (paper update) vs random": {
                "p_value": 0.125, "better": 0, "worse": 4, "ties": 0}}}},
        "pooled_paired_tests": {"msrl (paper update) vs random": {
            "p_value": None, "better": 0, "worse": 0, "ties": 4}}}))
    done = _run(*readme.args, "--only", "searchers", "--searchers", str(source))
    assert done.returncode == 0, done.stderr
    lines = _table(readme.read_text(), "searchers").strip().splitlines()
    assert lines[0].startswith("commit 0123456789ab, 2026-11-22") and "4 seeds" in lines[0]
    assert lines[4] == ("| synthetic (27 settings, best 1.5000) | msrl (paper update) | "
                        "1.8500 ± 0.0100 | 1.8000 ± 0.0100 | 1.8000 ± 0.0100 | 20.00 | 1/4 | "
                        "2.8000 ± 0.0100 | 120 |")
    assert "| synthetic | msrl (paper update) vs random | 0/0/4 | 0.125 |" in lines
    assert "| pooled (RMSE / best) | msrl (paper update) vs random | 0/4/0 | identical |" in lines
