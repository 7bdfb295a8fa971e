"""A served Voxswitch whose trunk is SIPp, driven through the public voice-call HTTP API."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.e2e.conftest import Server, start_server, stop_server
from tests.peers.ports import free_sip_port, free_tcp_port
from tests.peers.siplog import SipMessage, read_sipp_message_log
from tests.peers.sipp import SippProcess

TRUNK_USER, TRUNK_PASSWORD, REALM = "trunkuser", "trunk-secret", "trunk.example"
FINAL = {"completed", "failed", "busy", "no_answer"}


@dataclass
class VoiceServer:
    server: Server
    token: str

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=timeout)

    def call(self, **fields: Any) -> dict[str, Any]:
        body = {"FromNumber": "12156", "Text": "Hello from Voxswitch.", **fields}
        with self.client() as c:
            r = c.post("/voice/call", json=body)
        assert r.status_code == 202, r.text
        return dict(r.json())

    def status(self, call_id: str) -> dict[str, Any]:
        with self.client() as c:
            r = c.get(f"/voice/status/{call_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait_final(self, call_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
        """Each call's status once every one of them has reached a final state."""
        deadline = time.monotonic() + timeout
        done: dict[str, dict[str, Any]] = {}
        with self.client() as c:
            while True:
                for call_id in [i for i in call_ids if i not in done]:
                    view = c.get(f"/voice/status/{call_id}").json()
                    if view["status"] in FINAL:
                        done[call_id] = view
                if len(done) == len(call_ids):
                    return done
                if time.monotonic() > deadline:
                    pending = {i: c.get(f"/voice/status/{i}").json()["status"] for i in call_ids if i not in done}
                    raise AssertionError(
                        f"{len(pending)} calls not final after {timeout}s: {list(pending.items())[:5]}"
                    )
                time.sleep(0.2)


def login(url: str) -> str:
    r = httpx.post(f"{url}/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, timeout=10)
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def trunk_env(trunk: SippProcess) -> dict[str, str]:
    host, port = trunk.address.rsplit(":", 1)
    return {
        "SIP_TRUNK_IP": host,
        "SIP_TRUNK_PORT": port,
        "SIP_USERNAME": TRUNK_USER,
        "SIP_PASSWORD": TRUNK_PASSWORD,
        "VOXSWITCH_SIP_PORT": str(free_sip_port()),
        "VOXSWITCH_SIP_TLS_PORT": str(free_tcp_port()),
        "VOXSWITCH_VOICE_POLL_SECONDS": "0.2",
        "VOXSWITCH_VOICE_RETRY_BUSY": "0",
        "VOXSWITCH_VOICE_RETRY_NO_ANSWER": "0",
        "VOXSWITCH_VOICE_RETRY_FAILED": "0",
        "VOXSWITCH_WEBHOOK_ALLOWED_HOSTS": '["127.0.0.1"]',
    }


@pytest.fixture
def voice_server(tmp_path: Path) -> Iterator[Callable[..., VoiceServer]]:
    """Start `voxswitch serve` with SIPp as its trunk (and any extra settings); stopped after."""
    started: list[Server] = []

    def start(trunk: SippProcess, **env: str) -> VoiceServer:
        server = start_server(tmp_path, **{**trunk_env(trunk), **env})
        started.append(server)
        return VoiceServer(server, login(server.url))

    yield start
    for server in started:
        if server.proc.poll() is None:
            stop_server(server)


def invites_by_number(messages: list[SipMessage]) -> dict[str, set[str]]:
    """The distinct Call-IDs of the INVITEs the trunk received, per dialled number: a challenged
    INVITE and its authenticated retry share one Call-ID, so this counts calls, not requests."""
    calls: dict[str, set[str]] = defaultdict(set)
    for m in messages:
        if m.direction == "received" and m.is_request and m.method == "INVITE":
            user = m.start_line.split()[1].split(":", 1)[1].split("@", 1)[0]
            calls[user].add(m.header("Call-ID") or "")
    return calls


def trunk_messages(trunk: SippProcess) -> list[SipMessage]:
    return read_sipp_message_log(trunk.files.messages)
