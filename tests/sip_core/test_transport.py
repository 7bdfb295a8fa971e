"""The asyncio transport on real loopback sockets: keep-alive pong, idle close, framing limits."""

from __future__ import annotations

import asyncio

from voxswitch.sip.errors import SipParseError
from voxswitch.sip.message import SipMessage
from voxswitch.sip.transaction import Target
from voxswitch.sip.transport import SipTransport, TransportLimits

OPTIONS = (
    b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKt1\r\nMax-Forwards: 70\r\n"
    b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: t1\r\nCSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


class Sink:
    def __init__(self) -> None:
        self.messages: list[tuple[SipMessage, Target]] = []
        self.invalid: list[SipParseError] = []

    def transport(self, **limits: float) -> SipTransport:
        return SipTransport(
            lambda m, s: self.messages.append((m, s)),
            lambda data, e, s: self.invalid.append(e),
            lambda m, t, e: None,
            limits=TransportLimits(**limits),  # type: ignore[arg-type]
        )


async def test_crlf_ping_gets_a_pong_and_messages_split_across_reads_are_framed() -> None:
    sink = Sink()
    t = sink.transport()
    _, port = await t.start_stream("TCP", "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\r\n\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(2), 2) == b"\r\n"  # RFC 5626 §3.5.1
    writer.write(OPTIONS[:50])
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(OPTIONS[50:] + OPTIONS)  # the rest of one, and a whole second, in one read
    await writer.drain()
    for _ in range(50):
        if len(sink.messages) == 2:
            break
        await asyncio.sleep(0.02)
    assert [m.method for m, _ in sink.messages] == ["OPTIONS", "OPTIONS"]  # type: ignore[union-attr]
    source = sink.messages[0][1]
    assert source.transport == "TCP" and source.connection is not None
    writer.close()
    await t.close()


async def test_idle_connections_are_closed_by_the_sweeper() -> None:
    sink = Sink()
    t = sink.transport(idle_timeout=0.3)
    _, port = await t.start_stream("TCP", "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(0.05)
    assert t.connection_count == 1
    assert await asyncio.wait_for(reader.read(), 3) == b""  # EOF: the server hung up
    assert t.connection_count == 0
    writer.close()
    await t.close()


async def test_a_stream_that_loses_framing_is_answered_and_closed() -> None:
    sink = Sink()
    t = sink.transport(max_message=2000)
    _, port = await t.start_stream("TCP", "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(OPTIONS.replace(b"Content-Length: 0", b"Content-Length: 999999"))
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 3) == b""
    assert sink.invalid and sink.invalid[0].status == 413 and sink.messages == []
    writer.close()
    await t.close()
