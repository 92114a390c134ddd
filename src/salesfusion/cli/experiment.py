"""``salesfusion experiment CONFIG --out DIR``: every cell of an experiment, resumable, then its
tables and plots (``salesfusion.experiments``)."""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from salesfusion.cli.common import app, console, guarded
from salesfusion.cli.output import staged_files
from salesfusion.errors import InputError
from salesfusion.jsonfile import parse_json

RECORD = "experiment.json"
# --smoke: the experiment's whole path on a few series, fast enough for CI.
SMOKE = {"trials": 2, "max_series": 40, "epochs": 1, "max_train_windows": 1000, "budget": 2}


def smoke(config: Any) -> Any:
    """The experiment shrunk to a fast check: 2 trials, the 40 busiest series, one epoch of at
    most 1,000 windows for the neural models, tuning budgets of 2."""
    from salesfusion.models.presets import resolve_model

    models = []
    for entry in config.models:
        fields = resolve_model(entry.name).Config.model_fields
        params = dict(entry.params)
        for name in ("epochs", "max_train_windows"):
            if name in fields:
                params[name] = min(params.get(name, SMOKE[name]), SMOKE[name])
        tune = (entry.tune.model_copy(update={"budget": min(entry.tune.budget, SMOKE["budget"])})
                if entry.tune else None)
        models.append(entry.model_copy(update={"params": params, "tune": tune}))
    return config.model_copy(update={
        "models": models, "trials": min(config.trials, SMOKE["trials"]),
        "seeds": config.seeds[:SMOKE["trials"]] if config.seeds else None,
        "max_series": min(config.max_series or SMOKE["max_series"], SMOKE["max_series"])})


@app.command()
@guarded
def experiment(
    config_file: Annotated[Path, typer.Argument(metavar="CONFIG", help="An experiment YAML.")],
    out: Annotated[Path, typer.Option(help="The experiment folder (its cells are cached "
                                           "there: a rerun resumes).")],
    jobs: Annotated[int, typer.Option(min=1, help="Cells run at once.")] = 1,
    backend: Annotated[str, typer.Option(help="local (processes) or ray.")] = "local",
    publish: Annotated[Path | None, typer.Option(
        help="Also copy the tables, plots and summary to this folder (e.g. "
             "experiments/results/NAME).")] = None,
    mlflow: Annotated[bool, typer.Option(
        help="Track the experiment in MLflow (one nested run per cell).")] = False,
    mlflow_uri: Annotated[str | None, typer.Option(
        help="MLflow tracking URI (default: sqlite:///OUT/mlflow.db).")] = None,
    smoke_run: Annotated[bool, typer.Option(
        "--smoke", help="A fast check of the whole experiment: 2 trials, 40 series, one "
                        "short epoch.")] = False,
    metric: Annotated[str | None, typer.Option(
        help="What ranks, tests and tunes the models (overrides the config's metric): rmsse "
             "(default), wape, mae, bias_abs or pinball.")] = None,
) -> None:
    """Run an experiment: every dataset x model (x ablation level) x trial, then the tables."""
    from salesfusion.experiments.config import load_experiment
    from salesfusion.experiments.results import collect, write_results
    from salesfusion.experiments.runner import run_experiment
    from salesfusion.provenance import provenance

    if backend not in ("local", "ray"):
        raise InputError(f"--backend {backend!r}: use local or ray")
    if (mlflow or mlflow_uri) and importlib.util.find_spec("mlflow") is None:
        raise InputError("--mlflow needs MLflow: pip install 'salesfusion[tracking]'")
    config = load_experiment(config_file)
    if metric is not None:
        from salesfusion.scoring.selection import check_metric

        config = config.model_copy(update={"metric": check_metric(metric, "experiment")})
    _check_scorable(config)
    if smoke_run:
        config = smoke(config)
    folder = out.resolve()
    record_path = folder / RECORD
    definition = json.loads(config.model_dump_json())
    earlier: dict[str, Any] = {}
    if record_path.is_file():
        earlier = parse_json(record_path.read_bytes(), str(record_path))
        if not isinstance(earlier, dict) or not isinstance(earlier.get("config", {}), dict):
            raise InputError(f"{record_path}: not an experiment record salesfusion wrote; use "
                             f"another --out")
        if earlier.get("config", {}).get("name") != config.name:
            raise InputError(f"{out}: holds experiment '{earlier.get('config', {}).get('name')}'"
                             f", not '{config.name}': use another --out")
    elif folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError(f"{out}: exists and holds no salesfusion experiment; choose a new "
                         f"--out")
    folder.mkdir(parents=True, exist_ok=True)
    sessions = earlier.get("sessions", [])
    record_path.write_text(json.dumps({"config": definition, "sessions": sessions}, indent=1))
    started = time.perf_counter()

    def progress(line: str) -> None:
        console.print(line, markup=False, highlight=False)

    progress(f"ranking, testing and tuning by metric {config.metric}")
    plan = run_experiment(config, folder, jobs=jobs, backend=backend, progress=progress)
    # Each run of the command: its wall time and the cells it computed (a resumed or re-run
    # experiment's wall time is the sum over its runs).
    sessions = [*sessions, {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "wall_seconds": round(time.perf_counter() - started, 1),
                            "cells_run": plan.ran, "jobs": jobs, "backend": backend}]
    record_path.write_text(json.dumps({"config": definition, "sessions": sessions}, indent=1))
    with console.status("Computing the tables, significance tests and plots"):
        results = collect(config, plan, folder)
        record = {"name": config.name, "command": _command(), "provenance": provenance(),
                  "wall_seconds": sum(s["wall_seconds"] for s in sessions),
                  "sessions": sessions,
                  "cell_seconds": float(results.seconds["seconds"].sum()),
                  "smoke": smoke_run, "config": definition}
        with staged_files(folder) as staging:
            written = write_results(results, config, staging, record)
        if publish is not None:
            with staged_files(publish.resolve()) as staging:
                write_results(results, config, staging, record)
    if mlflow or mlflow_uri:
        from salesfusion.experiments.tracking import track

        uri = mlflow_uri or f"sqlite:///{folder / 'mlflow.db'}"
        with console.status(f"Logging to MLflow ({uri})"):
            counts = track(uri, config, plan, results, folder, record)
        console.print(f"MLflow: {counts['logged']} cell run(s) logged, {counts['skipped']} "
                      f"already there", markup=False, highlight=False)
    console.print((folder / "results.md").read_text(), markup=False, highlight=False)
    console.print(f"Wrote {', '.join(written)} to {out}"
                  + (f" (and published them to {publish})" if publish else ""))


def _check_scorable(config: Any) -> None:
    """Pinball of a model that forecasts no quantiles, refused before any cell runs (the cells'
    forecasts would be refused only once all had run)."""
    from salesfusion.models.presets import resolve_model
    from salesfusion.scoring.selection import MetricUnavailable

    if config.metric != "pinball":
        return
    lacking = [v.label for v in config.variants()
               if not resolve_model(v.entry.name)(**v.params).supports_quantiles]
    if lacking:
        raise MetricUnavailable(f"metric pinball needs quantile forecasts but model(s) "
                                f"{', '.join(lacking)} give none; choose another metric "
                                f"(rmsse, wape, mae or bias_abs) or models with quantiles")


def _command() -> str:
    return " ".join(["salesfusion", *(shlex.quote(a) for a in sys.argv[1:])])
