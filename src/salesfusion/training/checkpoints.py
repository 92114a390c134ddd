"""The checkpoint folder of a resumable training: ``last.ckpt`` (the training state, tensors and
plain values only) and ``last.json`` beside it, our record of the configuration and data that
wrote it and of the checkpoint's SHA-256.

A folder is checked before anything in it is read: only our own file names, a record we wrote,
the same configuration and data, the checkpoint's bytes as recorded. Anything else is refused
with an ``InputError``; nothing is ever unpickled (``torch.load(..., weights_only=True)``) and no
path named inside a checkpoint is ever opened, so a planted file cannot run code.

A save writes both files under temporary names, then renames the checkpoint and then the record
into place: a kill between the two renames leaves the new checkpoint and its pending record,
which the next run completes (the record's hash still has to match).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from salesfusion.errors import InputError

CHECKPOINT = "last.ckpt"
RECORD = "last.json"
PENDING = {CHECKPOINT: CHECKPOINT + ".tmp", RECORD: RECORD + ".tmp"}
FORMAT = "salesfusion-checkpoint/1"
STATE_KEYS = {"epoch", "stopped_early", "module", "optimizers", "schedulers", "best_weights",
              "early_stopping", "random"}


def config_fingerprint(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def data_fingerprint(loaders: Iterable[Any], buffers: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of every tensor a training reads: the loaders' windows and the network's buffers
    (item content vectors), with their names, shapes and dtypes."""
    digest = hashlib.sha256()

    def add_array(name: str, values: np.ndarray) -> None:
        array = np.ascontiguousarray(values)
        digest.update(f"{name}|{array.dtype}|{array.shape}|".encode())
        digest.update(array.reshape(-1).view(np.uint8))

    def add(name: str, tensor: torch.Tensor) -> None:
        add_array(name, tensor.detach().cpu().numpy())

    for number, loader in enumerate(loaders):
        dataset = loader.dataset
        if hasattr(dataset, "fingerprint"):  # gathered batches: their sources, not every batch
            dataset.fingerprint(lambda name, values, n=number: add_array(f"loader{n}.{name}",
                                                                         values))
            continue
        tensors = getattr(dataset, "tensors", None)
        if tensors is None:  # any map-style dataset: its rows in index order
            tensors = [torch.stack(column) for column in zip(*(
                row if isinstance(row, tuple | list) else (row,)
                for row in (dataset[i] for i in range(len(dataset)))), strict=True)]
        for index, tensor in enumerate(tensors):
            add(f"loader{number}.{index}", tensor)
    for name in sorted(buffers):
        add(name, buffers[name])
    return digest.hexdigest()


class CheckpointFolder:
    """One training's checkpoint folder, bound to the configuration and data of this run."""

    def __init__(self, folder: str | Path, config: Mapping[str, Any], data: str) -> None:
        self.folder = Path(folder)
        self.config = dict(config)
        self.config_hash = config_fingerprint(self.config)
        self.data = data

    def refuse(self, reason: str) -> InputError:
        return InputError(f"checkpoint folder {self.folder}: {reason}")

    def load(self) -> dict[str, Any] | None:
        """The checked training state, or None where the folder is new or empty."""
        if not self.folder.exists():
            return None
        if not self.folder.is_dir():
            raise self.refuse("not a folder")
        names = {p.name for p in self.folder.iterdir()}
        foreign = sorted(names - {CHECKPOINT, RECORD, *PENDING.values()})
        if foreign:
            raise self.refuse(f"holds files salesfusion did not write ({', '.join(foreign[:5])}"
                              f"{', ...' if len(foreign) > 5 else ''}): give an empty folder "
                              f"or one an earlier run of this model wrote")
        odd = sorted(n for n in names if (self.folder / n).is_symlink()
                     or not (self.folder / n).is_file())
        if odd:  # a link or a FIFO could make reading it hang or reach outside the folder
            raise self.refuse(f"{odd[0]} is not a plain file")
        checkpoint = self.folder / CHECKPOINT
        if PENDING[RECORD] in names and checkpoint.is_file():
            self._complete_save(checkpoint)
        if not checkpoint.is_file():
            if (self.folder / RECORD).exists():
                raise self.refuse(f"{RECORD} is there but {CHECKPOINT} is missing: remove the "
                                  f"folder to start over")
            return None  # empty, or a save killed before its checkpoint was in place
        if not (self.folder / RECORD).is_file():
            raise self.refuse(f"{CHECKPOINT} has no record {RECORD} written beside it by "
                              f"salesfusion: refusing to load it")
        record = self._record(self.folder / RECORD)
        self._check_record(record)
        content = checkpoint.read_bytes()
        if hashlib.sha256(content).hexdigest() != record["sha256"]:
            raise self.refuse(f"{CHECKPOINT} does not match the SHA-256 recorded in {RECORD} "
                              f"(changed since it was written): refusing to load it")
        try:
            with warnings.catch_warnings():  # torch warns about the pickles it then refuses
                warnings.simplefilter("ignore")
                state = torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
        except Exception as error:  # any unreadable file gets the same refusal
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise self.refuse(f"{CHECKPOINT} is not a tensors-only training checkpoint "
                              f"({reason[:200]})") from None
        if not (isinstance(state, dict) and set(state) == STATE_KEYS
                and all(isinstance(state[k], dict) for k in ("module", "best_weights", "random"))
                and all(isinstance(state[k], list) for k in ("optimizers", "schedulers"))
                and isinstance(state["early_stopping"], dict | None)):
            raise self.refuse(f"{CHECKPOINT} does not hold a salesfusion training state")
        if state["epoch"] != record["epoch"]:
            raise self.refuse(f"{CHECKPOINT} holds epoch {state['epoch']}, its record "
                              f"{record['epoch']}")
        return state

    def _complete_save(self, checkpoint: Path) -> None:
        """Finish a save killed between its two renames, if the pending record describes the
        checkpoint now in place; otherwise it is stale (the next save overwrites it)."""
        pending = self.folder / PENDING[RECORD]
        try:
            sha = json.loads(pending.read_text(encoding="utf-8")).get("sha256")
        except (OSError, ValueError, AttributeError, RecursionError):
            sha = None
        if sha == hashlib.sha256(checkpoint.read_bytes()).hexdigest():
            os.replace(pending, self.folder / RECORD)

    def _record(self, path: Path) -> dict[str, Any]:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
            raise self.refuse(f"{RECORD} is not valid JSON ({error!s:.200})") from None
        if (not isinstance(record, dict) or record.get("format") != FORMAT
                or not all(isinstance(record.get(k), str)
                           for k in ("config_hash", "data", "sha256"))
                or not isinstance(record.get("config"), dict)
                or not isinstance(record.get("epoch"), int)):
            raise self.refuse(f"{RECORD} is not a salesfusion checkpoint record (format "
                              f"{FORMAT})")
        return record

    def _check_record(self, record: dict[str, Any]) -> None:
        if record["config_hash"] != self.config_hash:
            then, now = record["config"], self.config
            changed = sorted(k for k in then.keys() | now.keys() if then.get(k) != now.get(k))
            shown = ", ".join(f"{k} {then.get(k)!r} -> {now.get(k)!r}" for k in changed[:4])
            raise self.refuse(f"written by a different configuration ({shown or 'edited record'}"
                              f"): use a new folder, or the configuration that wrote it")
        if record["data"] != self.data:
            raise self.refuse(f"written for different data (fingerprint {record['data'][:12]}, "
                              f"this run {self.data[:12]}): use a new folder for new data")

    def prepare(self) -> None:
        """Create the folder before training, so that an unwritable path fails at once."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise self.refuse(f"cannot be created ({error.strerror or error})") from None

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` and its record, each complete before it replaces the previous one."""
        try:
            self._save(state)
        except OSError as error:
            raise self.refuse(f"cannot be written ({error.strerror or error})") from None

    def _save(self, state: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        content = buffer.getvalue()
        record = {"format": FORMAT, "epoch": state["epoch"], "config_hash": self.config_hash,
                  "config": self.config, "data": self.data,
                  "sha256": hashlib.sha256(content).hexdigest()}
        _write(self.folder / PENDING[CHECKPOINT], content)
        _write(self.folder / PENDING[RECORD],
               json.dumps(record, sort_keys=True, default=str).encode())
        os.replace(self.folder / PENDING[CHECKPOINT], self.folder / CHECKPOINT)
        os.replace(self.folder / PENDING[RECORD], self.folder / RECORD)


def _write(path: Path, content: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
