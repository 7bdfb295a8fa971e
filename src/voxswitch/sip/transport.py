"""SIP over UDP, TCP and TLS on asyncio (RFC 3261 §18): the only SIP code that touches sockets.

Datagrams and stream bytes become parsed messages handed to one callback with their `Target` (the
transport and the address they came from, plus the connection for streams, so an answer can go back
on it, §18.2.2). Outgoing messages go out by `send(message, target)`: UDP at once; a stream reuses a
live connection to that address (inbound or outbound, §18.1.1) or opens one and queues until it is up.

Streams are framed by Content-Length (§18.3); a CRLFCRLF ping is answered with CRLF (RFC 5626
§3.5.1). Idle streams are closed by one sweeper task, not a timer per connection. Oversized
datagrams and runaway stream buffers are dropped before parsing, so floods cost little.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voxswitch.sip.errors import SipParseError
from voxswitch.sip.message import SipMessage, StreamFramer, parse_message
from voxswitch.sip.transaction import Target

log = logging.getLogger(__name__)

OnMessage = Callable[[SipMessage, Target], None]
OnInvalid = Callable[[bytes, SipParseError, Target], None]
OnSendFailed = Callable[[SipMessage, Target, Exception], None]


@dataclass(frozen=True)
class TransportLimits:
    max_datagram: int = 65_535
    max_message: int = 65_535
    max_headers: int = 200
    idle_timeout: float = 300.0
    connect_timeout: float = 5.0
    udp_receive_buffer: int = 4 * 1024 * 1024


class _Stream(asyncio.Protocol):
    """One TCP or TLS connection, inbound or outbound."""

    def __init__(self, owner: SipTransport, name: str) -> None:
        self.owner = owner
        self.name = name
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.framer = StreamFramer(max_message=owner.limits.max_message, max_headers=owner.limits.max_headers)
        self.last_activity = time.monotonic()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream Transport in fact
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = (host, port)
        self.owner._register(self)

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        if data == b"\r\n\r\n":  # RFC 5626 §3.5.1 keep-alive ping -> pong
            self.write(b"\r\n")
            return
        source = Target(self.name, self.peer[0], self.peer[1], self)
        framer = self.framer
        framer.receive_data(data)
        while True:
            try:
                msg = framer.next_message()
            except SipParseError as exc:
                self.owner.on_invalid(data, exc, source)
                if framer.broken:  # framing lost (§18.3): nothing after this can be trusted
                    self.close()
                    return
                continue  # a well-framed message that did not parse: its bytes are gone, go on
            if msg is None:
                return
            self.owner.on_message(msg, source)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.last_activity = time.monotonic()
            self.transport.write(data)

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.owner._unregister(self)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a DatagramTransport in fact

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if len(data) > self.owner.limits.max_datagram or not data.strip(b"\r\n\x00 "):
            return  # oversized, or a bare keep-alive: nothing to parse
        source = Target("UDP", addr[0], addr[1])
        try:
            msg = parse_message(data, max_headers=self.owner.limits.max_headers)
        except SipParseError as exc:
            self.owner.on_invalid(data, exc, source)
            return
        self.owner.on_message(msg, source)

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable and friends
        log.debug("udp error: %s", exc)


class SipTransport:
    """The listeners and connections of one SIP endpoint."""

    def __init__(
        self,
        on_message: OnMessage,
        on_invalid: OnInvalid,
        on_send_failed: OnSendFailed,
        *,
        limits: TransportLimits | None = None,
        client_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.on_message = on_message
        self.on_invalid = on_invalid
        self.on_send_failed = on_send_failed
        self.limits = limits or TransportLimits()
        self.client_ssl = client_ssl
        self.listen: dict[str, tuple[str, int]] = {}  # transport -> bound (host, port)
        self._udp: _Datagrams | None = None
        self._servers: list[asyncio.Server] = []
        self._streams: dict[tuple[str, str, int], _Stream] = {}
        self._pending: dict[tuple[str, str, int], list[tuple[SipMessage, Target]]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # listeners -----------------------------------------------------------------------------------

    async def start_udp(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(lambda: _Datagrams(self), local_addr=(host, port))
        sock = transport.get_extra_info("socket")
        if sock is not None:  # room for a burst while the loop is busy (a GC pass, a slow callback)
            for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
                if option is None:
                    continue
                try:
                    sock.setsockopt(socket.SOL_SOCKET, option, self.limits.udp_receive_buffer)
                    break
                except OSError:
                    continue
        self._udp = proto
        bound = transport.get_extra_info("sockname")[:2]
        self.listen["UDP"] = bound
        return bound

    async def start_stream(
        self, name: str, host: str, port: int, ssl_context: ssl.SSLContext | None = None
    ) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Stream(self, name), host, port, ssl=ssl_context, reuse_address=True)
        self._servers.append(server)
        bound = server.sockets[0].getsockname()[:2]
        self.listen[name] = bound
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_idle(), name="sip-idle-sweeper")
        return bound

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for server in self._servers:
            server.close()
        for stream in list(self._streams.values()):
            stream.close()
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.close()
        for server in self._servers:
            await server.wait_closed()

    # sending -------------------------------------------------------------------------------------

    def send(self, message: SipMessage, target: Target) -> None:
        data = message.to_bytes()
        if not target.reliable:
            if self._udp is None or self._udp.transport is None:
                self.on_send_failed(message, target, RuntimeError("no UDP listener"))
                return
            self._udp.transport.sendto(data, (target.host, target.port))
            return
        stream = target.connection if isinstance(target.connection, _Stream) and not target.connection.closed else None
        stream = stream or self._streams.get((target.transport.upper(), target.host, target.port))
        if stream is not None:
            stream.write(data)
            return
        key = (target.transport.upper(), target.host, target.port)
        queue = self._pending.setdefault(key, [])
        queue.append((message, target))
        if len(queue) == 1:
            asyncio.get_running_loop().create_task(self._connect(key))

    async def _connect(self, key: tuple[str, str, int]) -> None:
        name, host, port = key
        loop = asyncio.get_running_loop()
        use_ssl = self.client_ssl if name == "TLS" else None
        if name == "TLS" and use_ssl is None:
            use_ssl = ssl.create_default_context()
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: _Stream(self, name), host, port, ssl=use_ssl),
                timeout=self.limits.connect_timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            for message, target in self._pending.pop(key, []):
                self.on_send_failed(message, target, exc)
            return
        # _register has flushed the queue

    def _register(self, stream: _Stream) -> None:
        key = (stream.name, stream.peer[0], stream.peer[1])
        self._streams[key] = stream
        for message, _ in self._pending.pop(key, []):
            stream.write(message.to_bytes())

    def _unregister(self, stream: _Stream) -> None:
        key = (stream.name, stream.peer[0], stream.peer[1])
        if self._streams.get(key) is stream:
            del self._streams[key]

    async def _sweep_idle(self) -> None:
        while True:
            await asyncio.sleep(min(10.0, self.limits.idle_timeout / 2))
            cutoff = time.monotonic() - self.limits.idle_timeout
            for stream in list(self._streams.values()):
                if stream.last_activity < cutoff:
                    stream.close()

    @property
    def connection_count(self) -> int:
        return len(self._streams)
