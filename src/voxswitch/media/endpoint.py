"""One leg's RTP socket on asyncio: latch, count, relay or hand over; send what the leg plays.

The hot path is `datagram_received`: read the fixed header with one `unpack_from`, let the latch
decide whether the packet's source may speak for this leg (symmetric RTP, so peers behind NAT are
answered where they really are), update the RFC 3550 receiver state, then either relay the packet
untouched to the bridged leg (same codec on both sides) or give it to the consumer (decoding,
DTMF, recording). That is a few attribute updates per packet, as the 500-calls-per-core budget
requires. RTCP arrives on the next port and only feeds statistics.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from typing import Any

from voxswitch.media.rtp import Latch, RtpReceiver, RtpSender

_HEADER = struct.Struct("!BBHII")
Address = tuple[Any, ...]
Consumer = Callable[["RtpEndpoint", bytes, int], None]  # (endpoint, datagram, payload type)


class RtpEndpoint(asyncio.DatagramProtocol):
    def __init__(self, *, payload_type: int, clock_rate: int = 8000, latch_quiet: float = 1.0) -> None:
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.sender = RtpSender(payload_type)
        self.receiver: RtpReceiver | None = None
        self.latch = Latch(quiet=latch_quiet)
        self.remote: Address | None = None  # from SDP until the peer's packets say otherwise
        self.remote_rtcp: Address | None = None  # from SDP (a=rtcp); else the RTP port + 1
        self.relay_to: RtpEndpoint | None = None
        self.consumer: Consumer | None = None
        self.consume_while_relaying = False  # a relayed leg that is also recorded or transcoded
        self.rtcp_consumer: Callable[[bytes], None] | None = None
        self.sending = True  # False while the peer holds us (it asked for sendonly/inactive)
        self.transport: asyncio.DatagramTransport | None = None
        self.rtcp_transport: asyncio.DatagramTransport | None = None
        self.local_port = 0
        self.last_received: float | None = None
        self.packets_in = 0
        self.packets_out = 0
        self.muted = False  # what this leg receives is not passed on (mute, hold)
        # payload type renumbering on relay, when the two legs agreed different numbers (e.g. for
        # telephone-event): {number this peer sends: number the other peer expects}
        self.relay_pt_map: dict[int, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    # lifecycle -----------------------------------------------------------------------------------

    async def open(self, rtp_sock: socket.socket, rtcp_sock: socket.socket) -> None:
        loop = self._loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, sock=rtp_sock)
        self.rtcp_transport, _ = await loop.create_datagram_endpoint(lambda: _Rtcp(self), sock=rtcp_sock)
        self.local_port = rtp_sock.getsockname()[1]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a DatagramTransport in fact

    def close(self) -> None:
        for t in (self.transport, self.rtcp_transport):
            if t is not None:
                t.close()
        self.relay_to = None
        self.consumer = None
        self.rtcp_consumer = None

    # receiving (the hot path) ----------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return  # not RTP version 2
        _, m_pt, seq, ts, ssrc = _HEADER.unpack_from(data)
        assert self._loop is not None
        now = self._loop.time()
        if not self.latch.accept(addr, ssrc, now):
            return
        self.remote = addr
        self.last_received = now
        self.packets_in += 1
        receiver = self.receiver
        if receiver is None or receiver.ssrc != ssrc:
            receiver = self.receiver = RtpReceiver(ssrc, seq, probation=0)
        receiver.update(seq, ts, int(now * self.clock_rate))
        if self.muted:
            return
        peer = self.relay_to
        if peer is not None:
            if self.relay_pt_map and (m_pt & 0x7F) in self.relay_pt_map:
                data = bytes((data[0], (m_pt & 0x80) | self.relay_pt_map[m_pt & 0x7F])) + data[2:]
            peer.send_raw(data)
            if not self.consume_while_relaying:
                return
        if self.consumer is not None:
            self.consumer(self, data, m_pt & 0x7F)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable: the peer is gone
        pass

    # sending ---------------------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        if self.transport is not None and self.remote is not None and self.sending:
            self.transport.sendto(data, self.remote)
            self.packets_out += 1

    def send_payload(self, payload: bytes, samples: int) -> None:
        """One packet of our own audio (a player, TTS, a mixer) in this leg's stream."""
        self.send_raw(self.sender.audio(payload, samples))

    def send_silence_gap(self, samples: int) -> None:
        self.sender.silence(samples)

    # state -----------------------------------------------------------------------------------------

    def idle_for(self, now: float) -> float:
        """Seconds since the last packet (or since forever): what a media timeout watches."""
        return float("inf") if self.last_received is None else now - self.last_received


class _Rtcp(asyncio.DatagramProtocol):
    def __init__(self, owner: RtpEndpoint) -> None:
        self.owner = owner
        self.reports = 0

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.reports += 1
        if self.owner.rtcp_consumer is not None:
            self.owner.rtcp_consumer(data)
