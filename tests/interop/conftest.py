"""Voxswitch as a separate `voxswitch serve` process, with SIP accounts made by `voxswitch device add`,
for real peers (SIPp, PJSIP, baresip) to talk to over loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, start_server, stop_server
from tests.peers.ports import free_sip_port, free_tcp_port
from tests.sip_e2e.conftest import sip_settings  # noqa: F401  (a fixture, shared)

PASSWORDS = {"1001": "secret-1001", "1002": "secret-1002", "1003": "secret-1003"}

# What `voxswitch device add` does (cli.device_add: a migrated store, DeviceService.create), for
# many accounts in one interpreter: the command costs 1.5-5 s of start-up per device.
_ADD_DEVICES = """
import json, sys
from voxswitch.cli import _run

async def work(state):
    for user, password in json.loads(sys.argv[1]).items():
        await state.devices.create(name=f"Device {user}", username=user, password=password)

_run(work)
"""


@dataclass
class SipServer:
    server: Server
    udp_tcp_port: int
    tls_port: int
    passwords: dict[str, str] = field(default_factory=lambda: dict(PASSWORDS))

    def address(self, transport: str = "udp") -> str:
        return f"127.0.0.1:{self.tls_port if transport == 'tls' else self.udp_tcp_port}"

    def aor(self, user: str, transport: str = "udp") -> str:
        suffix = "" if transport == "udp" else f";transport={transport}"
        return f"sip:{user}@{self.address(transport)}{suffix}"

    def uri(self, transport: str = "udp") -> str:
        """Voxswitch itself (no user), reached over ``transport``: registrar, proxy, OPTIONS target."""
        return f"sip:{self.address(transport)};transport={transport}"


def add_devices(data_dir: Path, passwords: Mapping[str, str]) -> None:
    """Create the SIP accounts (``user -> password``) with `voxswitch device add`'s code."""
    subprocess.run(
        [sys.executable, "-c", _ADD_DEVICES, json.dumps(dict(passwords))],
        # Cheap argon2: every AppState hashes a decoy password (devices only get digest HA1s).
        env={
            "VOXSWITCH_DATA_DIR": str(data_dir),
            "VOXSWITCH_ARGON2_TIME_COST": "1",
            "VOXSWITCH_ARGON2_MEMORY_KIB": "1024",
            "PATH": "/usr/bin:/bin",
        },
        check=True,
        capture_output=True,
        timeout=60,
    )


def start_voxswitch(
    directory: Path, algorithms: list[str] | None = None, passwords: Mapping[str, str] = PASSWORDS, **env: str
) -> SipServer:
    """`voxswitch serve` in ``directory`` offering digest ``algorithms`` (in challenge order)."""
    sip_port, tls_port = free_sip_port(), free_tcp_port()
    extra = {
        "VOXSWITCH_SIP_PORT": str(sip_port),
        "VOXSWITCH_SIP_TLS_PORT": str(tls_port),
        "VOXSWITCH_SIP_DIGEST_ALGORITHMS": json.dumps(algorithms or ["SHA-256", "MD5"]),
        **env,
    }
    add_devices(directory / "data", passwords)
    return SipServer(start_server(directory, **extra), sip_port, tls_port, dict(passwords))


def stop_voxswitch(vx: SipServer) -> None:
    if vx.server.proc.poll() is None:
        stop_server(vx.server)


@pytest.fixture
def voxswitch_sip(tmp_path: Path) -> Iterator[Callable[..., SipServer]]:
    started: list[SipServer] = []

    def start(algorithms: list[str] | None = None, **env: str) -> SipServer:
        started.append(start_voxswitch(tmp_path, algorithms, **env))
        return started[-1]

    yield start
    for vx in started:
        stop_voxswitch(vx)
