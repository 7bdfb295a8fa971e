"""Throwaway PostgreSQL and Redis servers for the test session, on free loopback ports.

The test command installs both (Debian packages); these helpers start private instances in temp
directories and stop them afterwards. Under CI a missing server is a failure, never a skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from tests.peers import availability, ports


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A free loopback port that no other helper of this process was given.

    Through :mod:`tests.peers.ports`, which remembers what it handed out: the kernel may give the same
    ephemeral port to two binds in a row, and a server started with HTTP, SIP and TLS ports from three
    separate pickers once got the same number twice and collided with itself."""
    return ports.free_udp_port() if kind == socket.SOCK_DGRAM else ports.free_sip_port()


def missing(what: str) -> NoReturn:
    """A peer or service the test command should have installed is absent: fails under CI=true
    (`tests.peers.availability`, the suite's one rule), skips elsewhere."""
    availability.missing(what, "scripts/test installs it")


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Postgres:
    port: int
    datadir: Path
    bindir: Path
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> None:
        subprocess.run(
            [
                str(self.bindir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
        )


def _as_postgres_user(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; Debian's package creates the `postgres` account.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def start_postgres() -> tuple[Postgres, subprocess.Popen[bytes]]:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        missing("PostgreSQL (Debian package postgresql)")
    bindir = Path(bins[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="vx-pg-"))
    datadir = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
    subprocess.run(
        _as_postgres_user(
            [str(bindir / "initdb"), "-D", str(datadir), "-U", user, "-A", "trust", "--no-sync", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
    )
    port = free_port()
    proc = subprocess.Popen(
        _as_postgres_user(
            [
                str(bindir / "postgres"),
                "-D",
                str(datadir),
                "-p",
                str(port),
                "-k",
                str(base),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port)
    pg = Postgres(port=port, datadir=datadir, bindir=bindir, user=user)
    for _ in range(100):  # the port opens a moment before the server accepts logins
        try:
            pg.psql("SELECT 1")
            break
        except subprocess.CalledProcessError:
            time.sleep(0.1)
    return pg, proc


def start_redis() -> tuple[int, subprocess.Popen[bytes]]:
    exe = shutil.which("redis-server")
    if exe is None:
        missing("Redis (Debian package redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port)
    return port, proc


def stop(proc: subprocess.Popen[bytes], *, remove: Path | None = None) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if remove is not None:
        shutil.rmtree(remove, ignore_errors=True)
