"""A real, throw-away PostgreSQL server for tests: ``postgres_url`` starts one per test module.

initdb refuses to run as root, so as root the server's programs run as the ``postgres`` system
user (``runuser``) in a folder it owns; as any other user they run directly. The server listens
on 127.0.0.1 only, on a free port, with a socket in its own folder, and its one role logs in
with a password over TCP (scram-sha-256), as a deployed database would be reached.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import postgres_bin

USER = "salesfusion"
PASSWORD = "s3cret-Pw_for/tests"  # has URL-special characters: masking must cope with them
DATABASE = "shop"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(argv: list[str], as_postgres: bool) -> None:
    command = ["runuser", "-u", "postgres", "--", *argv] if as_postgres else argv
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): "
                           f"{done.stderr.strip() or done.stdout.strip()}")


class Server:
    """One running server; ``url`` connects as the password role to database ``shop``."""

    def __init__(self) -> None:
        self.bin = Path(postgres_bin())
        self.as_postgres = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="salesfusion-pg-"))
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self.data = self.root / "data"
        self.port = 0

    def start(self) -> str:
        password_file = self.root / "password"
        password_file.write_text(PASSWORD + "\n")
        if self.as_postgres:
            shutil.chown(password_file, "postgres", "postgres")
        _run([str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--auth=scram-sha-256",
              f"--pwfile={password_file}", "--no-sync", "-E", "UTF8", "--locale=C"],
             self.as_postgres)
        options = (f"-c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
                   f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        for _attempt in range(3):  # another process may take the free port before the server
            self.port = _free_port()
            try:
                _run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                      str(self.root / "server.log"), "-w", "-t", "60",
                      "-o", f"-p {self.port} {options}", "start"], self.as_postgres)
                break
            except RuntimeError:
                if _attempt == 2:
                    raise
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        return self.url()

    def url(self, database: str = DATABASE) -> str:
        from urllib.parse import quote

        return (f"postgresql://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{self.port}/"
                f"{database}")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                _run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                      "stop"], self.as_postgres)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """The URL of a fresh PostgreSQL server, stopped and removed after the module's tests."""
    server = Server()
    try:
        yield server.start()
    finally:
        server.stop()
