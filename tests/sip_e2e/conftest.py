"""A whole Voxswitch (app lifespan: store, engine, SIP listeners) on free loopback ports, plus a
small raw-socket SIP client for the tests that play an attacker rather than a phone."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.throwaway import free_port
from voxswitch.sip.message import Response, parse_message


@dataclass
class Voxswitch:
    app: Any
    host: str
    udp: int
    tls: int

    @property
    def state(self) -> Any:
        return self.app.state.vox

    async def device(self, username: str, password: str) -> int:
        device = await self.state.devices.create(name=f"Phone {username}", username=username, password=password)
        return int(device.id)


def free_sip_port() -> int:
    """A port free on both UDP and TCP (SIP listens on both with one number)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free SIP port")


@pytest.fixture
def sip_settings(make_settings: Callable[..., Any]) -> Callable[..., Any]:
    def make(**extra: Any) -> Any:
        base = {
            "sip_enabled": True,
            "sip_host": "127.0.0.1",
            "sip_port": free_sip_port(),
            "sip_tls_port": free_port(),
        }
        base.update(extra)
        return make_settings(**base)

    return make


async def running(settings: Any) -> AsyncIterator[Voxswitch]:
    from voxswitch.api.app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        listen = app.state.vox.engine.listening
        yield Voxswitch(app, "127.0.0.1", listen["UDP"][1], listen["TLS"][1])


@pytest.fixture
async def voxswitch(sip_settings: Callable[..., Any]) -> AsyncIterator[Voxswitch]:
    async for v in running(sip_settings()):
        yield v


class RawUdpClient:
    """Sends hand-built SIP over UDP and reads what comes back (or notices that nothing does)."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def request(
        self,
        method: str,
        user: str,
        *,
        to_user: str | None = None,
        headers: list[str] = (),
        cseq: int = 1,
        call_id: str | None = None,
        body: str = "",
    ) -> bytes:
        ruri = (
            f"sip:{user}@{self.server[0]}:{self.server[1]}"
            if method != "REGISTER"
            else (f"sip:{self.server[0]}:{self.server[1]}")
        )
        to = to_user or user
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{secrets.token_hex(8)};rport",
            "Max-Forwards: 70",
            f"From: <sip:{to}@{self.server[0]}>;tag={secrets.token_hex(4)}",
            f"To: <sip:{to}@{self.server[0]}>",
            f"Call-ID: {call_id or secrets.token_hex(8)}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{to}@127.0.0.1:{self.port}>",
            *headers,
            f"Content-Length: {len(body.encode())}",
            "",
            body,
        ]
        return "\r\n".join(lines).encode()

    async def send(self, data: bytes, wait: float = 2.0) -> Response | None:
        loop = asyncio.get_running_loop()
        await loop.sock_sendto(self.sock, data, self.server)
        try:
            while True:
                raw = await asyncio.wait_for(loop.sock_recv(self.sock, 65535), wait)
                msg = parse_message(raw)
                if isinstance(msg, Response) and msg.status >= 200:
                    return msg
        except TimeoutError:
            return None
