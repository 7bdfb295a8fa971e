"""RFC 4733 telephone-events (payload, sender, receiver) and in-band DTMF detection."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxswitch.media.dtmf import (
    DIGITS,
    HIGH_FREQS,
    KEYPAD,
    LOW_FREQS,
    DigitBegin,
    DigitEnd,
    DtmfDetector,
    DtmfError,
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    decode_event,
    digit_to_event,
    encode_event,
    event_to_digit,
)
from voxswitch.media.rtp import RtpSender, parse_rtp

# --- Payload (RFC 4733 §2.3) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "wire"),
    [
        # digit 1, E=0, volume 10 (-10 dBm0), duration 400 (50 ms at 8 kHz)
        (TelephoneEvent(1, False, 10, 400), "010a0190"),
        # '#' (11), E=1, volume 7, duration 1600
        (TelephoneEvent(11, True, 7, 1600), "0b870640"),
        # 'D' (15), E=1, volume 63, maximum duration
        (TelephoneEvent(15, True, 63, 0xFFFF), "0fbfffff"),
    ],
)
def test_payload_layout(event: TelephoneEvent, wire: str) -> None:
    assert encode_event(event).hex() == wire
    assert decode_event(bytes.fromhex(wire)) == event


def test_reserved_bit_ignored_and_errors() -> None:
    assert decode_event(bytes.fromhex("05ca00a0")) == TelephoneEvent(5, True, 10, 160)  # R bit set
    with pytest.raises(DtmfError):
        decode_event(b"\x01\x0a\x00")
    with pytest.raises(DtmfError):
        encode_event(TelephoneEvent(1, False, 64, 0))
    with pytest.raises(DtmfError):
        digit_to_event("E")
    assert [digit_to_event(d) for d in "0*#Ad"] == [0, 10, 11, 12, 15]
    assert event_to_digit(16) is None and event_to_digit(12) == "A"


@given(st.binary(max_size=12))
def test_decode_junk_raises_only_dtmf_error(data: bytes) -> None:
    try:
        decode_event(data)
    except DtmfError:
        pass


# --- Sender (RFC 4733 §2.5.1) ----------------------------------------------------------------------


def test_sender_packet_sequence() -> None:
    rtp = RtpSender(0, ssrc=9, sequence=1000, timestamp=48000)
    rtp.audio(bytes(160), 160)
    packets = [parse_rtp(d) for d in DtmfSender(rtp, 101, volume=10).packets("5", 800)]
    events = [decode_event(p.payload) for p in packets]
    assert len(packets) == 7  # 5 updates (the 5th ends) + 2 retransmissions of the end
    assert {p.timestamp for p in packets} == {48160} and {p.payload_type for p in packets} == {101}
    assert [p.marker for p in packets] == [True] + [False] * 6
    assert [p.sequence for p in packets] == list(range(1001, 1008))
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert {e.event for e in events} == {5} and {e.volume for e in events} == {10}
    after = parse_rtp(rtp.audio(bytes(160), 160))
    assert (after.payload_type, after.sequence, after.timestamp, after.marker) == (0, 1008, 48160 + 7 * 160, True)


def test_sender_partial_last_interval_and_limits() -> None:
    packets = DtmfSender(RtpSender(0, ssrc=1), interval=400).packets("#", 1000)
    assert [decode_event(parse_rtp(d).payload).duration for d in packets] == [400, 800, 1000, 1000, 1000]
    with pytest.raises(DtmfError):
        DtmfSender(RtpSender(0)).packets("1", 70000)
    with pytest.raises(DtmfError):
        DtmfSender(RtpSender(0)).packets("x", 800)


# --- Receiver (RFC 4733 §2.5.2) ----------------------------------------------------------------------


def run(receiver: DtmfReceiver, datagrams: list[bytes], start: float = 0.0) -> list[object]:
    out: list[object] = []
    for i, d in enumerate(datagrams):
        p = parse_rtp(d)
        out += receiver.feed(p.timestamp, p.payload, start + 0.02 * i)
    return out


def test_round_trip_with_lost_start_and_duplicated_ends() -> None:
    rtp = RtpSender(0, ssrc=9, sequence=0, timestamp=1000)
    sender = DtmfSender(rtp)
    one = sender.packets("1", 800)
    two = sender.packets("2", 480)
    # "1": start packet lost, one update lost, every end packet delivered twice.
    wire_one = [one[1], one[3], one[4], one[4], one[5], one[6], one[6]]
    events = run(DtmfReceiver(), wire_one + two + two[-3:])
    assert events == [
        DigitBegin("1", 1000),
        DigitEnd("1", 1000, 800),
        DigitBegin("2", 1000 + 7 * 160),
        DigitEnd("2", 1000 + 7 * 160, 480),
    ]


def test_all_end_packets_lost_new_event_ends_the_old_one() -> None:
    rtp = RtpSender(0, ssrc=9, sequence=0, timestamp=0)
    sender = DtmfSender(rtp)
    one, two = sender.packets("9", 640), sender.packets("0", 320)
    events = run(DtmfReceiver(), one[:3] + two)
    assert events == [DigitBegin("9", 0), DigitEnd("9", 0, 480), DigitBegin("0", 6 * 160), DigitEnd("0", 6 * 160, 320)]


def test_timeout_ends_a_digit_and_late_packets_are_ignored() -> None:
    rtp = RtpSender(0, ssrc=9, sequence=0, timestamp=0)
    pkts = DtmfSender(rtp).packets("*", 640)
    receiver = DtmfReceiver(timeout=0.5)
    assert run(receiver, pkts[:2]) == [DigitBegin("*", 0)]
    assert receiver.next_deadline() == pytest.approx(0.52)
    assert receiver.expire(0.3) == []
    assert receiver.expire(0.6) == [DigitEnd("*", 0, 320)]
    assert receiver.next_deadline() is None
    assert run(receiver, pkts[2:], start=0.7) == []  # late updates and ends of the finished event


def test_only_end_packet_arrives_and_non_dtmf_events_ignored() -> None:
    receiver = DtmfReceiver()
    end = encode_event(TelephoneEvent(3, True, 10, 800))
    assert receiver.feed(5000, end, 0.0) == [DigitBegin("3", 5000), DigitEnd("3", 5000, 800)]
    assert receiver.feed(5000, end, 0.02) == []
    assert receiver.feed(9000, encode_event(TelephoneEvent(16, False, 10, 160)), 0.04) == []  # flash
    # A key whose timestamp is older than the last one's is still a new key press (spliced
    # captures like sip-tester's DTMF pcaps, a restarted sender) ...
    older = encode_event(TelephoneEvent(4, True, 10, 160))
    assert receiver.feed(4000, older, 0.06) == [DigitBegin("4", 4000), DigitEnd("4", 4000, 160)]
    # ... while late packets of any recently ended event are dropped.
    assert receiver.feed(5000, end, 0.08) == [] and receiver.feed(4000, older, 0.1) == []


def test_timestamp_wrap_between_events() -> None:
    receiver = DtmfReceiver()
    a = receiver.feed(0xFFFFFF00, encode_event(TelephoneEvent(1, True, 10, 160)), 0.0)
    b = receiver.feed(0x00000100, encode_event(TelephoneEvent(2, True, 10, 160)), 0.1)
    assert [type(e) for e in a + b] == [DigitBegin, DigitEnd, DigitBegin, DigitEnd]


# --- In-band detection -------------------------------------------------------------------------------

RATE = 8000


def tone(key: str, ms: float, amp: float = 0.25, deviation: float = 0.0, high_db: float = 0.0) -> np.ndarray:
    row = next(i for i, r in enumerate(KEYPAD) if key in r)
    low, high = LOW_FREQS[row], HIGH_FREQS[KEYPAD[row].index(key)]
    t = np.arange(round(ms * RATE / 1000)) / RATE
    high_amp = amp * 10 ** (high_db / 20)
    return amp * np.sin(2 * np.pi * low * (1 + deviation) * t) + high_amp * np.sin(
        2 * np.pi * high * (1 + deviation) * t
    )


def silence(ms: float) -> np.ndarray:
    return np.zeros(round(ms * RATE / 1000))


def detect(signal: np.ndarray, detector: DtmfDetector | None = None, as_int16: bool = True) -> str:
    d = detector or DtmfDetector()
    pad = -len(signal) % 160
    x = np.concatenate([signal, np.zeros(pad)])
    if as_int16:
        x = np.clip(x * 32767, -32768, 32767).astype(np.int16)
    return "".join(k for i in range(0, len(x), 160) if (k := d.feed(x[i : i + 160])) is not None)


def test_all_sixteen_keys() -> None:
    signal = np.concatenate([np.concatenate([tone(k, 80), silence(60)]) for k in DIGITS])
    assert detect(signal) == DIGITS


def test_held_key_gives_one_digit_and_repeats_need_a_gap() -> None:
    assert detect(np.concatenate([silence(20), tone("5", 1500)])) == "5"
    assert detect(np.concatenate([tone("7", 100), silence(60), tone("7", 100)])) == "77"


@pytest.mark.parametrize("offset_ms", [0, 5, 10, 15])
def test_short_tones_rejected(offset_ms: float) -> None:
    assert detect(np.concatenate([silence(offset_ms), tone("1", 20), silence(60)])) == ""
    assert detect(np.concatenate([silence(offset_ms), tone("1", 23), silence(60)])) == ""


@pytest.mark.parametrize("offset_ms", [0, 5, 10, 15])
def test_tones_of_52_ms_and_more_accepted_at_any_alignment(offset_ms: float) -> None:
    assert detect(np.concatenate([silence(offset_ms), tone("1", 52), silence(60)])) == "1"


def test_minimum_duration_aligned() -> None:
    assert detect(tone("0", 40)) == "0"  # two whole frames
    assert detect(tone("0", 30)) == ""  # one whole frame and half of the next


def test_noise_and_speech_like_signals_do_not_trigger() -> None:
    rng = np.random.default_rng(4733)
    assert detect(rng.normal(0, 0.2, RATE)) == ""
    t = np.arange(RATE * 2) / RATE
    vowel = sum(np.sin(2 * np.pi * 120 * h * t) / h for h in range(1, 30))  # harmonics cross DTMF bands
    chord = sum(np.sin(2 * np.pi * f * t) for f in (440, 554, 659, 1100, 1800, 2400))
    two_tones = np.sin(2 * np.pi * 600 * t) + np.sin(2 * np.pi * 1100 * t)  # a pair, but not DTMF
    for signal in (vowel, chord, two_tones):
        assert detect(0.3 * signal / np.abs(signal).max()) == ""


def test_dtmf_under_speech_energy_rejected_but_survives_mild_noise() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(800) / RATE
    speech = 0.3 * sum(np.sin(2 * np.pi * f * t) for f in (300, 500, 2200))
    assert detect(tone("8", 100) + speech) == ""
    assert detect(tone("8", 100) + rng.normal(0, 0.01, 800)) == "8"


def test_twist_level_and_frequency_tolerance() -> None:
    assert detect(tone("3", 100, high_db=-6)) == "3"  # normal twist within 8 dB
    assert detect(tone("3", 100, high_db=-12)) == ""
    assert detect(tone("3", 100, high_db=+3)) == "3"  # reverse twist within 4 dB
    assert detect(tone("3", 100, high_db=+6)) == ""
    assert detect(tone("B", 100, deviation=0.01)) == "B"
    assert detect(tone("B", 100, deviation=-0.01)) == "B"
    assert detect(tone("B", 100, amp=0.005)) == ""  # -46 dBFS per tone, below the floor


def test_float_frames_and_shape_check() -> None:
    assert detect(tone("C", 100), as_int16=False) == "C"
    with pytest.raises(DtmfError):
        DtmfDetector().feed(np.zeros(80, dtype=np.int16))
