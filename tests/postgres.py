"""A private, throw-away PostgreSQL server for tests: `initdb` and `pg_ctl` in a temporary folder.

The cluster listens on 127.0.0.1 on a free port and keeps its unix socket in its own folder, so it
never meets a system cluster. As root, the server runs as the `postgres` OS user (it refuses root).
`private_postgres()` yields a `PostgresServer` that creates empty databases and gives their URLs;
the cluster is stopped and its folder removed on exit.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

PG_ROOT = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"


class PostgresUnavailableError(Exception):
    """PostgreSQL's server programs are not installed, or the server could not be started."""


def find_pg_bin() -> Path:
    """The newest installed PostgreSQL's bin folder (Debian's layout), or the one in
    $PATCHRING_PG_BIN."""
    override = os.environ.get("PATCHRING_PG_BIN")
    candidates = [Path(override)] if override else []
    if not override and PG_ROOT.is_dir():
        versions = sorted(
            (p for p in PG_ROOT.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
        )
        candidates += [p / "bin" for p in reversed(versions)]
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise PostgresUnavailableError(
        f"no PostgreSQL server programs (initdb, pg_ctl) in {override or f'{PG_ROOT}/*/bin'}: "
        "install the Debian package 'postgresql' (scripts/setup.sh does)"
    )


@dataclass
class PostgresServer:
    host: str
    port: int
    folder: Path
    user: str = SERVER_USER
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _cluster: _Cluster | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, prefix: str = "ledger") -> str:
        """A new empty database; returns its URL."""
        name = f"{prefix}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server at once, as a crash or an outage would (clients lose it mid-way)."""
        assert self._cluster is not None
        self._cluster.run("pg_ctl", "-D", str(self._cluster.data), "-m", "immediate", "-w", "stop")

    def start(self) -> None:
        """Start it again on the same port, with every database it had."""
        assert self._cluster is not None
        self._cluster.start_on(self.port)


@contextlib.contextmanager
def postgres_for_tests() -> Iterator[PostgresServer]:
    """A private server for a test fixture: missing server programs fail the tests under
    CI=true (they must run there) and skip them elsewhere."""
    stack = contextlib.ExitStack()
    try:
        server = stack.enter_context(private_postgres())
    except PostgresUnavailableError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL ledger tests cannot run in CI: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL ledger tests skipped: {exc}")
    with stack:
        yield server


@contextlib.contextmanager
def private_postgres() -> Iterator[PostgresServer]:
    """Initialise, start, yield and finally stop and delete a private cluster."""
    folder = Path(tempfile.mkdtemp(prefix="patchring-pg-"))
    try:
        cluster = _Cluster(find_pg_bin(), folder)
        cluster.initialise()
        port = cluster.start()
        try:
            yield PostgresServer(
                host="127.0.0.1", port=port, folder=folder, user=cluster.user, _cluster=cluster
            )
        finally:
            with contextlib.suppress(PostgresUnavailableError):  # a test may have stopped it
                cluster.run("pg_ctl", "-D", str(cluster.data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _Cluster:
    def __init__(self, bin_folder: Path, folder: Path) -> None:
        self.bin_folder = bin_folder
        self.folder = folder
        self.data = folder / "data"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                owner = pwd.getpwnam(SERVER_USER)
            except KeyError as exc:
                raise PostgresUnavailableError(f"no '{SERVER_USER}' OS user to run as") from exc
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        self.user = SERVER_USER if self.as_root else pwd.getpwuid(os.geteuid()).pw_name

    def run(self, program: str, *args: str) -> None:
        command = [str(self.bin_folder / program), *args]
        if self.as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, cwd=self.folder, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PostgresUnavailableError(
                f"{program} failed ({done.returncode}): {done.stderr.strip()}\n{tail}"
            )

    def initialise(self) -> None:
        self.run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8",
                 "--locale=C")  # fmt: skip

    def start(self) -> int:
        """Start on a free port (a few tries: another process may take the port first)."""
        problem: Exception | None = None
        for _ in range(3):
            port = _free_port()
            try:
                self.start_on(port)
            except PostgresUnavailableError as exc:
                problem = exc
                continue
            return port
        raise PostgresUnavailableError(f"the test PostgreSQL server did not start: {problem}")

    def start_on(self, port: int) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {self.folder}"
        log = str(self.folder / "server.log")
        self.run("pg_ctl", "-D", str(self.data), "-l", log, "-w", "-o", options, "start")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
