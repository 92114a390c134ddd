"""``salesfusion explain``: what a saved model leans on, where it errs, and what drives demand,
per market segment (tables, ``summary.json`` and an offline HTML report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from salesfusion.cli.common import app, check_freq, console, guarded, panel_from
from salesfusion.cli.output import staged_run
from salesfusion.errors import InputError
from salesfusion.evaluation.progress import ConsoleProgress


@app.command()
@guarded
def explain(
    model: Annotated[Path, typer.Option(help="A saved model folder.")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    dataset: Annotated[str | None, typer.Option(help="A bundled dataset.")] = None,
    spec: Annotated[Path | None, typer.Option(help="A YAML dataset spec.")] = None,
    segment: Annotated[str, typer.Option(help=(
        "A markets-table column (maturity, region...), 'learned' (k-means on growth, "
        "volatility and penetration) or 'market' (one segment per market)."))] = "market",
    origins: Annotated[int, typer.Option(
        min=1, help="Neural models: origins the attributions are computed at.")] = 6,
    max_windows: Annotated[int, typer.Option(
        min=1, help="Neural models: most windows attributed (a seeded sample).")] = 400,
    refit: Annotated[bool, typer.Option(help=(
        "Refit a clone up to the holdout origin, so that its errors are out of "
        "sample."))] = True,
    seed: Annotated[int, typer.Option(help="Seed of every sample and bootstrap.")] = 0,
    freq: Annotated[str | None, typer.Option(
        help="D, W or M (the model's when omitted).")] = None,
) -> None:
    """Explain a saved model on a dataset: segments, holdout errors per segment, attributions
    (neural) or permutation importance (LightGBM), KOL response and demand cycles."""
    from salesfusion.explain.pipeline import ExplainSettings, check_segment, explain_model
    from salesfusion.explain.report import write_report
    from salesfusion.models.base import Forecaster

    forecaster = Forecaster.load(model)
    if freq is not None and forecaster.freq and check_freq(freq) != forecaster.freq:
        raise InputError(f"{model}: the model was trained at frequency '{forecaster.freq}' "
                         f"and cannot be explained at --freq '{check_freq(freq)}'; leave "
                         f"--freq out")
    settings = ExplainSettings(segment=segment, origins=origins, max_windows=max_windows,
                               refit=refit, seed=seed)
    source = str(dataset or spec)
    progress = ConsoleProgress(console)
    with progress:
        with progress.stage("Building the panel", spinner=False):
            panel = panel_from(dataset, spec, check_freq(freq) if freq else forecaster.freq,
                               None, None, None)
        check_segment(panel, segment)  # a wrong column fails before anything is fitted
        with staged_run(out) as staging:
            summary = explain_model(forecaster, panel, staging, settings, progress, source)
            with progress.stage("Writing the report"):
                write_report(staging, title=f"salesfusion explain: {forecaster.name} on "
                                            f"{source}")
    for note in summary["notes"]:
        progress.line(f"note ({note['step']}): {note['note']}")
    console.print(f"Wrote {out}: report.html, summary.json and {len(summary['tables'])} "
                  f"tables (Parquet and CSV)")
    progress.finished("Explain")
