"""DTMF: RFC 4733 telephone-events out of band, and a Goertzel detector for tones in band.

Theory of operation
-------------------
Out of band (RFC 4733). One key press is one *event*, identified by the RTP timestamp of its
start, which every packet of the event repeats (§2.5.1.1). The sender reports the event at once
with the marker bit set (§2.5.1.2), then every packet interval with the duration so far, and ends
it with the E bit in a packet sent three times (§2.5.1.4), each with its own sequence number.
`DtmfSender` produces that sequence over an `RtpSender`. `DtmfReceiver` reverses it: a new
timestamp begins a digit even when the marker packet was lost (§2.5.2.1), the first E packet ends
it and its retransmissions are ignored, a new event or a timeout ends a digit whose end packets were
all lost (§2.5.2.2), and late packets of an old event are dropped. Each digit is reported once as
`DigitBegin` and once as `DigitEnd`.

In band. `DtmfDetector` evaluates the eight DTMF frequencies over a whole 20 ms frame at once:
the Goertzel filter computes one DFT term at an arbitrary frequency, and the eight terms together are
one (16 x N) matrix product with precomputed cosines and sines, vectorised in NumPy. A frame is a
*hit* for a key when the strongest low-group and high-group tones both reach a minimum level,
each stands out from the rest of its group, their twist is within limits, and together they carry
most of the frame's energy (which rejects speech, music and noise). A key is reported after
`min_duration` of consecutive hits and not again until `min_gap` without one, so a held key
yields one digit. With 20 ms frames, tones of 23 ms or less are always rejected and tones of 52 ms
or more always accepted; in between it depends on how the tone straddles frames.
"""

from __future__ import annotations

import collections
import functools
import math
import struct
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from voxswitch.media.rtp import RtpSender

__all__ = [
    "DIGITS",
    "DigitBegin",
    "DigitEnd",
    "DtmfDetector",
    "DtmfError",
    "DtmfEvent",
    "DtmfReceiver",
    "DtmfSender",
    "TelephoneEvent",
    "decode_event",
    "digit_to_event",
    "encode_event",
    "event_to_digit",
]

DIGITS = "0123456789*#ABCD"  # RFC 4733 §3.2 event codes 0-15, in order
LOW_FREQS = (697.0, 770.0, 852.0, 941.0)
HIGH_FREQS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")  # rows: low group, columns: high group

_EVENT = struct.Struct("!BBH")


class DtmfError(ValueError):
    """A telephone-event payload that is malformed, or a digit or duration that cannot be sent."""


def digit_to_event(digit: str) -> int:
    """RFC 4733 §3.2 event code of a key."""
    code = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise DtmfError(f"not a DTMF key: {digit!r}")
    return code


def event_to_digit(code: int) -> str | None:
    """The key of an event code, or None for other events (flash, tones)."""
    return DIGITS[code] if 0 <= code < 16 else None


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """RFC 4733 §2.3 payload: event, End bit, volume (-dBm0, 0-63), duration (timestamp units).

    ::

        0                   1                   2                   3
        0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
       +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
       |     event     |E|R| volume    |          duration             |
       +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    """

    event: int
    end: bool
    volume: int
    duration: int


def encode_event(event: TelephoneEvent) -> bytes:
    """§2.3 payload; the R bit is sent as zero."""
    if not 0 <= event.event <= 255 or not 0 <= event.volume <= 63 or not 0 <= event.duration <= 0xFFFF:
        raise DtmfError("telephone-event field out of range")
    return _EVENT.pack(event.event, (0x80 if event.end else 0) | event.volume, event.duration)


def decode_event(payload: bytes | bytearray | memoryview) -> TelephoneEvent:
    """Decode the first §2.3 event of a payload; the R bit is ignored, as §2.3 asks of receivers.

    Payloads packing several events (§2.5.1.5) end with the current one; only single events are
    expected from DTMF senders and the first block is what this reads.
    """
    if len(payload) < 4:
        raise DtmfError("telephone-event payload shorter than 4 octets")
    event, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


class DtmfSender:
    """The RFC 4733 packets for one key press, sent in the stream of `rtp` with `payload_type`.

    `interval` is the update interval in timestamp units (one packet time, 160 at 8 kHz / 20 ms).
    """

    def __init__(
        self,
        rtp: RtpSender,
        payload_type: int = 101,
        *,
        volume: int = 10,
        interval: int = 160,
        end_repeats: int = 3,
    ) -> None:
        if interval <= 0 or end_repeats < 1:
            raise DtmfError("interval and end_repeats must be positive")
        self.rtp = rtp
        self.payload_type = payload_type
        self.volume = volume
        self.interval = interval
        self.end_repeats = end_repeats

    def packets(self, digit: str, duration: int) -> list[bytes]:
        """Datagrams for `digit` lasting `duration` timestamp units, to send one per interval.

        All share the timestamp of the event's start (the stream's current media timestamp);
        the first carries the marker; durations grow by one interval per packet; the final one,
        with the E bit, goes out `end_repeats` times (§2.5.1.4). Afterwards the media timestamp
        has advanced by the time the packets take, and the next audio packet carries the marker.
        """
        code = digit_to_event(digit)
        if not 0 < duration <= 0xFFFF:
            raise DtmfError("duration must be 1-65535 timestamp units (long events need segments, §2.5.1.3)")
        rtp, step, start = self.rtp, self.interval, self.rtp.timestamp
        updates = -(-duration // step)
        out: list[bytes] = []
        for i in range(1, updates + 1):
            end = i == updates
            payload = encode_event(TelephoneEvent(code, end, self.volume, min(i * step, duration)))
            for _ in range(self.end_repeats if end else 1):
                out.append(rtp.event(payload, payload_type=self.payload_type, timestamp=start, marker=not out))
        rtp.silence(len(out) * step)
        return out


@dataclass(frozen=True, slots=True)
class DigitBegin:
    """A key press began; `timestamp` is the RTP timestamp identifying the event."""

    digit: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class DigitEnd:
    """A key press ended after `duration` timestamp units (the longest duration reported)."""

    digit: str
    timestamp: int
    duration: int


DtmfEvent: TypeAlias = DigitBegin | DigitEnd


class DtmfReceiver:
    """Turns received telephone-event packets into `DigitBegin`/`DigitEnd`, each exactly once.

    Sans-I/O: `feed` takes the packet's RTP timestamp, payload and the arrival time `now`;
    `next_deadline` says when to call `expire` so a digit whose end packets were all lost still
    ends (`timeout` seconds after its last packet).
    """

    def __init__(self, *, timeout: float = 0.5) -> None:
        self.timeout = timeout
        self._current: tuple[int, str] | None = None  # (timestamp, digit) of the event in progress
        self._duration = 0
        self._last_packet = 0.0
        # Events recently ended, by (timestamp, digit): their retransmitted or late packets are
        # dropped. Remembering several (not only the last) keeps a stream whose events are not in
        # timestamp order (spliced captures, a restarted sender) from losing digits.
        self._ended: collections.deque[tuple[int, str]] = collections.deque(maxlen=16)

    def feed(self, timestamp: int, payload: bytes | bytearray | memoryview, now: float) -> list[DtmfEvent]:
        """Events caused by one telephone-event packet; raises `DtmfError` on a short payload."""
        ev = decode_event(payload)
        digit = event_to_digit(ev.event)
        if digit is None:
            return []
        current = self._current
        if current is not None and current[0] == timestamp:
            self._last_packet = now
            self._duration = max(self._duration, ev.duration)
            if ev.end:
                return [self._finish()]
            return []
        if (timestamp, digit) in self._ended:
            return []  # a retransmitted end packet, or a late packet of a finished event
        out: list[DtmfEvent] = []
        if current is not None:
            out.append(self._finish())  # a new event started: the previous one's end packets were lost
        out.append(DigitBegin(digit, timestamp))
        self._current = (timestamp, digit)
        self._duration = ev.duration
        self._last_packet = now
        if ev.end:
            out.append(self._finish())  # only the end packets of this event got through
        return out

    def next_deadline(self) -> float | None:
        """When `expire` must run, or None while no digit is in progress."""
        return self._last_packet + self.timeout if self._current is not None else None

    def expire(self, now: float) -> list[DtmfEvent]:
        """End the digit in progress if its packets stopped `timeout` ago (§2.5.2.2)."""
        if self._current is not None and now >= self._last_packet + self.timeout:
            return [self._finish()]
        return []

    def _finish(self) -> DigitEnd:
        assert self._current is not None
        timestamp, digit = self._current
        self._current = None
        self._ended.append((timestamp, digit))
        return DigitEnd(digit, timestamp, self._duration)


@functools.cache
def _basis(sample_rate: int, frame_size: int) -> npt.NDArray[np.float64]:
    """Cosines and sines of the eight DTMF frequencies, (16, N): the same for every detector, so
    made once (each call leg without telephone-event has a detector; building it was 65 us)."""
    n = np.arange(frame_size)
    omega = 2 * np.pi * np.array(LOW_FREQS + HIGH_FREQS)[:, None] / sample_rate
    basis = np.vstack([np.cos(omega * n), np.sin(omega * n)])
    basis.flags.writeable = False
    return basis


class DtmfDetector:
    """In-band DTMF detection over fixed frames of 8 kHz audio (int16 or float in [-1, 1]).

    Thresholds follow common practice (ITU-T Q.24 ranges): each tone at least `min_level_dbfs`
    (re a full-scale sine); normal twist (high group weaker) up to 8 dB, reverse twist up to 4 dB;
    each tone `min_group_ratio_db` above the other frequencies of its group; the pair at least
    `min_tone_ratio` of the frame's energy.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 8000,
        frame_size: int = 160,
        min_duration: float = 0.040,
        min_gap: float = 0.040,
        min_level_dbfs: float = -36.0,
        max_normal_twist_db: float = 8.0,
        max_reverse_twist_db: float = 4.0,
        min_group_ratio_db: float = 8.0,
        min_tone_ratio: float = 0.6,
    ) -> None:
        frame_time = frame_size / sample_rate
        self.frame_size = frame_size
        self._min_frames = max(1, math.ceil(min_duration / frame_time - 1e-9))
        self._gap_frames = max(1, math.ceil(min_gap / frame_time - 1e-9))
        self._basis = _basis(sample_rate, frame_size)
        # |X|^2 of a sine of amplitude A at its own frequency is (A N / 2)^2.
        self._min_power = (10 ** (min_level_dbfs / 20) * frame_size / 2) ** 2
        self._normal_twist = 10 ** (-max_normal_twist_db / 10)
        self._reverse_twist = 10 ** (max_reverse_twist_db / 10)
        self._group_ratio = 10 ** (min_group_ratio_db / 10)
        self._tone_ratio = min_tone_ratio
        self._last: str | None = None
        self._run = 0
        self._quiet = self._gap_frames
        self._armed = True

    def classify(self, frame: npt.NDArray[np.generic]) -> str | None:
        """The key whose tone pair dominates this one frame, or None."""
        x = np.asarray(frame)
        if x.shape != (self.frame_size,):
            raise DtmfError(f"frame must hold {self.frame_size} samples, got shape {x.shape}")
        x = x.astype(np.float64) / 32768.0 if x.dtype == np.int16 else x.astype(np.float64, copy=False)
        energy = float(x @ x)
        if energy <= 0.0:
            return None
        y = self._basis @ x
        power = y[:8] * y[:8] + y[8:] * y[8:]
        low, high = power[:4], power[4:]
        row, col = int(low.argmax()), int(high.argmax())
        pl, ph = float(low[row]), float(high[col])
        if pl < self._min_power or ph < self._min_power:
            return None
        if not self._normal_twist <= ph / pl <= self._reverse_twist:
            return None
        if np.count_nonzero(low * self._group_ratio > pl) > 1 or np.count_nonzero(high * self._group_ratio > ph) > 1:
            return None  # another frequency of the group is too close to the peak
        if 2.0 * (pl + ph) / (self.frame_size * energy) < self._tone_ratio:
            return None
        return KEYPAD[row][col]

    def feed(self, frame: npt.NDArray[np.generic]) -> str | None:
        """Take the next frame; the key, once, when a tone has lasted `min_duration`."""
        hit = self.classify(frame)
        if hit is None:
            self._last = None
            self._run = 0
            self._quiet += 1
            if self._quiet >= self._gap_frames:
                self._armed = True
            return None
        self._run = self._run + 1 if hit == self._last else 1
        self._last = hit
        self._quiet = 0
        if self._armed and self._run >= self._min_frames:
            self._armed = False
            return hit
        return None
