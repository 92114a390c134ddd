"""Staging folders: output is written beside its destination and renamed into place once it
is complete, so a killed process leaves no half-written result.

A staging folder is named ``.<destination name>.salesfusion-staging-<pid>-<random>``: the name
is the mark (a file inside would become part of the output). The next writer to the same
destination removes those whose process is gone, and nothing else.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

STAGING = ".salesfusion-staging-"  # between the destination's name and the writer's pid


def staging_folder(destination: Path) -> Path:
    """A new staging folder beside ``destination``, after removing abandoned ones."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(destination)
    return Path(tempfile.mkdtemp(prefix=f".{destination.name}{STAGING}{os.getpid()}-",
                                 dir=destination.parent))


def remove_abandoned(destination: Path) -> None:
    """Staging folders of writers killed before they published (their process is gone)."""
    for folder in destination.parent.glob(f".{destination.name}{STAGING}*"):
        # Ours only: named as ``staging_folder`` names them (pid, "-", mkdtemp's random part),
        # a real folder (never a link), and its writer gone.
        pid, _, rest = folder.name.removeprefix(f".{destination.name}{STAGING}").partition("-")
        if (pid.isdigit() and re.fullmatch(r"[a-z0-9_]+", rest) and not folder.is_symlink()
                and folder.is_dir() and not _alive(int(pid))):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
