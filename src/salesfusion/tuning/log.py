"""The trial log of a search folder: what was searched (``search.json``) and every trial, appended
as it starts and as it ends (``trials.jsonl``), so that a search killed at any instant resumes
without repeating a finished trial and can be audited line by line.

Each line is written whole and flushed to disk before the search goes on: a kill can only cut
the line being written, and a reader ignores a last line without its newline. A trial with a
``start`` line and no ``end`` line was running when the process died; a resumed search runs it
again; a searcher with its own store (Optuna's study) settles it there (``Searcher.recover``).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from salesfusion.errors import InputError

DEFINITION = "search.json"
TRIALS = "trials.jsonl"
FORMAT = 1
TRAINED = ("complete", "pruned", "failed")  # statuses that cost a training (count in budgets)


@dataclass(frozen=True)
class TrialEnd:
    trial: int
    params: dict[str, Any]
    status: str  # complete | pruned | failed | cached
    score: float | None
    seconds: float
    epochs: list[float]
    error: str | None
    session: int


class TrialLog:
    """A search folder's definition and trial records."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def definition_path(self) -> Path:
        return self.folder / DEFINITION

    @property
    def trials_path(self) -> Path:
        return self.folder / TRIALS

    def exists(self) -> bool:
        return self.definition_path.is_file()

    # --- the definition -----------------------------------------------------------------------
    def create(self, definition: dict[str, Any], provenance: dict[str, Any]) -> None:
        """Start a new search in an empty (or new) folder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {"format": FORMAT, "id": uuid.uuid4().hex, "definition": definition,
                  "sessions": [provenance]}
        _write_json(self.definition_path, record)
        self.trials_path.touch()
        self.session = 0
        self.seed = definition.get("seed")

    def read_definition(self) -> dict[str, Any]:
        try:
            record = json.loads(self.definition_path.read_text())
            if record.get("format") != FORMAT:
                raise ValueError(f"format {record.get('format')!r}, expected {FORMAT}")
            return record["definition"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise InputError(f"{self.definition_path}: not a salesfusion search record "
                             f"({exc!s:.200})") from None

    def open_session(self, provenance: dict[str, Any]) -> None:
        """Record a resumed session (its commit, date and thread settings)."""
        record = json.loads(self.definition_path.read_text())
        record["sessions"].append(provenance)
        _write_json(self.definition_path, record)
        self.session = len(record["sessions"]) - 1
        self.seed = record["definition"].get("seed")

    @property
    def search_id(self) -> str:
        """This search's unique id (marks its trials in a store shared with other searches)."""
        return json.loads(self.definition_path.read_text())["id"]

    def sessions(self) -> list[dict[str, Any]]:
        return json.loads(self.definition_path.read_text())["sessions"]

    # --- trials -------------------------------------------------------------------------------
    def started(self, trial: int, params: dict[str, Any], reference: Any) -> None:
        self._append({"event": "start", "trial": trial, "params": params,
                      "reference": reference, "session": self.session, "time_utc": _now()})

    def ended(self, trial: int, params: dict[str, Any], status: str, score: float | None,
              seconds: float, epochs: list[float], error: str | None,
              reference: Any = None) -> TrialEnd:
        """A trial's end; ``reference`` for a trial that logged no start (a cached answer)."""
        record = {"event": "end", "trial": trial, "params": params, "status": status,
                  "score": score, "seconds": round(seconds, 3), "epochs": epochs,
                  "seed": self.seed, "error": error, "session": self.session,
                  "time_utc": _now()}
        if reference is not None:
            record["reference"] = reference
        self._append(record)
        # The rounded time, as a resumed search reads it back (budgets decide alike).
        return TrialEnd(trial, params, status, score, round(seconds, 3), epochs, error,
                        self.session)

    def records(self) -> list[dict[str, Any]]:
        if not self.trials_path.is_file():
            return []
        lines = self.trials_path.read_text().split("\n")
        records = []
        for number, line in enumerate(lines[:-1], start=1):  # the last piece: cut or empty
            try:
                records.append(json.loads(line))
            except (ValueError, RecursionError):  # a long-integer ValueError too
                raise InputError(f"{self.trials_path}, line {number}: not a trial record; "
                                 f"the log was changed by hand") from None
        return records

    def ends(self) -> dict[int, TrialEnd]:
        return {r["trial"]: TrialEnd(r["trial"], r["params"], r["status"], r["score"],
                                     r["seconds"], r.get("epochs", []), r.get("error"),
                                     r.get("session", 0))
                for r in self.records() if r["event"] == "end"}

    def outcomes_by_reference(self) -> dict[Any, tuple[str, float | None]]:
        """(status, score) of every ended trial, by the searcher reference its start logged."""
        records = self.records()
        references = {r["trial"]: r.get("reference") for r in records if r["event"] == "start"}
        ends = [(r.get("reference", references.get(r["trial"])), r) for r in records
                if r["event"] == "end"]
        return {reference: (r["status"], r["score"]) for reference, r in ends
                if reference is not None}

    def _append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, default=str) + "\n"
        with open(self.trials_path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())


def trials_table(ends: list[TrialEnd], metric: str, seed: int) -> pl.DataFrame:
    """One row per trial: its number, status, score, wall time, seed and parameters."""
    rows = []
    for end in sorted(ends, key=lambda e: e.trial):
        rows.append({"trial": end.trial, "status": end.status, "metric": metric,
                     "score": end.score, "seconds": end.seconds, "seed": seed,
                     "epochs_run": len(end.epochs),
                     "best_val_loss": min(end.epochs) if end.epochs else None,
                     "error": end.error, "session": end.session,
                     **{f"param_{k}": _cell(v) for k, v in end.params.items()}})
    return pl.DataFrame(rows, infer_schema_length=None)


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list | dict) else value


def _write_json(path: Path, record: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(record, indent=2, default=str) + "\n")
    os.replace(temporary, path)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
