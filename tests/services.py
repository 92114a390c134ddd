"""The system programs some tests drive (PostgreSQL, Chromium), installed by
``scripts/install_services.sh``. Under ``make test`` (which sets ``SALESFUSION_REQUIRE_SERVICES``)
a missing one fails the test; run alone, the test is skipped with the install command."""

from __future__ import annotations

import glob
import os
import shutil

import pytest

REQUIRED_ENV = "SALESFUSION_REQUIRE_SERVICES"


def _missing(what: str) -> None:
    message = f"{what} is not installed; run scripts/install_services.sh"
    if os.environ.get(REQUIRED_ENV) == "1":
        pytest.fail(message)
    pytest.skip(message)


def postgres_bin() -> str:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        _missing("PostgreSQL (initdb)")
    return os.path.dirname(found[-1])


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        _missing("Chromium")
    return path
