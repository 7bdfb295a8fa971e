"""RTP packets, the sending and receiving state of one stream, and source latching (RFC 3550).

Theory of operation
-------------------
Everything here is sans-I/O: bytes in, bytes out, times passed in by the caller.

* `parse_rtp` / `build_rtp` read and write the §5.1 fixed header, CSRC list, §5.3.1 header
  extension (kept opaque) and padding. Both are one `struct` call plus slicing for the common
  12-byte-header case, since a relay runs them for every packet of every call.
* `RtpSender` owns what §5.1 asks of a source: random initial sequence number, timestamp and SSRC,
  sequence numbers that advance by one per packet and timestamps by the samples each packet holds.
  The marker bit is set on the first packet of a talkspurt (RFC 3551 §4.1): the first packet and the
  first one after `silence`. `event` sends with another payload type (RFC 4733 telephone-event)
  without disturbing the audio clock.
* `RtpReceiver` is the per-source state of Appendix A.1 (sequence validation with probation,
  dropouts and resynchronisation, 16-bit wrap counted in `cycles`), A.3 (expected, lost, fraction
  lost per report interval) and A.8 (interarrival jitter). `update` is a handful of integer
  operations per packet.
* `Latch` decides which remote address a symmetric-RTP (comedia) endpoint sends to: the first
  packet latches; a different address is accepted only with a new SSRC after the latched source
  has been quiet for a while, which keeps a stray or injected packet from stealing the stream.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

__all__ = [
    "MAX_DROPOUT",
    "MAX_MISORDER",
    "MIN_SEQUENTIAL",
    "RTP_SEQ_MOD",
    "Latch",
    "RtpError",
    "RtpExtension",
    "RtpPacket",
    "RtpReceiver",
    "RtpSender",
    "build_rtp",
    "parse_rtp",
]

RTP_VERSION = 2
RTP_SEQ_MOD = 1 << 16
# RFC 3550 Appendix A.1 constants.
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2

_MASK16 = 0xFFFF
_MASK32 = 0xFFFFFFFF
_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
_pack_header = _HEADER.pack
_unpack_header = _HEADER.unpack_from
_CSRC_STRUCTS = [struct.Struct(f"!{n}I") for n in range(16)]


class RtpError(ValueError):
    """A datagram that is not a valid RTP packet, or a packet that cannot be serialised."""


@dataclass(slots=True, frozen=True)
class RtpExtension:
    """§5.3.1 header extension: a profile-defined 16-bit id and data in whole 32-bit words."""

    profile: int
    data: bytes


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet. `padding` is the padding length to write (or that was read and removed)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0


def parse_rtp(data: bytes | bytearray | memoryview) -> RtpPacket:
    """Parse one RTP packet (RFC 3550 §5.1); raise `RtpError` on anything malformed."""
    try:
        b0, b1, seq, ts, ssrc = _unpack_header(data)
    except struct.error:
        raise RtpError("shorter than the 12-byte fixed header") from None
    if b0 >> 6 != RTP_VERSION:
        raise RtpError(f"version {b0 >> 6}, expected 2")
    end = len(data)
    offset = 12
    csrcs: tuple[int, ...] = ()
    cc = b0 & 0x0F
    if cc:
        offset += 4 * cc
        if end < offset:
            raise RtpError("CSRC list runs past the end")
        csrcs = _CSRC_STRUCTS[cc].unpack_from(data, 12)
    extension = None
    if b0 & 0x10:
        # §5.3.1: 16 bits defined by profile, 16 bits length in 32-bit words excluding this word.
        if end < offset + 4:
            raise RtpError("header extension runs past the end")
        profile, words = _EXT_HEADER.unpack_from(data, offset)
        start = offset + 4
        offset = start + 4 * words
        if end < offset:
            raise RtpError("header extension runs past the end")
        extension = RtpExtension(profile, bytes(data[start:offset]))
    padding = 0
    if b0 & 0x20:
        # §5.1: the last octet counts the padding octets, itself included.
        padding = data[-1]
        if padding == 0 or padding > end - offset:
            raise RtpError("invalid padding length")
        end -= padding
    return RtpPacket(b1 & 0x7F, seq, ts, ssrc, bytes(data[offset:end]), b1 > 0x7F, csrcs, extension, padding)


def build_rtp(packet: RtpPacket) -> bytes:
    """Serialise `packet`; raise `RtpError` if a field is out of range."""
    pt = packet.payload_type
    if not 0 <= pt <= 127:
        raise RtpError(f"payload type {pt} out of range")
    cc = len(packet.csrcs)
    if cc > 15:
        raise RtpError("more than 15 CSRCs")
    b0 = 0x80 | cc
    ext = packet.extension
    if ext is not None:
        b0 |= 0x10
    if packet.padding:
        b0 |= 0x20
    try:
        head = _pack_header(b0, (0x80 if packet.marker else 0) | pt, packet.sequence, packet.timestamp, packet.ssrc)
        if b0 == 0x80:
            return head + packet.payload
        parts = [head]
        if cc:
            parts.append(_CSRC_STRUCTS[cc].pack(*packet.csrcs))
        if ext is not None:
            words, rest = divmod(len(ext.data), 4)
            if rest:
                raise RtpError("header extension data is not a whole number of 32-bit words")
            parts.append(_EXT_HEADER.pack(ext.profile, words))
            parts.append(ext.data)
    except struct.error as exc:
        raise RtpError(str(exc)) from None
    parts.append(packet.payload)
    if packet.padding:
        if not 0 < packet.padding <= 255:
            raise RtpError("padding must be 1-255 octets")
        parts.append(bytes(packet.padding - 1) + bytes((packet.padding,)))
    return b"".join(parts)


class RtpSender:
    """Sequence, timestamp and SSRC of one outgoing stream (RFC 3550 §5.1, RFC 3551 §4.1).

    Initial values are random, as §5.1 asks, unless given; pass a seeded `rng` for tests.
    `packets_sent` and `octets_sent` (payload octets) feed the sender report (§6.4.1).
    """

    __slots__ = ("_marker", "octets_sent", "packets_sent", "payload_type", "sequence", "ssrc", "timestamp")

    def __init__(
        self,
        payload_type: int,
        *,
        ssrc: int | None = None,
        sequence: int | None = None,
        timestamp: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 <= payload_type <= 127:
            raise RtpError(f"payload type {payload_type} out of range")
        rnd = rng if rng is not None else random.SystemRandom()
        self.payload_type = payload_type
        self.ssrc = rnd.getrandbits(32) if ssrc is None else ssrc & _MASK32
        self.sequence = rnd.getrandbits(16) if sequence is None else sequence & _MASK16
        self.timestamp = rnd.getrandbits(32) if timestamp is None else timestamp & _MASK32
        self.packets_sent = 0
        self.octets_sent = 0
        self._marker = True

    def audio(self, payload: bytes, samples: int) -> bytes:
        """The next media packet; the timestamp then advances by `samples` (the packet's duration)."""
        b1 = self.payload_type
        if self._marker:
            b1 |= 0x80
            self._marker = False
        seq = self.sequence
        data = _pack_header(0x80, b1, seq, self.timestamp, self.ssrc) + payload
        self.sequence = (seq + 1) & _MASK16
        self.timestamp = (self.timestamp + samples) & _MASK32
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return data

    def silence(self, samples: int) -> None:
        """Let `samples` pass unsent (silence suppression); the next audio packet carries the marker."""
        self.timestamp = (self.timestamp + samples) & _MASK32
        self._marker = True

    def event(self, payload: bytes, *, payload_type: int, timestamp: int, marker: bool = False) -> bytes:
        """A packet with another payload type and an explicit timestamp (RFC 4733 events).

        The sequence number continues the stream's; the audio timestamp is left alone.
        """
        if not 0 <= payload_type <= 127:
            raise RtpError(f"payload type {payload_type} out of range")
        seq = self.sequence
        data = _pack_header(0x80, (0x80 if marker else 0) | payload_type, seq, timestamp & _MASK32, self.ssrc) + payload
        self.sequence = (seq + 1) & _MASK16
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return data


class RtpReceiver:
    """Reception state of one source: RFC 3550 Appendix A.1 (sequence), A.3 (loss), A.8 (jitter).

    Create it on the first packet of a new SSRC, then pass every packet, that first one included,
    to `update`. With `probation=MIN_SEQUENTIAL` (A.1) a source counts only once that many packets
    arrived in sequence; `probation=0` trusts the first packet (a latched, signalled source).
    """

    __slots__ = (
        "_transit",
        "bad_seq",
        "base_seq",
        "cycles",
        "expected_prior",
        "jitter",
        "last_sr",
        "last_sr_at",
        "max_seq",
        "min_sequential",
        "probation",
        "received",
        "received_prior",
        "ssrc",
    )

    def __init__(self, ssrc: int, seq: int, *, probation: int = MIN_SEQUENTIAL) -> None:
        self.ssrc = ssrc
        self.min_sequential = probation
        self.jitter = 0.0
        self._transit: int | None = None
        self.last_sr = 0  # middle 32 bits of the NTP timestamp of the last SR from this source
        self.last_sr_at = 0.0  # when it arrived, on the caller's clock
        self._init_seq(seq)
        # A.1: "s->max_seq = seq - 1", so that this very packet is in sequence.
        self.max_seq = (seq - 1) & _MASK16
        self.probation = probation
        if not probation and seq == 0:
            self.cycles = -RTP_SEQ_MOD  # the first update wraps 65535 -> 0; undo that cycle

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1  # so seq == bad_seq is false
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    def update(self, seq: int, timestamp: int, arrival: int) -> bool:
        """Account for one packet; False if it is to be discarded (probation or a wild jump).

        `arrival` is the arrival time in RTP timestamp units (A.8), on any fixed origin.
        """
        udelta = (seq - self.max_seq) & _MASK16
        if self.probation:
            # A.1: source is not valid until MIN_SEQUENTIAL packets with sequential numbers arrive.
            if seq == (self.max_seq + 1) & _MASK16:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received = 1
                    self._transit = (arrival - timestamp) & _MASK32
                    return True
            else:
                self.probation = self.min_sequential - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            # In order, with permissible gap.
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD  # sequence number wrapped
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            # The sequence number made a very large jump.
            if seq == self.bad_seq:
                # Two sequential packets: assume the other side restarted without telling us.
                self._init_seq(seq)
            else:
                self.bad_seq = (seq + 1) & _MASK16
                return False
        # else: duplicate or reordered packet, counted as A.1 does.
        self.received += 1
        # A.8: J += (|D(i-1,i)| - J) / 16, D the change in relative transit time.
        transit = (arrival - timestamp) & _MASK32
        prior = self._transit
        self._transit = transit
        if prior is not None:
            d = (transit - prior) & _MASK32
            if d > 0x7FFFFFFF:
                d = 0x100000000 - d
            self.jitter += (d - self.jitter) / 16.0
        return True

    @property
    def extended_max(self) -> int:
        """Highest sequence number received, extended with the wrap count (A.1)."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """Packets expected since the source became valid (A.3)."""
        return self.cycles + self.max_seq - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost; negative when duplicates outnumber losses (A.3)."""
        return self.expected - self.received

    def take_fraction_lost(self) -> int:
        """Fraction lost since the previous call, in 1/256 units, and start a new interval (A.3)."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval <= 0 or lost_interval <= 0:
            return 0
        return min((lost_interval << 8) // expected_interval, 255)

    def on_sender_report(self, ntp_timestamp: int, now: float) -> None:
        """Remember an SR from this source for LSR/DLSR in our next report block (§6.4.1)."""
        self.last_sr = (ntp_timestamp >> 16) & _MASK32
        self.last_sr_at = now


Address = tuple[object, ...]


class Latch:
    """Which remote address to accept RTP from and send it to (symmetric RTP, "comedia").

    The first packet latches its address and SSRC. Packets from the latched address are accepted
    (its SSRC may change). A packet from another address is accepted, and moves the latch, only
    if it carries a different SSRC and the latched source has been quiet for `quiet` seconds.
    """

    __slots__ = ("address", "last_seen", "quiet", "ssrc")

    def __init__(self, *, quiet: float = 1.0) -> None:
        self.quiet = quiet
        self.address: Address | None = None
        self.ssrc: int | None = None
        self.last_seen = 0.0

    def accept(self, address: Address, ssrc: int, now: float) -> bool:
        """True if a packet from `address` with `ssrc` arriving at `now` belongs to this stream."""
        if address == self.address:
            self.ssrc = ssrc
            self.last_seen = now
            return True
        if self.address is None or (ssrc != self.ssrc and now - self.last_seen >= self.quiet):
            self.address = address
            self.ssrc = ssrc
            self.last_seen = now
            return True
        return False

    def reset(self) -> None:
        """Forget the latched source (the remote end moved, e.g. after a re-INVITE)."""
        self.address = None
        self.ssrc = None
