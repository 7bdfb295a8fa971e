"""The asyncio shell around the sans-I/O SIP core: transport in, transactions, one timer, handler out.

Every input follows the same path (DESIGN house rule 1): bytes from the transport are parsed and
validated, fed to the `TransactionLayer`, the resulting actions are carried out (send, deliver to
the handler, finish a waiting request), and the single timer is re-armed at the layer's next
deadline. The handler — the transaction user, e.g. Voxswitch's registrar and call engine — sees
requests with their server transaction and answers through `respond`; it places requests with
`request`, which resolves to the final response.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from voxswitch.sip.errors import SipParseError
from voxswitch.sip.message import Request, Response, SipMessage, build_response, error_response, validate
from voxswitch.sip.transaction import (
    MAGIC_COOKIE,
    Action,
    Deliver,
    Merged,
    Send,
    ServerTransaction,
    Target,
    Terminated,
    Timeout,
    Timers,
    TransactionLayer,
    TransportFailed,
    client_key,
)
from voxswitch.sip.transport import SipTransport, TransportLimits

log = logging.getLogger(__name__)


class SipHandler(Protocol):
    """The transaction user: what Voxswitch does with requests that reach it."""

    def on_request(self, txn: ServerTransaction | None, request: Request, source: Target) -> None:
        """A new request; `txn` is None only for the ACK of a 2xx (end to end, §13.2.2.4)."""

    def on_stray_response(self, response: Response, source: Target) -> None:
        """A response no client transaction claims: a 2xx retransmission after Accepted ended."""


class RequestFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Pending:
    future: asyncio.Future[Response]
    on_provisional: Callable[[Response], None] | None


def new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(10)


def ack_for_non_2xx(request: Request, response: Response) -> Request:
    """§17.1.1.3: the ACK a client transaction sends for a 3xx-6xx final response."""
    headers: list[tuple[str, str]] = [("Via", str(request.vias[0]))]
    for name in ("Route",):
        headers.extend((name, value) for value in request.get_all(name))
    headers += [
        ("Max-Forwards", "70"),
        ("From", request.get("from") or ""),
        ("To", response.get("to") or ""),
        ("Call-ID", request.call_id),
        ("CSeq", f"{request.cseq.seq} ACK"),
        ("Content-Length", "0"),
    ]
    return Request("ACK", request.uri, headers)


def response_target(request: Request, source: Target) -> Target:
    """§18.2.2 with RFC 3581 §4: where responses to `request` go."""
    if source.reliable:
        return source  # back on the connection it came on (the transport reconnects if it is gone)
    via = request.top_via
    if via is None:
        return source
    if via.maddr:
        return Target(source.transport, via.maddr, via.port or 5060)
    host = via.received or via.host
    port = via.rport or via.port or 5060
    if host == source.host and port == source.port:
        return source  # the usual case: the Via names where the request came from
    return Target(source.transport, host, port)


def stamp_received(request: Request, source: Target) -> None:
    """§18.2.1 and RFC 3581 §4: record where the request really came from in its top Via."""
    via = request.top_via
    if via is None:
        return
    rport = via.rport_requested
    if not rport and via.host.strip("[]") == source.host:
        return  # the usual case: nothing to add
    stamped = via.with_param("received", source.host)
    if rport:
        stamped = stamped.with_param("rport", str(source.port))
    request.pop_via()
    request.add("Via", str(stamped), first=True)


class SipStack:
    def __init__(
        self,
        handler: SipHandler,
        *,
        timers: Timers | None = None,
        limits: TransportLimits | None = None,
        client_ssl: ssl.SSLContext | None = None,
        user_agent: str = "Voxswitch",
        drop: Callable[[Target], bool] | None = None,
    ) -> None:
        self.handler = handler
        self.user_agent = user_agent
        self.layer = TransactionLayer(timers, ack_builder=ack_for_non_2xx)
        self.transport = SipTransport(
            self._on_message, self._on_invalid, self._on_send_failed, limits=limits, client_ssl=client_ssl
        )
        self._drop = drop  # e.g. banned sources: dropped before parsing costs anything more
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stats = {"received": 0, "invalid": 0, "sent": 0}

    # lifecycle -----------------------------------------------------------------------------------

    async def start(
        self,
        *,
        udp: tuple[str, int] | None = None,
        tcp: tuple[str, int] | None = None,
        tls: tuple[str, int, ssl.SSLContext] | None = None,
    ) -> dict[str, tuple[str, int]]:
        self._loop = asyncio.get_running_loop()
        if udp:
            await self.transport.start_udp(*udp)
        if tcp:
            await self.transport.start_stream("TCP", *tcp)
        if tls:
            host, port, context = tls
            await self.transport.start_stream("TLS", host, port, context)
        return dict(self.transport.listen)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        await self.transport.close()

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    # the core loop -------------------------------------------------------------------------------

    def _on_message(self, msg: SipMessage, source: Target) -> None:
        if self._drop is not None and self._drop(source):
            return
        self.stats["received"] += 1
        try:
            validate(msg, registrar=True)
        except SipParseError as exc:
            self._on_invalid(b"", exc, source)
            return
        if isinstance(msg, Request):
            stamp_received(msg, source)
            source = response_target(msg, source)
        self._run(self.layer.receive(msg, source, self.now()))

    def _on_invalid(self, data: bytes, error: SipParseError, source: Target) -> None:
        self.stats["invalid"] += 1
        if self._drop is not None and self._drop(source):
            return
        response = error_response(error)
        if response is not None:  # RFC 4475: a 400 whose reason names the fault, when one can be routed
            self.transport.send(response, source)
        log.debug("refused SIP message from %s:%s: %s", source.host, source.port, error)

    def _on_send_failed(self, message: SipMessage, target: Target, exc: Exception) -> None:
        log.info("SIP send to %s:%s/%s failed: %s", target.host, target.port, target.transport, exc)
        if isinstance(message, Request) and message.method != "ACK":
            txn = self.layer.transactions.get(client_key(message))
            if txn is not None:
                self._run(self.layer.transport_failed(txn))

    def _run(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.stats["sent"] += 1
                self.transport.send(action.message, action.target)
            elif isinstance(action, Deliver):
                self._deliver(action)
            elif isinstance(action, Timeout | TransportFailed):
                pending = action.transaction.user_data
                if isinstance(pending, _Pending) and not pending.future.done():
                    what = "timeout" if isinstance(action, Timeout) else "transport error"
                    pending.future.set_exception(RequestFailed(what))
            elif isinstance(action, Merged):
                self.transport.send(build_response(action.request, 482, "Loop Detected"), action.source)
            elif isinstance(action, Terminated):
                pass
        self._rearm()

    def _deliver(self, action: Deliver) -> None:
        msg, txn = action.message, action.transaction
        if isinstance(msg, Request):
            try:
                self.handler.on_request(txn, msg, action.source or Target("UDP", "", 0))  # type: ignore[arg-type]
            except Exception:
                log.exception("SIP handler failed on %s", msg.method)
                if txn is not None and not txn.terminated and msg.method != "ACK":
                    self.respond(txn, build_response(msg, 500, "Server Internal Error"))  # type: ignore[arg-type]
            return
        assert isinstance(msg, Response)
        if txn is None:
            self.handler.on_stray_response(msg, action.source or Target("UDP", "", 0))
            return
        pending = txn.user_data
        if not isinstance(pending, _Pending):
            return
        if msg.status < 200:
            if pending.on_provisional is not None:
                pending.on_provisional(msg)
        elif not pending.future.done():
            pending.future.set_result(msg)
        else:  # a forked or retransmitted 2xx after the first final (§13.2.2.4): the TU decides
            self.handler.on_stray_response(msg, action.source or Target("UDP", "", 0))

    def _rearm(self) -> None:
        deadline = self.layer.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None and self._loop is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._run(self.layer.expire(self.now()))

    # for the handler -----------------------------------------------------------------------------

    def respond(self, txn: ServerTransaction, response: Response, *, stateless: bool = False) -> None:
        """Answer through `txn`; see `TransactionLayer.respond` for `stateless`."""
        if self.user_agent and not response.has_key("server"):
            response.add("Server", self.user_agent)
        self._run(self.layer.respond(txn, response, self.now(), stateless=stateless))

    def send_stateless(self, message: SipMessage, target: Target) -> None:
        """For the 2xx ACK (§13.2.2.4) and 2xx retransmissions the TU owns."""
        self.transport.send(message, target)

    async def request(
        self, request: Request, target: Target, *, on_provisional: Callable[[Response], None] | None = None
    ) -> Response:
        """Send `request` in a new client transaction; the final response, or `RequestFailed`."""
        assert self._loop is not None
        future: asyncio.Future[Response] = self._loop.create_future()
        txn, actions = self.layer.request(request, target, self.now())
        txn.user_data = _Pending(future, on_provisional)
        self._run(actions)
        return await future

    def via(self, transport: str) -> str:
        """A Via for a request we originate: our listening address and a fresh branch (§8.1.1.7)."""
        host, port = self.transport.listen.get(transport.upper(), ("127.0.0.1", 5060))
        host = f"[{host}]" if ":" in host else host
        return f"SIP/2.0/{transport.upper()} {host}:{port};branch={new_branch()};rport"
