"""RTP packets (RFC 3550 §5.1), sender continuity, Appendix A.1/A.3/A.8 receiver state, latching."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxswitch.media.rtp import (
    Latch,
    RtpError,
    RtpExtension,
    RtpPacket,
    RtpReceiver,
    RtpSender,
    build_rtp,
    parse_rtp,
)

# V=2, no P/X/CC, M=0, PT=0 (PCMU), seq 0x1234, ts 160, SSRC 0xDEADBEEF, then 4 payload octets.
PLAIN = bytes.fromhex("80001234000000a0deadbeef") + b"\xff\xfe\xfd\xfc"
# V=2, P, X, CC=2; M=1, PT=101; seq 7, ts 8000, SSRC 1; CSRCs 2 and 3; extension profile 0xBEDE
# with one word; payload "ab"; 3 octets of padding (the last one counts them).
FULL = bytes.fromhex("b2e5000700001f40000000010000000200000003bede0001010203046162000003")


def test_parse_plain_header() -> None:
    p = parse_rtp(PLAIN)
    assert (p.payload_type, p.sequence, p.timestamp, p.ssrc) == (0, 0x1234, 160, 0xDEADBEEF)
    assert not p.marker and p.csrcs == () and p.extension is None and p.padding == 0
    assert p.payload == b"\xff\xfe\xfd\xfc"
    assert build_rtp(p) == PLAIN


def test_parse_csrc_extension_padding() -> None:
    p = parse_rtp(FULL)
    assert p.marker and p.payload_type == 101 and p.sequence == 7 and p.timestamp == 8000 and p.ssrc == 1
    assert p.csrcs == (2, 3)
    assert p.extension == RtpExtension(0xBEDE, bytes([1, 2, 3, 4]))
    assert p.payload == b"ab"  # extension skipped, padding removed
    assert p.padding == 3
    assert build_rtp(p) == FULL


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_parse_accepts_buffers(kind: type) -> None:
    p = parse_rtp(kind(FULL))
    assert p.payload == b"ab" and isinstance(p.payload, bytes)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "short"),
        (PLAIN[:11], "short"),
        (b"\x40" + PLAIN[1:], "version 1"),
        (bytes.fromhex("81000000000000000000000000"), "CC=1 without CSRC"),
        (bytes.fromhex("900000000000000000000000bede"), "truncated extension header"),
        (bytes.fromhex("900000000000000000000000bede000200000000"), "extension longer than packet"),
        (bytes.fromhex("a000000000000000000000000000"), "padding count 0"),
        (bytes.fromhex("a000000000000000000000000005"), "padding longer than payload"),
    ],
)
def test_parse_rejects(data: bytes, why: str) -> None:
    with pytest.raises(RtpError):
        parse_rtp(data)


def test_build_rejects_bad_fields() -> None:
    with pytest.raises(RtpError):
        build_rtp(RtpPacket(128, 0, 0, 0, b""))
    with pytest.raises(RtpError):
        build_rtp(RtpPacket(0, 70000, 0, 0, b""))
    with pytest.raises(RtpError):
        build_rtp(RtpPacket(0, 0, 0, 0, b"", extension=RtpExtension(1, b"abc")))
    with pytest.raises(RtpError):
        build_rtp(RtpPacket(0, 0, 0, 0, b"", csrcs=tuple(range(16))))


packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none()
    | st.builds(RtpExtension, st.integers(0, 0xFFFF), st.binary(max_size=12).map(lambda b: b[: len(b) // 4 * 4])),
    padding=st.integers(0, 255),
)


@given(packets)
def test_round_trip(packet: RtpPacket) -> None:
    assert parse_rtp(build_rtp(packet)) == packet


@given(st.binary(max_size=80))
def test_parse_junk_raises_only_rtp_error(data: bytes) -> None:
    try:
        parse_rtp(data)
    except RtpError:
        pass


# --- Sender ----------------------------------------------------------------------------------------


def test_sender_continuity_marker_and_wrap() -> None:
    s = RtpSender(0, ssrc=42, sequence=0xFFFF, timestamp=0xFFFFFFC0)
    first, second = parse_rtp(s.audio(b"x" * 160, 160)), parse_rtp(s.audio(b"y" * 160, 160))
    assert first.marker and not second.marker  # first packet of the stream starts a talkspurt
    assert (first.sequence, second.sequence) == (0xFFFF, 0)
    assert (first.timestamp, second.timestamp) == (0xFFFFFFC0, 0x60)
    s.silence(800)
    third = parse_rtp(s.audio(b"z", 160))
    assert third.marker and third.sequence == 1 and third.timestamp == 0x60 + 160 + 800
    assert (s.packets_sent, s.octets_sent) == (3, 321)


def test_sender_event_switches_payload_type_keeps_audio_clock() -> None:
    s = RtpSender(8, ssrc=1, sequence=10, timestamp=1000)
    s.audio(b"a", 160)
    ev = parse_rtp(s.event(b"\x01\x0a\x00\xa0", payload_type=101, timestamp=1160, marker=True))
    assert (ev.payload_type, ev.sequence, ev.timestamp, ev.marker) == (101, 11, 1160, True)
    nxt = parse_rtp(s.audio(b"b", 160))
    assert (nxt.payload_type, nxt.sequence, nxt.timestamp, nxt.marker) == (8, 12, 1160, False)


def test_sender_random_initial_values() -> None:
    a, b = RtpSender(0, rng=random.Random(1)), RtpSender(0, rng=random.Random(2))
    assert (a.ssrc, a.sequence, a.timestamp) != (b.ssrc, b.sequence, b.timestamp)
    again = RtpSender(0, rng=random.Random(1))
    assert (a.ssrc, a.sequence, a.timestamp) == (again.ssrc, again.sequence, again.timestamp)
    with pytest.raises(RtpError):
        RtpSender(200)


# --- Receiver: RFC 3550 Appendix A.1 / A.3 / A.8 ------------------------------------------------------


def feed(r: RtpReceiver, seqs: list[int]) -> list[bool]:
    return [r.update(s, s * 160, s * 160) for s in seqs]


def test_probation_needs_two_sequential_packets() -> None:
    r = RtpReceiver(1, 100)
    assert feed(r, [100, 101, 102]) == [False, True, True]
    assert (r.base_seq, r.received, r.expected, r.lost) == (101, 2, 2, 0)


def test_probation_restarts_on_gap() -> None:
    r = RtpReceiver(1, 100)
    assert feed(r, [100, 105, 106, 107]) == [False, False, True, True]
    assert r.base_seq == 106 and r.received == 2


def test_sequence_wrap_counts_a_cycle() -> None:
    r = RtpReceiver(1, 65534, probation=0)
    assert feed(r, [65534, 65535, 0, 1]) == [True] * 4
    assert r.cycles == 65536 and r.extended_max == 65537
    assert (r.expected, r.received, r.lost) == (4, 4, 0)


def test_no_probation_starting_at_zero() -> None:
    r = RtpReceiver(1, 0, probation=0)
    assert feed(r, [0, 1]) == [True, True]
    assert (r.extended_max, r.expected, r.lost) == (1, 2, 0)


def test_large_jump_then_resync_after_two_sequential() -> None:
    r = RtpReceiver(1, 10, probation=0)
    feed(r, [10, 11, 12])
    assert feed(r, [9000]) == [False]  # beyond MAX_DROPOUT: held as bad_seq
    assert feed(r, [20000]) == [False]  # another wild one, not sequential to the first
    assert feed(r, [20001, 20002]) == [True, True]  # the second of two sequential: resync
    assert (r.base_seq, r.received, r.expected, r.lost) == (20001, 2, 2, 0)


def test_duplicates_and_reordering() -> None:
    r = RtpReceiver(1, 1, probation=0)
    assert feed(r, [1, 2, 4, 3, 5, 5, 5]) == [True] * 7
    assert r.max_seq == 5 and r.cycles == 0
    assert (r.expected, r.received, r.lost) == (5, 7, -2)  # duplicates make loss negative (A.3)
    assert feed(r, [65500]) == [True]  # within MAX_MISORDER behind: an old packet, no new cycle
    assert r.max_seq == 5 and r.cycles == 0


def test_loss_and_fraction_per_interval() -> None:
    r = RtpReceiver(1, 1, probation=0)
    feed(r, [1, 2, 3, 4, 6, 7, 8, 9, 10])  # 5 lost of 10
    assert (r.expected, r.lost) == (10, 1)
    assert r.take_fraction_lost() == 256 // 10
    feed(r, list(range(11, 21)))
    assert r.take_fraction_lost() == 0  # new interval, nothing lost
    feed(r, [22, 24])  # 21 and 23 lost of 4
    assert r.take_fraction_lost() == 128
    assert r.lost == 3


def test_jitter_follows_a8_by_hand() -> None:
    r = RtpReceiver(1, 0, probation=0)
    # (timestamp, arrival) in 8 kHz units; transit 1000, 1010, 1000, 1020 -> |D| = 10, 10, 20
    for seq, (ts, arrival) in enumerate([(0, 1000), (160, 1170), (320, 1320), (480, 1500)]):
        r.update(seq, ts, arrival)
    j1 = 10 / 16
    j2 = j1 + (10 - j1) / 16
    j3 = j2 + (20 - j2) / 16
    assert r.jitter == pytest.approx(j3) == pytest.approx(2.38525390625)


def test_jitter_across_timestamp_wrap() -> None:
    r = RtpReceiver(1, 0, probation=0)
    r.update(0, 0xFFFFFF60, 5)
    r.update(1, 0x00000000, 5 + 160 + 16)  # 16 units late, across the 32-bit wrap
    assert r.jitter == pytest.approx(1.0)


def test_sender_report_bookkeeping() -> None:
    r = RtpReceiver(1, 0)
    r.on_sender_report(0x0123_4567_89AB_CDEF, now=12.5)
    assert r.last_sr == 0x456789AB and r.last_sr_at == 12.5


# --- Latching ----------------------------------------------------------------------------------------------

A, B = ("192.0.2.1", 4000), ("198.51.100.7", 5000)


def test_latch_first_packet_then_stick() -> None:
    latch = Latch(quiet=1.0)
    assert latch.accept(A, 11, 0.0)
    assert not latch.accept(B, 11, 0.1)  # same SSRC from elsewhere: never
    assert not latch.accept(B, 22, 0.5)  # new SSRC but A is still talking
    assert latch.accept(A, 11, 0.9)
    assert not latch.accept(B, 22, 1.5)  # quiet only 0.6 s
    assert latch.accept(B, 22, 2.0)  # quiet 1.1 s and a new SSRC: re-latch
    assert latch.address == B and latch.ssrc == 22
    assert not latch.accept(A, 11, 2.1)
    latch.reset()
    assert latch.accept(A, 11, 2.2)
