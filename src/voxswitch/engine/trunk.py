"""The SIP trunk: where outbound calls go, and, when asked, a registration that keeps it reachable.

`TrunkRegistration` is a small state machine (RFC 3261 §10.2): REGISTER with digest, then refresh
before the granted expiry runs out; on failure retry with exponential backoff; on stop, remove the
binding (Expires: 0). Its state is what `/api/system/status` will report.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from enum import Enum

from voxswitch.sip.client import BuildRequest, request_with_digest
from voxswitch.sip.digest import DigestClient
from voxswitch.sip.message import Request, Response
from voxswitch.sip.resolve import ResolveError, Resolver
from voxswitch.sip.stack import RequestFailed, SipStack
from voxswitch.sip.transaction import Target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrunkConfig:
    host: str
    port: int = 5060
    transport: str = "UDP"
    username: str | None = None
    password: str | None = None
    domain: str | None = None  # the registrar domain, when not the host
    register: bool = False
    expires: int = 600

    @property
    def realm_domain(self) -> str:
        return self.domain or self.host

    def uri(self, user: str | None = None) -> str:
        transport = "" if self.transport.upper() == "UDP" else f";transport={self.transport.lower()}"
        at = f"{user}@" if user else ""
        return f"sip:{at}{self.host}:{self.port}{transport}"

    def credentials(self) -> DigestClient | None:
        return DigestClient(self.username, self.password) if self.username and self.password else None


class RegState(Enum):
    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"


_MOVES = {
    (RegState.UNREGISTERED, RegState.REGISTERING),
    (RegState.REGISTERING, RegState.REGISTERED),
    (RegState.REGISTERING, RegState.FAILED),
    (RegState.REGISTERED, RegState.REGISTERING),
    (RegState.FAILED, RegState.REGISTERING),
    (RegState.REGISTERED, RegState.UNREGISTERED),
    (RegState.REGISTERING, RegState.UNREGISTERED),
    (RegState.FAILED, RegState.UNREGISTERED),
}


class TrunkRegistration:
    MIN_RETRY = 5.0
    MAX_RETRY = 300.0

    def __init__(self, stack: SipStack, config: TrunkConfig, resolver: Resolver | None = None) -> None:
        self.stack = stack
        self.config = config
        self.resolver = resolver or Resolver()
        self.state = RegState.UNREGISTERED
        self.last_error: str | None = None
        self.registered_until: float | None = None
        self._call_id = f"{secrets.token_hex(12)}@voxswitch"
        self._cseq = 0
        self._credentials = config.credentials()
        self._task: asyncio.Task[None] | None = None
        self._target: Target | None = None

    def _move(self, new: RegState) -> None:
        if new is self.state:
            return
        if (self.state, new) not in _MOVES:
            raise RuntimeError(f"trunk registration: {self.state.name} -> {new.name}")
        self.state = new

    async def target(self) -> Target:
        """The trunk's address, resolved per RFC 3263 once and kept."""
        if self._target is None:
            c = self.config
            resolved = await self.resolver.resolve(c.uri())
            first = resolved[0]
            self._target = Target(first.transport, first.host, first.port)
        return self._target

    def _build(self, expires: int) -> BuildRequest:
        c = self.config
        user = c.username or "voxswitch"
        host, port = self.stack.transport.listen.get(c.transport.upper(), ("127.0.0.1", 5060))
        contact_transport = "" if c.transport.upper() == "UDP" else f";transport={c.transport.lower()}"

        def build(cseq: int, via: str) -> Request:
            return Request(
                "REGISTER",
                f"sip:{c.realm_domain}",
                [
                    ("Via", via),
                    ("Max-Forwards", "70"),
                    ("From", f"<sip:{user}@{c.realm_domain}>;tag={secrets.token_hex(6)}"),
                    ("To", f"<sip:{user}@{c.realm_domain}>"),
                    ("Call-ID", self._call_id),
                    ("CSeq", f"{cseq} REGISTER"),
                    ("Contact", f"<sip:{user}@{host}:{port}{contact_transport}>"),
                    ("Expires", str(expires)),
                    ("User-Agent", self.stack.user_agent),
                    ("Content-Length", "0"),
                ],
            )

        return build

    async def register_once(self, expires: int | None = None) -> Response:
        """One REGISTER exchange (answering a challenge); the final response."""
        expires = self.config.expires if expires is None else expires
        response, self._cseq = await request_with_digest(
            self.stack,
            self._build(expires),
            await self.target(),
            self._credentials,
            first_cseq=self._cseq + 1,
        )
        return response

    @staticmethod
    def granted(response: Response, asked: int) -> int:
        """The expiry the registrar granted: the Contact's expires, else Expires, else what we asked."""
        for contact in response.contact:
            if contact.expires is not None:
                return contact.expires
        return response.expires if response.expires is not None else asked

    async def run(self) -> None:
        """Keep the trunk registered until cancelled."""
        retry = self.MIN_RETRY
        while True:
            self._move(RegState.REGISTERING)
            try:
                response = await self.register_once()
            except (RequestFailed, ResolveError, OSError) as exc:
                response, error = None, f"{type(exc).__name__}: {exc}"
            else:
                error = None if 200 <= response.status < 300 else f"{response.status} {response.reason}"
            if error is None and response is not None:
                granted = self.granted(response, self.config.expires)
                self._move(RegState.REGISTERED)
                self.last_error = None
                self.registered_until = time.time() + granted
                retry = self.MIN_RETRY
                # refresh ahead of expiry: at 80 %, and never in the last few seconds (RFC 3261 §10.2.4)
                await asyncio.sleep(max(1.0, min(granted * 0.8, granted - 5)))
            else:
                self._move(RegState.FAILED)
                self.last_error = error
                self.registered_until = None
                log.warning("trunk registration failed: %s; retrying in %.0fs", error, retry)
                await asyncio.sleep(retry)
                retry = min(self.MAX_RETRY, retry * 2)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="trunk-registration")

    async def stop(self) -> None:
        """Stop refreshing and remove our binding from the registrar (best effort)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.state is RegState.REGISTERED:
            try:
                await asyncio.wait_for(self.register_once(expires=0), timeout=5)
            except (RequestFailed, TimeoutError, OSError):
                pass
        self.state = RegState.UNREGISTERED
        self.registered_until = None
