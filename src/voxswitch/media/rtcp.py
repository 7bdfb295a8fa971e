"""RTCP compound packets, report blocks, round-trip time and the report interval (RFC 3550 §6).

Theory of operation
-------------------
`parse_compound` splits a datagram into its packets (§6.1) and checks what Appendix A.2 checks:
version 2 throughout, lengths that add up to the datagram, padding only on the last packet and,
unless told otherwise, an SR or RR first. Unknown packet types (APP, RTPFB, ...) come back as
`UnknownRtcp` so a caller can ignore them, as §6.1 asks. `build_compound` is the inverse.

Reports (§6.4): `report_block` turns an `RtpReceiver` into a report block (A.3 loss figures, A.8
jitter, LSR/DLSR of the source's last SR), `sender_report` fills an SR from an `RtpSender`.
`round_trip_time` is the §6.4.1 computation A - LSR - DLSR in compact NTP units. Times are passed
in: `wall_time` (Unix seconds) where the NTP timestamp needs it, `now` on any monotonic clock for
delays. `report_interval` is §6.2/A.7 reduced to a two-party call: a 5 s minimum (halved for the
first report) randomised over [0.5, 1.5] with an injected `rng`.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeAlias

from voxswitch.media.rtp import RtpReceiver, RtpSender

__all__ = [
    "NTP_UNIX_OFFSET",
    "Bye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpError",
    "RtcpPacket",
    "RtcpType",
    "SdesChunk",
    "SdesItem",
    "SenderReport",
    "SourceDescription",
    "UnknownRtcp",
    "build_compound",
    "is_rtcp",
    "ntp_short",
    "ntp_timestamp",
    "parse_compound",
    "report_block",
    "report_interval",
    "round_trip_time",
    "sender_report",
]

NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01
RTCP_MIN_TIME = 5.0  # §6.2 recommended minimum report interval, seconds

_MASK32 = 0xFFFFFFFF
_COMMON = struct.Struct("!BBH")
_BLOCK = struct.Struct("!6I")
_SR = struct.Struct("!IIIIII")
_SSRC = struct.Struct("!I")


class RtcpError(ValueError):
    """A datagram that is not a valid RTCP compound packet, or a packet that cannot be built."""


class RtcpType(IntEnum):
    """§12.1 packet types."""

    SR = 200
    RR = 201
    SDES = 202
    BYE = 203
    APP = 204


class SdesItem(IntEnum):
    """§6.5 SDES item types (CNAME is the one every compound packet carries)."""

    END = 0
    CNAME = 1
    NAME = 2
    EMAIL = 3
    PHONE = 4
    LOC = 5
    TOOL = 6
    NOTE = 7
    PRIV = 8


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """§6.4.1 reception report block about one source."""

    ssrc: int
    fraction_lost: int  # 1/256 units
    cumulative_lost: int  # 24-bit signed
    highest_seq: int  # extended highest sequence number received
    jitter: int  # timestamp units
    lsr: int  # middle 32 bits of the NTP timestamp of the last SR, 0 if none
    dlsr: int  # delay since that SR, 1/65536 s


@dataclass(frozen=True, slots=True)
class SenderReport:
    """§6.4.1 SR; `ntp_timestamp` is the full 64-bit NTP time the `rtp_timestamp` corresponds to."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """§6.4.2 RR."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One §6.5 chunk: a source and its (item type, text) pairs."""

    ssrc: int
    items: tuple[tuple[int, str], ...]

    @property
    def cname(self) -> str | None:
        return next((text for kind, text in self.items if kind == SdesItem.CNAME), None)


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """§6.5 SDES."""

    chunks: tuple[SdesChunk, ...]

    @classmethod
    def cname(cls, ssrc: int, cname: str) -> SourceDescription:
        return cls((SdesChunk(ssrc, ((SdesItem.CNAME, cname),)),))


@dataclass(frozen=True, slots=True)
class Bye:
    """§6.6 BYE."""

    ssrcs: tuple[int, ...]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class UnknownRtcp:
    """A packet type this module does not interpret, body without the 4-octet common header."""

    packet_type: int
    count: int
    body: bytes


RtcpPacket: TypeAlias = SenderReport | ReceiverReport | SourceDescription | Bye | UnknownRtcp


def is_rtcp(data: bytes | bytearray | memoryview) -> bool:
    """RTP/RTCP demultiplexing on one port (RFC 5761 §4): RTCP has packet type 192-223."""
    return len(data) >= 2 and 192 <= data[1] <= 223


# --- NTP and round-trip time ---------------------------------------------------------------------


def ntp_timestamp(wall_time: float) -> int:
    """64-bit NTP timestamp (§4) for a Unix time in seconds."""
    return int((wall_time + NTP_UNIX_OFFSET) * 4294967296.0) & 0xFFFFFFFFFFFFFFFF


def ntp_short(ntp: int) -> int:
    """The middle 32 bits of a 64-bit NTP timestamp: the LSR format, 1/65536 s units (§6.4.1)."""
    return (ntp >> 16) & _MASK32


def round_trip_time(arrival: int, lsr: int, dlsr: int) -> float | None:
    """§6.4.1: RTT = A - LSR - DLSR, all in compact NTP (1/65536 s); seconds, or None if unknown.

    `arrival` is `ntp_short(ntp_timestamp(wall time the report block arrived))`. None when the
    peer has had no SR from us (LSR 0) or clocks make the result negative.
    """
    if lsr == 0:
        return None
    rtt = (arrival - lsr - dlsr) & _MASK32
    if rtt > 0x7FFFFFFF:
        return None
    return rtt / 65536.0


def report_interval(rng: random.Random, *, minimum: float = RTCP_MIN_TIME, initial: bool = False) -> float:
    """Seconds until the next report: §6.2's minimum (halved before the first report, §6.2 and
    A.7) times a uniform factor in [0.5, 1.5] so that participants do not synchronise (§6.3.1).

    The bandwidth term of A.7 is below the minimum for a two-party call and is left out, as is
    the e-3/2 compensation that only timer reconsideration needs.
    """
    base = minimum / 2 if initial else minimum
    return base * (rng.random() + 0.5)


# --- Reports from stream state -------------------------------------------------------------------


def report_block(source: RtpReceiver, now: float) -> ReportBlock:
    """A report block about `source` (§6.4.1, A.3); starts a new fraction-lost interval."""
    fraction = source.take_fraction_lost()
    lost = max(-0x800000, min(source.lost, 0x7FFFFF))
    dlsr = 0
    if source.last_sr:
        dlsr = max(0, min(int((now - source.last_sr_at) * 65536), _MASK32))
    return ReportBlock(
        ssrc=source.ssrc,
        fraction_lost=fraction,
        cumulative_lost=lost,
        highest_seq=source.extended_max & _MASK32,
        jitter=int(source.jitter) & _MASK32,
        lsr=source.last_sr,
        dlsr=dlsr,
    )


def sender_report(
    sender: RtpSender, wall_time: float, rtp_timestamp: int, reports: tuple[ReportBlock, ...] = ()
) -> SenderReport:
    """An SR for `sender`; `rtp_timestamp` is the media clock at `wall_time` (§6.4.1)."""
    return SenderReport(
        ssrc=sender.ssrc,
        ntp_timestamp=ntp_timestamp(wall_time),
        rtp_timestamp=rtp_timestamp & _MASK32,
        packet_count=sender.packets_sent & _MASK32,
        octet_count=sender.octets_sent & _MASK32,
        reports=reports,
    )


# --- Parsing -------------------------------------------------------------------------------------


def _parse_blocks(body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    if len(body) < offset + 24 * count:
        raise RtcpError("report blocks run past the packet")
    blocks = []
    for i in range(count):
        ssrc, word, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(body, offset + 24 * i)
        lost = word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        blocks.append(ReportBlock(ssrc, word >> 24, lost, highest, jitter, lsr, dlsr))
    return tuple(blocks)


def _parse_sdes(body: bytes, count: int) -> SourceDescription:
    chunks = []
    pos = 0
    for _ in range(count):
        if len(body) < pos + 4:
            raise RtcpError("SDES chunk runs past the packet")
        (ssrc,) = _SSRC.unpack_from(body, pos)
        pos += 4
        items = []
        while True:
            if pos >= len(body):
                raise RtcpError("SDES chunk without END item")
            kind = body[pos]
            if kind == SdesItem.END:
                pos = (pos + 4) & ~3  # null octets up to the next 32-bit boundary
                break
            if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                raise RtcpError("SDES item runs past the packet")
            length = body[pos + 1]
            items.append((kind, body[pos + 2 : pos + 2 + length].decode("utf-8", "replace")))
            pos += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return SourceDescription(tuple(chunks))


def _parse_bye(body: bytes, count: int) -> Bye:
    if len(body) < 4 * count:
        raise RtcpError("BYE source list runs past the packet")
    ssrcs = struct.unpack_from(f"!{count}I", body)
    reason = None
    pos = 4 * count
    if pos < len(body):
        length = body[pos]
        if pos + 1 + length > len(body):
            raise RtcpError("BYE reason runs past the packet")
        reason = body[pos + 1 : pos + 1 + length].decode("utf-8", "replace")
    return Bye(ssrcs, reason)


def parse_compound(data: bytes | bytearray | memoryview, *, require_report_first: bool = True) -> list[RtcpPacket]:
    """Split and parse a compound RTCP packet (§6.1, A.2); raise `RtcpError` if malformed."""
    data = bytes(data)
    total = len(data)
    if total < 4:
        raise RtcpError("shorter than an RTCP header")
    packets: list[RtcpPacket] = []
    pos = 0
    while pos < total:
        if total - pos < 4:
            raise RtcpError("trailing octets after the last packet")
        b0, pt, length = _COMMON.unpack_from(data, pos)
        if b0 >> 6 != 2:
            raise RtcpError(f"version {b0 >> 6}, expected 2")
        end = pos + 4 * (length + 1)
        if end > total:
            raise RtcpError("packet length runs past the datagram")
        body_end = end
        if b0 & 0x20:
            # §6.4.1: padding only on the last packet of the compound, counted by its last octet.
            if end != total:
                raise RtcpError("padding on a packet that is not the last")
            pad = data[end - 1]
            if pad == 0 or pad > end - pos - 4:
                raise RtcpError("invalid padding length")
            body_end -= pad
        body = data[pos + 4 : body_end]
        count = b0 & 0x1F
        if not packets and require_report_first and pt not in (RtcpType.SR, RtcpType.RR):
            raise RtcpError("compound packet does not start with SR or RR")
        if pt == RtcpType.SR:
            if len(body) < 24:
                raise RtcpError("SR shorter than its sender info")
            ssrc, ntp_hi, ntp_lo, rtp_ts, packets_sent, octets = _SR.unpack_from(body)
            reports = _parse_blocks(body, 24, count)
            packets.append(SenderReport(ssrc, (ntp_hi << 32) | ntp_lo, rtp_ts, packets_sent, octets, reports))
        elif pt == RtcpType.RR:
            if len(body) < 4:
                raise RtcpError("RR without SSRC")
            packets.append(ReceiverReport(_SSRC.unpack_from(body)[0], _parse_blocks(body, 4, count)))
        elif pt == RtcpType.SDES:
            packets.append(_parse_sdes(body, count))
        elif pt == RtcpType.BYE:
            packets.append(_parse_bye(body, count))
        else:
            packets.append(UnknownRtcp(pt, count, body))
        pos = end
    return packets


# --- Building ------------------------------------------------------------------------------------


def _blocks(reports: tuple[ReportBlock, ...]) -> bytes:
    out = []
    for r in reports:
        if not -0x800000 <= r.cumulative_lost <= 0x7FFFFF or not 0 <= r.fraction_lost <= 255:
            raise RtcpError("report block field out of range")
        word = (r.fraction_lost << 24) | (r.cumulative_lost & 0xFFFFFF)
        out.append(_BLOCK.pack(r.ssrc, word, r.highest_seq, r.jitter, r.lsr, r.dlsr))
    return b"".join(out)


def _pad4(body: bytes) -> bytes:
    return body + bytes(-len(body) % 4)


def _build_one(packet: RtcpPacket) -> bytes:
    if isinstance(packet, SenderReport):
        ntp = packet.ntp_timestamp
        info = _SR.pack(
            packet.ssrc, ntp >> 32, ntp & _MASK32, packet.rtp_timestamp, packet.packet_count, packet.octet_count
        )
        return _packet(len(packet.reports), RtcpType.SR, info + _blocks(packet.reports))
    if isinstance(packet, ReceiverReport):
        return _packet(len(packet.reports), RtcpType.RR, _SSRC.pack(packet.ssrc) + _blocks(packet.reports))
    if isinstance(packet, SourceDescription):
        chunks = []
        for chunk in packet.chunks:
            parts = [_SSRC.pack(chunk.ssrc)]
            for kind, text in chunk.items:
                raw = text.encode()
                if len(raw) > 255 or not 0 < kind <= 255:
                    raise RtcpError("SDES item too long or of invalid type")
                parts.append(bytes((kind, len(raw))) + raw)
            # §6.5: END item, then null octets to the next 32-bit boundary (at least one null).
            chunks.append(_pad4(b"".join(parts) + b"\x00"))
        return _packet(len(packet.chunks), RtcpType.SDES, b"".join(chunks))
    if isinstance(packet, Bye):
        body = b"".join(_SSRC.pack(s) for s in packet.ssrcs)
        if packet.reason is not None:
            raw = packet.reason.encode()
            if len(raw) > 255:
                raise RtcpError("BYE reason longer than 255 octets")
            body += _pad4(bytes((len(raw),)) + raw)
        return _packet(len(packet.ssrcs), RtcpType.BYE, body)
    return _packet(packet.count, packet.packet_type, _pad4(packet.body))


def _packet(count: int, pt: int, body: bytes) -> bytes:
    if count > 31:
        raise RtcpError("more than 31 items in one packet")
    return _COMMON.pack(0x80 | count, pt, len(body) // 4) + body


def build_compound(packets: list[RtcpPacket] | tuple[RtcpPacket, ...]) -> bytes:
    """Serialise packets into one compound RTCP datagram (§6.1); the caller orders them."""
    try:
        return b"".join(_build_one(p) for p in packets)
    except struct.error as exc:
        raise RtcpError(str(exc)) from None
