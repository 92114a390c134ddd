"""Staged output that never loses the user's files.

A command writes into a staging folder beside its output and publishes only once everything has
succeeded, so bad input leaves nothing behind. Publishing keeps a record of what salesfusion
wrote, ``.salesfusion-output.json`` in the output folder (each file's SHA-256), and follows it:

- a file or folder in the way that the record does not list, or that changed since salesfusion
  wrote it, is the user's: the command is refused (exit 2) and nothing is touched;
- a run folder (``staged_run``: ``backtest``, ``train``) holds one run: files of an earlier run
  that this one does not write are removed, but only those the record lists unchanged, so old
  and new results never mix, and a run folder holding anything else is refused;
- a file output (``staged_file``: ``data build``, ``predict``, ``encode``) shares its folder with
  anything: only the file itself is replaced, and only if salesfusion wrote it.

A killed run leaves its staging folder (``.<name>.salesfusion-staging-<pid>-<random>``: the
name is the mark, since a file inside would become part of the output); the next run writing
beside it removes those whose process is gone.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from salesfusion.errors import InputError
from salesfusion.models.artefact import sha256_file
from salesfusion.staging import staging_folder

RECORD = ".salesfusion-output.json"


@contextmanager
def staged_run(out: Path) -> Iterator[Path]:
    """A staging folder whose files (sub-folders included) become the run folder ``out`` if
    the block succeeds."""
    out = out.resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: output path exists and is not a folder")
    if out.is_dir():
        _refuse_foreign(out, [p.relative_to(out).as_posix() for p in _files(out)])
    with _staging(out) as staging:
        yield staging
        _publish(staging, out, run=True)


def _files(folder: Path) -> list[Path]:
    """Every file and link under ``folder`` but the record (links count as the user's)."""
    return sorted(p for p in folder.rglob("*") if (p.is_file() or p.is_symlink())
                  and p != folder / RECORD)


@contextmanager
def staged_file(out: Path) -> Iterator[Path]:
    """A staging path whose file becomes ``out`` if the block succeeds."""
    out = out.resolve()
    _refuse_foreign(out.parent, [out.name])
    with _staging(out) as staging:
        yield staging / out.name
        _publish(staging, out.parent, run=False)


@contextmanager
def staged_files(folder: Path) -> Iterator[Path]:
    """A staging folder whose files (sub-folders included) join ``folder`` if the block
    succeeds, each replacing only salesfusion's own earlier file; other files of ``folder`` are
    left as they are (a search folder's live log, for one)."""
    folder = folder.resolve()
    with _staging(folder) as staging:
        yield staging
        _publish(staging, folder, run=False)


def _record(folder: Path) -> dict[str, str]:
    path = folder / RECORD
    try:
        files = json.loads(path.read_text())["files"] if path.is_file() else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # an unreadable record vouches for nothing
    return files if isinstance(files, dict) else {}


def _ours(folder: Path, name: str, record: dict[str, str]) -> bool:
    path = folder / name
    return path.is_file() and not path.is_symlink() and record.get(name) == sha256_file(path)


def _refuse_foreign(folder: Path, names: list[str]) -> None:
    """Refuse when any of ``names`` exists in ``folder`` and salesfusion did not write it."""
    record = _record(folder) if folder.is_dir() else {}
    for name in sorted(names):
        if (folder / name).exists() and not _ours(folder, name, record):
            kind = "folder" if (folder / name).is_dir() else "file"  # a folder: never ours
            raise InputError(f"{folder / name}: a {kind} salesfusion did not write (or that "
                             f"changed since) is in the way of the output; it is left alone: "
                             f"choose another --out or move it")


@contextmanager
def _staging(out: Path) -> Iterator[Path]:
    try:
        staging = staging_folder(out)
    except OSError as exc:
        raise InputError(f"{out}: cannot write the output there ({exc.strerror or exc})") \
            from None
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # ours: made above, emptied on success


def _publish(staging: Path, folder: Path, *, run: bool) -> None:
    written = [p.relative_to(staging).as_posix() for p in _files(staging)]
    record = _record(folder)
    # Checked again at publication: the folder may have changed while the command ran.
    _refuse_foreign(folder, written)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if run:
            for name in set(record) - set(written):
                if _ours(folder, name, record):
                    (folder / name).unlink()  # an earlier run's result: must not mix
                    _prune_empty(folder, (folder / name).parent)
                record.pop(name, None)
        for name in written:
            record[name] = sha256_file(staging / name)
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).replace(folder / name)
        (folder / RECORD).write_text(json.dumps({"files": record}, indent=1, sort_keys=True))
    except OSError as exc:
        raise InputError(f"{folder}: cannot write the output there ({exc.strerror or exc})") \
            from None


def _prune_empty(root: Path, folder: Path) -> None:
    """Remove ``folder`` and its parents up to ``root`` while they are empty (emptied by the
    removal of our own files)."""
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
