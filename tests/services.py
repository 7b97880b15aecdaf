"""Private PostgreSQL servers for the tests: Debian's own binaries, started in a temp dir on a
free loopback port, stopped after. As root, PostgreSQL refuses to run, so `initdb` and
`postgres` then run as the `postgres` system user."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import IO

import psycopg

from tests.conftest import free_port


def _postgres_bin() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not versions:
        raise RuntimeError("PostgreSQL is not installed: `apt-get install postgresql`")
    return Path(versions[-1]).parent


def _as_postgres(args: list[str]) -> list[str]:
    if os.getuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


class PostgresServer:
    """One PostgreSQL cluster; `database()` makes a fresh empty database on it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "pgdata"
        self.port = free_port()
        self.bin = _postgres_bin()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        if not self.data.exists():
            subprocess.run(
                _as_postgres(
                    [
                        str(self.bin / "initdb"),
                        *("-D", str(self.data), "-U", "live", "-A", "trust"),
                        *("--no-sync", "-E", "UTF8", "--locale", "C"),
                    ]
                ),
                check=True,
                capture_output=True,
            )
        with open(self.root / "postgres.log", "ab") as log:
            self.proc = self._spawn(log)
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"PostgreSQL did not start:\n{(self.root / 'postgres.log').read_text()}"
                    ) from None
                time.sleep(0.1)

    def _spawn(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            _as_postgres(
                [
                    str(self.bin / "postgres"),
                    *("-D", str(self.data), "-p", str(self.port), "-k", str(self.root)),
                    *("-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"),
                    *("-c", "max_connections=200"),
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        """A fast shutdown: the clients' connections are cut, as when a database goes away."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None

    def url(self, database: str) -> str:
        return f"postgresql://live@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new, empty database; its address."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


class RedisServer:
    """A private Redis, without persistence: a restart loses everything, as an outage may."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        redis_server = shutil.which("redis-server") or "/usr/bin/redis-server"
        with open(self.root / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    redis_server,
                    *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root)),
                    *("--save", "", "--appendonly", "no"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Redis did not start:\n{(self.root / 'redis.log').read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None
