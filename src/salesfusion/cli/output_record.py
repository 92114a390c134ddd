"""The record of what salesfusion wrote into an output folder, and what it may never write into.

``.salesfusion-output.json`` lists each file salesfusion published in the folder with its
SHA-256; only a listed, unchanged file may be replaced or removed. The record itself is input
like any other: anyone can write one, hash included, so its entries are trusted only as plain
relative paths (no ``..``, no absolute path, no link on the way) inside the folder. A record
naming anything else is refused whole, before anything is touched.

Outputs are also refused inside a saved model's folder or an embedding cache: a file those do
not list makes the model unloadable (its manifest lists every file) or mixes into the cache.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from salesfusion.errors import InputError

RECORD = ".salesfusion-output.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_RECORD_BYTES = 16 * 1024 * 1024  # a record lists files, never this much
MODEL_MANIFEST = "manifest.json"  # models.artefact.MANIFEST; read here without loading models
CACHE_PART = re.compile(r"part-[0-9a-f]{32}\.parquet")


def read_record(folder: Path) -> dict[str, str]:
    """The record of ``folder``: file name -> SHA-256. An unreadable record vouches for nothing
    (empty); a readable one naming a path outside the folder is refused (InputError)."""
    path = folder / RECORD
    if path.is_symlink():
        raise _foreign(path, "is a link")
    if not path.is_file():
        return {}
    try:
        if path.stat().st_size > _MAX_RECORD_BYTES:
            return {}
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError):
        return {}
    if not isinstance(files, dict):
        return {}
    for name, digest in files.items():
        if not inside(folder, name):
            raise _foreign(path, f"lists {name[:120]!r}, which is not a plain path inside "
                                 f"{folder}")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise _foreign(path, f"gives {name!r} no SHA-256")
    return files


def _foreign(path: Path, why: str) -> InputError:
    return InputError(f"{path}: {why}; salesfusion did not write this record, so it deletes "
                      f"and replaces nothing in that folder: choose another --out or remove "
                      f"the record")


def inside(folder: Path, name: object) -> bool:
    """Whether ``name`` is a plain relative path (``a/b.parquet``) that stays inside
    ``folder`` without following a link on the way."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        return False
    parts = name.split("/")
    if name.startswith("/") or any(part in ("", ".", "..") for part in parts):
        return False
    current = folder
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            return False
    return True


def refuse_inside_artefacts(folder: Path, what: Path) -> None:
    """Refuse writing ``what`` when ``folder`` (where it goes) or a folder above it is a saved
    model or an embedding cache."""
    for candidate in (folder, *folder.parents):
        if _is_model_folder(candidate):
            raise InputError(f"{what}: is inside the saved model {candidate}, whose manifest "
                             f"lists every file it holds (another file makes it unloadable); "
                             f"write the output elsewhere")
        if _is_cache_folder(candidate):
            raise InputError(f"{what}: is inside the embedding cache {candidate}; write the "
                             f"output elsewhere")


def _is_model_folder(folder: Path) -> bool:
    manifest = folder / MODEL_MANIFEST
    try:
        if not manifest.is_file() or manifest.stat().st_size > _MAX_RECORD_BYTES:
            return False
        raw = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(raw, dict) and "format_version" in raw and "model" in raw


def _is_cache_folder(folder: Path) -> bool:
    """A cache root carries the cache's mark; a namespace folder holds its parts."""
    from salesfusion.encoders.cache import CACHE_MARK

    if (folder / CACHE_MARK).is_file():
        return True
    return folder.is_dir() and any(CACHE_PART.fullmatch(path.name)
                                   for path in folder.glob("part-*.parquet"))
