"""One leg's RTP socket on asyncio: latch, count, relay or hand over; send what the leg plays.

The hot path is `datagram_received`: read the fixed header with one `unpack_from`, let the latch
decide whether the packet's source may speak for this leg (symmetric RTP, so peers behind NAT are
answered where they really are), update the RFC 3550 receiver state, then either relay the packet
untouched to the bridged leg (same codec on both sides) or give it to the consumer (decoding,
DTMF, recording). That is a few attribute updates per packet, as the 500-calls-per-core budget
requires. RTCP arrives on the next port and only feeds statistics.

SRTP (RFC 3711 with SDES keys, `voxswitch.media.srtp`) is one optional `srtp` context per leg: what
arrives is unprotected before anything else reads it, so a packet that fails authentication or the
replay check is dropped and counted there and never moves the latch, the statistics or a consumer;
what leaves through `send_raw`/`send_rtcp` is protected last. A relay between two legs therefore
unprotects with one leg's context and protects with the other's. Without a context the only cost
is one `None` test per packet each way.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from typing import Any

from voxswitch.media.rtp import Latch, RtpReceiver, RtpSender
from voxswitch.media.srtp import SrtpContext

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
        # SRTP for this leg's peer; None is plain RTP. Install it before the peer can send (see
        # voxswitch.media.srtp.context_for): from then on unauthenticated packets are dropped.
        self.srtp: SrtpContext | None = None
        self.rtcp_in = 0  # RTCP packets accepted (authenticated, when SRTP)
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
        srtp = self.srtp
        if srtp is not None:
            plain = srtp.unprotect_rtp(data)
            if plain is None:
                return  # failed authentication or replay: counted in srtp.stats, latch untouched
            data = plain
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
            srtp = self.srtp
            if srtp is not None:
                protected = srtp.protect_rtp(data)
                if protected is None:
                    return  # counted in srtp.stats.send_failures
                data = protected
            self.transport.sendto(data, self.remote)
            self.packets_out += 1

    def send_rtcp(self, data: bytes) -> None:
        """One RTCP compound packet to the peer's RTCP address, protected when the leg is SRTP."""
        if self.rtcp_transport is None or self.remote is None:
            return
        if self.srtp is not None:
            protected = self.srtp.protect_rtcp(data)
            if protected is None:
                return
            data = protected
        target = self.remote_rtcp or (self.remote[0], self.remote[1] + 1)  # RFC 3550 §11
        try:
            self.rtcp_transport.sendto(data, target)
        except OSError:
            pass

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
        owner = self.owner
        if owner.srtp is not None:
            plain = owner.srtp.unprotect_rtcp(data)
            if plain is None:
                return  # SRTCP that fails authentication or replay: counted, not our peer's
            data = plain
        self.reports += 1
        owner.rtcp_in += 1
        if owner.rtcp_consumer is not None:
            owner.rtcp_consumer(data)
