"""Voxswitch as a separate `voxswitch serve` process, with SIP accounts made by `voxswitch device add`,
for real peers (SIPp, PJSIP, baresip) to talk to over loopback."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import VOXSWITCH, Server, start_server, stop_server
from tests.peers.ports import free_sip_port, free_tcp_port
from tests.sip_e2e.conftest import sip_settings  # noqa: F401  (a fixture, shared)

PASSWORDS = {"1001": "secret-1001", "1002": "secret-1002", "1003": "secret-1003"}


@dataclass
class SipServer:
    server: Server
    udp_tcp_port: int
    tls_port: int

    def address(self, transport: str = "udp") -> str:
        return f"127.0.0.1:{self.tls_port if transport == 'tls' else self.udp_tcp_port}"

    def aor(self, user: str, transport: str = "udp") -> str:
        suffix = "" if transport == "udp" else f";transport={transport}"
        return f"sip:{user}@{self.address(transport)}{suffix}"


@pytest.fixture
def voxswitch_sip(tmp_path: Path) -> Iterator[Callable[..., SipServer]]:
    started: list[Server] = []

    def start(algorithms: list[str] | None = None, **env: str) -> SipServer:
        sip_port, tls_port = free_sip_port(), free_tcp_port()
        extra = {
            "VOXSWITCH_SIP_PORT": str(sip_port),
            "VOXSWITCH_SIP_TLS_PORT": str(tls_port),
            "VOXSWITCH_SIP_DIGEST_ALGORITHMS": json.dumps(algorithms or ["SHA-256", "MD5"]),
            **env,
        }
        data = tmp_path / "data"
        for user, password in PASSWORDS.items():
            subprocess.run(
                [VOXSWITCH, "device", "add", user, "--password", password],
                env={"VOXSWITCH_DATA_DIR": str(data), "PATH": "/usr/bin:/bin"},
                check=True,
                capture_output=True,
                timeout=60,
            )
        server = start_server(tmp_path, **extra)
        started.append(server)
        return SipServer(server, sip_port, tls_port)

    yield start
    for server in started:
        if server.proc.poll() is None:
            stop_server(server)
