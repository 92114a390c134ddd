"""``salesfusion tune``: hyperparameter search on the validation part, resumable after a kill.

A search folder holds the search's definition (``search.json``, with the commit, date and thread
settings of every session) and its live trial log (``trials.jsonl``), written as trials start
and end; when the search ends, the trial table (``trials.parquet``, ``trials.csv``), the best
configuration (``best.yaml``, ready for ``train --config``), the model trained with it
(``model/``) and its test metrics (``test_metrics.csv``) are published beside them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from salesfusion.cli.common import app, check_backend, check_freq, console, guarded, panel_from
from salesfusion.cli.output import staged_files
from salesfusion.data.yamlfile import parse_yaml
from salesfusion.errors import InputError


def _options(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs, each value read as YAML (numbers, booleans, lists)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--searcher-option {pair!r}: write it as KEY=VALUE")
        options[key.strip()] = parse_yaml(value, f"--searcher-option {pair!r}")
    return options


def _model_and_space(definition: dict[str, Any]) -> tuple[Any, dict[str, Any], Any, str]:
    """(model class, fixed parameters, search space, the model's name or preset file) of a
    search definition, all validated."""
    from salesfusion.cli.model_files import read_model_config
    from salesfusion.data.yamlfile import read_mapping
    from salesfusion.models.config import validate_config
    from salesfusion.models.presets import resolve_model
    from salesfusion.models.search_space import parse_space

    name, params = definition["model"], dict(definition["params"])
    if definition.get("config"):
        name, params = read_model_config(Path(definition["config"]))
    model_type = resolve_model(name)
    source = definition.get("config") or name
    validate_config(model_type.Config, {**model_type.preset_params, **params},
                    owner=model_type.name, source=source)
    if definition.get("space"):
        space_file = Path(definition["space"])
        space = parse_space(read_mapping(space_file, "search space"), str(space_file))
        source = str(space_file)
    elif model_type.search_space is not None:
        space = model_type.search_space
    else:
        raise InputError(f"model '{model_type.name}' declares no search space: give one with "
                         f"--space FILE (e.g. 'lr: {{type: float, low: 0.0001, high: 0.01, "
                         f"log: true}}')")
    space.check_against(model_type.Config, {**model_type.preset_params, **params},
                        owner=model_type.name, source=source)
    return model_type, params, space, name


def _horizon(model_type: Any, params: dict[str, Any], horizon: int | None,
             protocol_horizon: int) -> int:
    if "horizon" in model_type.Config.model_fields:
        configured = model_type.Config.model_validate(
            {**model_type.preset_params, **params}).horizon
        if horizon is not None and horizon != configured:
            raise InputError(f"--horizon {horizon} contradicts the model's horizon {configured}; "
                             f"set it in the --config params instead")
        return configured
    return horizon or protocol_horizon


@app.command()
@guarded
def tune(
    out: Annotated[Path | None, typer.Option(help="A new search folder.")] = None,
    resume: Annotated[Path | None, typer.Option(
        help="Continue the search in this folder (killed, or to raise its budget).")] = None,
    preset: Annotated[str | None, typer.Option(
        help="A registered model or preset, or a preset YAML file.")] = None,
    config: Annotated[Path | None, typer.Option(
        help="YAML: model: NAME, params: {...} (the fixed parameters).")] = None,
    dataset: Annotated[str | None, typer.Option(help="A bundled dataset.")] = None,
    spec: Annotated[Path | None, typer.Option(help="A YAML dataset spec.")] = None,
    freq: Annotated[str | None, typer.Option(help="D, W or M.")] = None,
    searcher: Annotated[str | None, typer.Option(
        help="msrl (default), grid, random or optuna.")] = None,
    searcher_option: Annotated[list[str] | None, typer.Option(
        help="KEY=VALUE option of the searcher (repeatable), e.g. update=standard.")] = None,
    space: Annotated[Path | None, typer.Option(
        help="A search space YAML file (default: the preset's search_space).")] = None,
    budget: Annotated[int | None, typer.Option(
        min=1, help="Trainings at most (default 20; with --resume: the search's).")] = None,
    time_budget: Annotated[float | None, typer.Option(
        min=1, help="Seconds of training at most, summed over the trials.")] = None,
    metric: Annotated[str | None, typer.Option(
        help="Validation metric minimised: rmsse (default), wape, mae, bias_abs (|bias_pct|) "
             "or pinball (models with quantiles).")] = None,
    horizon: Annotated[int | None, typer.Option(
        min=1, help="Validation periods (the model's horizon when it has one).")] = None,
    test_periods: Annotated[int | None, typer.Option(
        min=0, help="Last periods no trial sees (default: the dataset's backtest test "
                    "part); 0: search on everything.")] = None,
    seed: Annotated[int | None, typer.Option(
        help="Seeds the searcher and every trial (default 0).")] = None,
    backend: Annotated[str | None, typer.Option(help="local (default) or ray.")] = None,
    jobs: Annotated[int | None, typer.Option(
        min=1, help="Trials at once (ray backend; default 2).")] = None,
    ray_address: Annotated[str | None, typer.Option(
        help="A Ray cluster to join (default: a local one).")] = None,
) -> None:
    """Search a model's hyperparameters on the validation part; resumable after a kill."""
    from salesfusion.provenance import provenance
    from salesfusion.scoring.selection import DEFAULT_METRIC, check_metric
    from salesfusion.tuning.log import TrialLog

    if (out is None) == (resume is None):
        raise InputError("give exactly one of --out DIR (a new search) or --resume DIR")
    if backend is not None:
        check_backend(backend, None, None)
    if resume is not None:
        fixed = {"--preset": preset, "--config": config, "--dataset": dataset, "--spec": spec,
                 "--freq": freq, "--searcher": searcher, "--searcher-option": searcher_option,
                 "--space": space, "--metric": metric, "--horizon": horizon,
                 "--test-periods": test_periods, "--seed": seed}
        given = [option for option, value in fixed.items() if value is not None]
        if given:
            raise InputError(f"{', '.join(given)}: a resumed search keeps its definition; with "
                             f"--resume give only --budget, --time-budget, --backend, --jobs "
                             f"or --ray-address")
        log = TrialLog(resume.resolve())
        if not log.exists():
            raise InputError(f"{resume}: no search to resume here ({log.definition_path.name} "
                             f"is missing)")
        definition = log.read_definition()
        if budget is not None:
            definition["budget"] = budget
        if time_budget is not None:
            definition["time_budget"] = time_budget
        for key, value in (("backend", backend), ("jobs", jobs), ("ray_address", ray_address)):
            if value is not None:
                definition[key] = value
    else:
        if (preset is None) == (config is None):
            raise InputError("give exactly one of --config CFG or --preset NAME")
        folder = out.resolve()
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise InputError(f"{out}: already exists and is not an empty folder; a new search "
                             f"needs a new --out (continue a search with --resume {out})")
        definition = {
            "model": (str(Path(preset).resolve()) if preset and Path(preset).suffix.lower()
                      in (".yaml", ".yml") else preset), "params": {},
            "config": str(config.resolve()) if config else None,
            "space": str(space.resolve()) if space else None, "searcher": searcher or "msrl",
            "searcher_options": _options(searcher_option or []), "seed": seed or 0,
            "budget": budget or 20, "time_budget": time_budget,
            "metric": check_metric(metric, "tuning") if metric else DEFAULT_METRIC,
            "horizon": horizon, "test_periods": test_periods, "dataset": dataset,
            "spec": str(spec.resolve()) if spec else None,
            "freq": check_freq(freq) if freq else None, "backend": backend or "local",
            "jobs": jobs or 2,
            "ray_address": ray_address}
        log = TrialLog(folder)
    run_definition(definition, log, provenance(load_torch=True), new=resume is None)


def run_definition(definition: dict[str, Any], log: Any, record: dict[str, Any],
                   new: bool) -> None:
    """Validate a search definition, then run (or continue) the search and publish its
    results."""
    from salesfusion.tuning.objective import TuningData, check_scorable
    from salesfusion.tuning.runner import Budget
    from salesfusion.tuning.searchers import build_searcher

    if definition["backend"] == "ray":
        from salesfusion.distributed import require_ray

        require_ray("ray.tune")
    model_type, params, space, reference = _model_and_space(definition)
    start = {**model_type.preset_params, **params}
    # Before anything is written or trained: pinball of a model without quantiles.
    check_scorable(model_type(**params), definition["metric"])
    options = dict(definition["searcher_options"])
    # Options are checked before anything is written (a storage is opened only later).
    build_searcher(definition["searcher"], space, definition["seed"],
                   {**options, "storage": None} if "storage" in options else options, start)
    spec = Path(definition["spec"]) if definition["spec"] else None
    panel = panel_from(definition["dataset"], spec, definition["freq"], None, None, None)
    protocol = _protocol(definition["dataset"])
    horizon = _horizon(model_type, params, definition["horizon"], protocol.horizon)
    test_periods = (definition["test_periods"] if definition["test_periods"] is not None
                    else protocol.test_length)
    data = TuningData.from_panel(panel, test_periods, horizon, definition["metric"])
    fingerprint = data.fingerprint()
    if new:
        if definition["searcher"] == "optuna" and "storage" not in options:
            options["storage"] = f"sqlite:///{log.folder / 'optuna.db'}"
        definition = {**definition, "searcher_options": options, "data": fingerprint}
        log.create(definition, record)
    else:
        if definition.get("data") != fingerprint:
            raise InputError(f"{log.definition_path}: the search was run on other data "
                             f"({definition.get('data')}); this data: {fingerprint}")
        log.open_session(record)
    searcher = build_searcher(definition["searcher"], space, definition["seed"],
                              definition["searcher_options"], start)
    budget = Budget(definition["budget"], definition["time_budget"])
    console.print(f"Searching {model_type.name} with {definition['searcher']} over "
                  f"{', '.join(space.names)} ({space.size():,} discrete settings); "
                  f"metric {data.label} on the last {horizon} of "
                  f"{len(data.panel.periods)} periods; "
                  f"{test_periods} test period(s) held out; budget {budget.trials} trials"
                  + (f", {budget.seconds:,.0f} s" if budget.seconds else ""),
                  markup=False, highlight=False)
    try:
        result = _search(definition, model_type, reference, params, searcher, data, log, budget)
    finally:
        searcher.close()
    console.print(f"Search ended: {result.stopped}", markup=False, highlight=False)
    _publish(log, definition, model_type, params, data, result)


def _protocol(dataset: str | None) -> Any:
    from salesfusion.data.splits import BacktestProtocol
    from salesfusion.datasets import load_dataset

    if dataset is not None and (benchmark := load_dataset(dataset).benchmark) is not None:
        return BacktestProtocol.from_benchmark(benchmark)
    return BacktestProtocol()


def _search(definition: dict[str, Any], model_type: Any, reference: str, params: dict[str, Any],
            searcher: Any, data: Any, log: Any, budget: Any) -> Any:
    def progress(line: str) -> None:
        console.print(line, markup=False, highlight=False)

    if definition["backend"] == "ray":
        from salesfusion.tuning.ray_backend import run_search_ray

        return run_search_ray(model_type, params, searcher, data, log, budget,
                              definition["seed"], jobs=definition["jobs"],
                              address=definition["ray_address"], model_reference=reference,
                              progress=progress)
    from salesfusion.tuning.runner import run_search

    return run_search(model_type, params, searcher, data, log, budget, definition["seed"],
                      progress=progress)


def _publish(log: Any, definition: dict[str, Any], model_type: Any, params: dict[str, Any],
             data: Any, result: Any) -> None:
    from salesfusion.tuning.log import trials_table
    from salesfusion.tuning.objective import fit_final
    from salesfusion.tuning.runner import trial_params

    table = trials_table(list(result.state.ends.values()), data.metric, definition["seed"])
    best = result.best
    with staged_files(log.folder) as staging:
        table.write_parquet(staging / "trials.parquet")
        table.write_csv(staging / "trials.csv")
        if best is not None:
            chosen = trial_params(model_type, params, best.params, definition["seed"])
            with console.status(f"Training the best configuration (trial {best.trial}) on all "
                                f"{len(data.panel.periods)} tuning periods"):
                model, test = fit_final(model_type, chosen, data)
            model.save(staging / "model")
            name = definition["model"] if not definition.get("config") else model.name
            header = (f"# Best of {len(result.state.trained)} trials ({definition['searcher']}, "
                      f"seed {definition['seed']}): validation {data.label} {best.score:.6g}, "
                      f"trial {best.trial}.\n# Train it: salesfusion train --config best.yaml "
                      f"...\n")
            (staging / "best.yaml").write_text(header + yaml.safe_dump(
                {"model": name, "params": chosen}, sort_keys=False))
            if test is not None:
                test.write_csv(staging / "test_metrics.csv")
    if best is None:
        raise InputError(f"{log.folder}: no trial completed (see trials.csv); nothing to train")
    settings = ", ".join(f"{k}={v}" for k, v in best.params.items())
    console.print(f"Best: trial {best.trial}, {settings}: validation {data.label} "
                  f"{best.score:.4g}", markup=False, highlight=False)
    if test is not None:
        from salesfusion.tuning.objective import test_value

        value = test_value(test.filter(test["market"] == "all"), data.metric)
        shown = "undefined" if value is None else f"{value:.4g}"
        console.print(f"Its test {data.label} on the {data.horizon} periods after the tuning "
                      f"data: {shown} (never seen by the search)", markup=False,
                      highlight=False)
    console.print(f"Wrote {log.folder}{os.sep}trials.parquet, trials.csv, best.yaml, model/"
                  + (" and test_metrics.csv" if test is not None else ""))
