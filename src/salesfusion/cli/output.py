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

Forecasts may also be written as a partitioned dataset (``--out-format partitioned``,
``data.partitioned``): ``forecasts/`` with its parts and ``_partitions.json`` beside it, in a run
folder (``backtest``) or in a folder that may hold other things (``staged_dataset``, ``predict``:
only ``forecasts/`` and the manifest are the output, and ``forecasts/`` holds nothing else, so
reading it as a dataset never mixes in stale or foreign parts). The manifest is published last.

A killed run leaves its staging folder (``.<name>.salesfusion-staging-<pid>-<random>``: the
name is the mark, since a file inside would become part of the output); the next run writing
beside it removes those whose process is gone.
"""

from __future__ import annotations

import errno
import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from salesfusion.cli.output_record import RECORD, read_record, refuse_inside_artefacts
from salesfusion.data.partitioned import MANIFEST, write_dataset
from salesfusion.errors import InputError
from salesfusion.models.artefact import sha256_file
from salesfusion.staging import staging_folder

OUT_FORMATS = ("parquet", "partitioned")
DATASET = "forecasts"  # the partitioned dataset's folder under --out
OutFormat = Annotated[str, typer.Option(
    "--out-format", help="parquet: one forecasts.parquet; partitioned: a folder --out holding "
                         "forecasts/market=M/bucket=K/part-0.parquet (a series' rows in one "
                         "file; bucket: a stable hash of the item id) and _partitions.json.")]


@contextmanager
def staged_run(out: Path) -> Iterator[Path]:
    """A staging folder whose files (sub-folders included) become the run folder ``out`` if
    the block succeeds."""
    out = out.resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: output path exists and is not a folder")
    refuse_inside_artefacts(out.parent, out)
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
    refuse_inside_artefacts(out.parent, out)
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
    refuse_inside_artefacts(folder, folder)
    with _staging(folder) as staging:
        yield staging
        _publish(staging, folder, run=False)


@contextmanager
def staged_dataset(out: Path, dataset: str = DATASET) -> Iterator[Path]:
    """A staging folder for ``out/<dataset>/...`` and ``out/_partitions.json``. The folder
    ``out`` may hold anything else; ``out/<dataset>`` must hold only salesfusion's own files,
    and those an earlier write left that this one does not write are removed."""
    out = out.resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: output path exists and is not a folder (a partitioned output "
                         f"is a folder)")
    refuse_inside_artefacts(out, out)
    _refuse_foreign(out, [MANIFEST, *_dataset_files(out, dataset)])
    with _staging(out) as staging:
        yield staging
        _publish(staging, out, run=True, scope=dataset)


def _dataset_files(out: Path, dataset: str) -> list[str]:
    """Every file under ``out/<dataset>`` (or the name itself when it is not a folder)."""
    folder = out / dataset
    if (folder.exists() or folder.is_symlink()) and (folder.is_symlink() or not folder.is_dir()):
        return [dataset]
    return [p.relative_to(out).as_posix() for p in _files(folder)] if folder.is_dir() else []


def check_out_format(out_format: str, out: Path | None, single_file: bool = False) -> None:
    """Refuse an unknown ``--out-format``, or ``partitioned`` without ``--out``; with
    ``single_file`` (predict), a parquet ``--out`` must be named .parquet."""
    if out_format not in OUT_FORMATS:
        raise InputError(f"--out-format '{out_format}': use one of {', '.join(OUT_FORMATS)}")
    if out_format == "partitioned" and out is None:
        raise InputError("--out-format partitioned writes a folder: give --out FOLDER")
    if single_file and out_format == "parquet" and out is not None \
            and out.suffix.lower() not in (".parquet", ".pq"):
        raise InputError(f"{out}: forecasts are written as Parquet; use a .parquet name (or "
                         f"--out-format partitioned for a folder)")


@contextmanager
def staged_forecasts(out: Path, out_format: str) -> Iterator[Callable[[pl.DataFrame], None]]:
    """A writer of the forecasts frame that publishes ``out`` if the block succeeds: the
    Parquet file ``out`` (``staged_file``), or the partitioned dataset in the folder ``out``
    (``staged_dataset``)."""
    if out_format == "partitioned":
        with staged_dataset(out) as staging:

            def write(frame: pl.DataFrame) -> None:
                write_dataset(frame, staging, DATASET)

            yield write
    else:
        with staged_file(out) as staged:
            yield lambda frame: frame.write_parquet(staged)


def _ours(folder: Path, name: str, record: dict[str, str]) -> bool:
    path = folder / name
    return path.is_file() and not path.is_symlink() and record.get(name) == sha256_file(path)


def _refuse_foreign(folder: Path, names: list[str]) -> None:
    """Refuse when any of ``names`` exists in ``folder`` and salesfusion did not write it."""
    record = read_record(folder) if folder.is_dir() else {}
    for name in sorted(names):
        path = folder / name
        if (path.exists() or path.is_symlink()) and not _ours(folder, name, record):
            kind = "folder" if path.is_dir() else "file"  # a folder: never ours
            raise InputError(f"{path}: a {kind} salesfusion did not write (or that "
                             f"changed since) is in the way of the output; it is left alone: "
                             f"choose another --out or move it")


@contextmanager
def _staging(out: Path) -> Iterator[Path]:
    # The folders staging creates above the output: removed again (when still empty) if the
    # command fails, so a failure leaves no trace.
    created = [folder for folder in (out.parent, *out.parent.parents) if not folder.exists()]
    try:
        staging = staging_folder(out)
    except OSError as exc:
        _remove_empty(created)
        raise InputError(f"{out}: cannot write the output there ({exc.strerror or exc})") \
            from None
    published = False
    try:
        yield staging
        published = True
    except Exception as exc:
        if not _disk_full(exc):
            raise
        where = getattr(exc, "filename", None) or out
        raise InputError(f"{where}: no space left on the device while writing the output; "
                         f"nothing of it was kept") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # ours: made above, emptied on success
        if not published:
            _remove_empty(created)


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) that are empty; each was created by this command."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty, or already gone: everything above stays too


def _disk_full(exc: BaseException) -> bool:
    """ENOSPC, raised as an OSError or wrapped by a writer (polars reports the OS error in its
    own exception's text, "... (os error 28)")."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return f"(os error {errno.ENOSPC})" in text or "No space left on device" in text


def _publish(staging: Path, folder: Path, *, run: bool, scope: str | None = None) -> None:
    """Move the staged files into ``folder`` and record them. ``run``: remove the earlier
    output's files this one does not write (only those under ``scope``, when given)."""
    # A manifest goes last, so that its presence means the rest of the output is in place.
    written = sorted((p.relative_to(staging).as_posix() for p in _files(staging)),
                     key=lambda name: name.rsplit("/", 1)[-1] == MANIFEST)
    # Checked again at publication: the folder may have changed while the command ran.
    record = read_record(folder) if folder.is_dir() else {}
    _refuse_foreign(folder, written + (_dataset_files(folder, scope) if scope else []))
    stale = [name for name in set(record) - set(written) if run
             and (scope is None or name.startswith(f"{scope}/"))]
    kept = {name: digest for name, digest in record.items() if name not in stale}
    new_record = {**kept, **{name: sha256_file(staging / name) for name in written}}
    try:
        # The new record is written before anything moves: a full disk stops the publication
        # while the folder is still as it was.
        pending = staging / RECORD
        pending.write_text(json.dumps({"files": new_record}, indent=1, sort_keys=True))
        folder.mkdir(parents=True, exist_ok=True)
        for name in stale:
            if _ours(folder, name, record):
                (folder / name).unlink()  # an earlier run's result: must not mix
                _prune_empty(folder, (folder / name).parent)
        for name in written:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).replace(folder / name)
        pending.replace(folder / RECORD)  # replaces a link itself, never what it points to
    except OSError as exc:
        pending.unlink(missing_ok=True)
        raise InputError(f"{folder}: cannot write the output there ({exc.strerror or exc})") \
            from None


def _prune_empty(root: Path, folder: Path) -> None:
    """Remove ``folder`` and its parents up to ``root`` while they are empty (emptied by the
    removal of our own files)."""
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
