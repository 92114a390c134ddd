"""Optional MLflow tracking of an experiment: one parent run for the experiment, one nested run
per cell (its parameters and metrics), the aggregates on the parent.

A rerun of the experiment (resumed, or extended with more models) logs only what MLflow does
not have yet: runs are found again by their tags (the experiment folder's id, each cell's key),
and no key is logged twice. The store is any tracking URI; by default a SQLite file in the
experiment folder (``mlflow.db``), with artifacts kept beside it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import polars as pl

from salesfusion.errors import InputError

EXPERIMENT_TAG = "salesfusion.experiment"
CELL_TAG = "salesfusion.cell"


def experiment_id(out: Path) -> str:
    """The experiment folder's id (made once, kept in ``tracking-id``)."""
    path = out / "tracking-id"
    if not path.is_file():
        path.write_text(uuid.uuid4().hex + "\n")
    return path.read_text().strip()


def track(uri: str, config: Any, plan: Any, results: Any, out: Path,
          record: dict[str, Any]) -> dict[str, int]:
    """Log what the store lacks; returns how many cell runs were logged and skipped."""
    try:
        import mlflow
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise InputError("--mlflow needs MLflow: pip install 'salesfusion[tracking]'") from None
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    name = f"salesfusion/{config.name}"
    found = client.get_experiment_by_name(name)
    experiment = (found.experiment_id if found is not None else client.create_experiment(
        name, artifact_location=(out / "mlflow-artifacts").resolve().as_uri()))
    folder_id = experiment_id(out)
    parents = client.search_runs([experiment], f"tags.`{EXPERIMENT_TAG}` = '{folder_id}'")
    parent = (parents[0] if parents else client.create_run(
        experiment, run_name=config.name, tags={EXPERIMENT_TAG: folder_id}))
    parent_id = parent.info.run_id
    logged = {run.data.tags.get(CELL_TAG) for run in client.search_runs(
        [experiment], f"tags.mlflow.parentRunId = '{parent_id}'", max_results=50_000)}
    counts = {"logged": 0, "skipped": 0}
    for cell in plan.cells:
        key = plan.keys[cell.folder]
        if key in logged:
            counts["skipped"] += 1
            continue
        metrics = results.cells.filter(
            (pl.col("dataset") == cell.dataset.key) & (pl.col("model") == cell.variant.label)
            & (pl.col("trial") == cell.trial))
        run = client.create_run(experiment, run_name=f"{cell.dataset.key}/{cell.variant.label}/"
                                f"trial-{cell.trial}",
                                tags={CELL_TAG: key, "mlflow.parentRunId": parent_id})
        params = {"dataset": cell.dataset.key, "model": cell.variant.entry.name,
                  "variant": cell.variant.label, "trial": cell.trial, "seed": cell.seed,
                  **{f"param.{k}": json.dumps(v, default=str)[:500]
                     for k, v in cell.variant.params.items()},
                  **{f"level.{k}": v for k, v in cell.variant.levels.items()}}
        for param, value in params.items():
            client.log_param(run.info.run_id, param, value)
        for row in metrics.drop_nulls("value").iter_rows(named=True):
            client.log_metric(run.info.run_id, row["metric"], float(row["value"]))
        client.set_terminated(run.info.run_id)
        counts["logged"] += 1
    _log_parent(client, parent_id, results, record)
    return counts


def _log_parent(client: Any, run_id: str, results: Any, record: dict[str, Any]) -> None:
    """Aggregates (mean over trials, per dataset and model) on the parent, once each; a value
    that changed on a rerun (more trials) is logged again as a new step."""
    existing = client.get_run(run_id).data
    if "command" not in existing.params:
        client.log_param(run_id, "command", str(record.get("command"))[:500])
        client.log_param(run_id, "commit", str(record.get("provenance", {}).get("commit")))
    for row in results.summary.drop_nulls("mean").iter_rows(named=True):
        key = _metric_key(f"{row['dataset']}.{row['model']}.{row['metric']}")
        value = float(row["mean"])
        if existing.metrics.get(key) != value:
            history = client.get_metric_history(run_id, key)
            client.log_metric(run_id, key, value, step=len(history))


def _metric_key(text: str) -> str:
    """MLflow keys allow letters, digits, _ - . / and spaces."""
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in text)[:250]
