"""A real PostgreSQL 15 server for the tests, started in a temp dir on 127.0.0.1.

``postgres_server`` (session) starts one server (through ``runuser -u postgres --`` when the
tests run as root: ``initdb`` refuses root), trust auth, ``fsync=off``, and stops it at the
end; ``pg_url`` (per test) is a fresh, empty database on it. Import both fixtures into a
``conftest.py`` to use them. Missing binaries fail the tests (CI must install them:
``.ci/run`` / ``make system-deps``); ``PERSONA_SKIP_POSTGRES=1`` skips them instead, saying so.

``python tests/pg.py`` starts a server by hand and prints its URL (stop it with Ctrl-C),
for ``persona bench latency --store URL`` or ``persona migrate --to URL``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN = Path(os.environ.get("PERSONA_PG_BIN", "/usr/lib/postgresql/15/bin"))
SKIP_ENV = "PERSONA_SKIP_POSTGRES"
_AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One throw-away cluster: ``start()``, ``create_database()``, ``stop()``."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="persona-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self._opts = ""
        self._serial = itertools.count()
        self._lock = threading.Lock()

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str(BIN / args[0]), *args[1:]]
        if _AS_ROOT:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root
        )

    def start(self) -> str:
        """initdb + pg_ctl start; returns the URL of the ``postgres`` database."""
        if _AS_ROOT:
            shutil.chown(self.root, "postgres", "postgres")
        init = self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr or init.stdout}")
        for _ in range(5):  # another process may take the free port first: try another
            self.port = _free_port()
            opts = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
            )
            if self._pg_ctl_start(opts).returncode == 0:
                self._opts = opts
                return self.url("postgres")
        log = self.root / "server.log"
        raise RuntimeError(f"PostgreSQL did not start: {log.read_text()[-2000:]}")

    def _pg_ctl_start(self, opts: str) -> subprocess.CompletedProcess[str]:
        # -l: the server's output goes to a file, never to our pipes (run() would wait on them)
        log = self.root / "server.log"
        return self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(log), "-o", opts
        )  # fmt: skip

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self, prefix: str = "t") -> str:
        """A new, empty database; returns its URL."""
        with self._lock:
            name = f"{prefix}_{os.getpid()}_{next(self._serial)}"
        self.admin(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        self.admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def restart(self) -> None:
        """Stop the server (every client connection breaks; ``fast``: committed data is kept
        despite ``synchronous_commit=off``) and start it again."""
        self._run("pg_ctl", "stop", "-w", "-D", str(self.data), "-m", "fast")
        if self._pg_ctl_start(self._opts).returncode != 0:
            raise RuntimeError("PostgreSQL did not restart; see server.log")

    def stop(self) -> None:
        if self.port:
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        shutil.rmtree(self.root, ignore_errors=True)


def _require_binaries() -> None:
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: the PostgreSQL tests are skipped on purpose")
    if not (BIN / "initdb").exists():
        pytest.fail(
            f"PostgreSQL 15 is not installed ({BIN / 'initdb'} is missing): run "
            f"`make system-deps` (apt-get install postgresql-15) or set {SKIP_ENV}=1 to skip "
            "the PostgreSQL tests on purpose.",
            pytrace=False,
        )


_SHARED: dict[str, object] = {}  # one server per test process, however many conftests use it


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    _require_binaries()
    server = _SHARED.get("server")
    if isinstance(server, PostgresServer):
        yield server
        return
    server = PostgresServer()
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    _SHARED["server"] = server
    try:
        yield server
    finally:
        _SHARED.pop("server", None)
        server.stop()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for this test (dropped afterwards)."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


if __name__ == "__main__":  # pragma: no cover - a manual helper
    import signal

    def _interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    srv = PostgresServer()
    print(srv.start(), flush=True)  # noqa: T201
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
