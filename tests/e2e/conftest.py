"""A real `voxswitch serve` process on a free port, as a user would run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.support.throwaway import free_port

VOXSWITCH = str(Path(sys.executable).with_name("voxswitch"))


@dataclass
class Server:
    url: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path

    def cli(self, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [VOXSWITCH, *args], env={**self.env, **(extra_env or {})}, capture_output=True, text=True, timeout=60
        )


def server_env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXSWITCH_")}
    env.update(
        VOXSWITCH_DATA_DIR=str(data_dir),
        VOXSWITCH_HTTP_HOST="127.0.0.1",
        VOXSWITCH_HTTP_PORT=str(port),
        VOXSWITCH_ADMIN_EMAIL=ADMIN_EMAIL,
        VOXSWITCH_ADMIN_PASSWORD=ADMIN_PASSWORD,
        VOXSWITCH_ARGON2_TIME_COST="1",
        VOXSWITCH_ARGON2_MEMORY_KIB="1024",
        VOXSWITCH_RATE_LIMITS_ENABLED="false",
        VOXSWITCH_SIP_HOST="127.0.0.1",
        VOXSWITCH_SIP_PORT=str(free_port()),
        VOXSWITCH_SIP_TLS_PORT=str(free_port()),
        VOXSWITCH_TWILIO_API_BASE_URL="http://127.0.0.1:9",  # a fuzzed config must not reach Twilio
    )
    return env


def start_server(tmp: Path, **extra: str) -> Server:
    port = free_port()
    env = {**server_env(tmp / "data", port), **extra}
    log = tmp / "server.log"
    proc = subprocess.Popen([VOXSWITCH, "serve"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    return Server(url, env, proc, log)
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"no /health after 30s:\n{log.read_text()[-3000:]}")
    except BaseException:  # also pytest-timeout firing while we wait: no server outlives its test
        proc.kill()
        proc.wait()
        raise


def stop_server(server: Server) -> int:
    server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
        raise


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = start_server(tmp_path)
    try:
        yield s
    finally:
        if s.proc.poll() is None:
            stop_server(s)
