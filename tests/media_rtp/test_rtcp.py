"""RTCP compound packets, report blocks, RTT and the report interval (RFC 3550 §6)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxswitch.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpError,
    SdesChunk,
    SdesItem,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    build_compound,
    is_rtcp,
    ntp_short,
    ntp_timestamp,
    parse_compound,
    report_block,
    report_interval,
    round_trip_time,
    sender_report,
)
from voxswitch.media.rtp import RtpReceiver, RtpSender, build_rtp, parse_rtp

BLOCK = ReportBlock(
    ssrc=0x11223344, fraction_lost=25, cumulative_lost=-3, highest_seq=0x1_0005, jitter=17, lsr=0xB7052000, dlsr=0x54000
)


def test_sr_sdes_round_trip() -> None:
    sr = SenderReport(0xCAFE, ntp_timestamp(1_700_000_000.25), 123456, 50, 8000, (BLOCK,))
    sdes = SourceDescription.cname(0xCAFE, "alice@voxswitch.example")
    data = build_compound([sr, sdes])
    assert len(data) % 4 == 0
    assert data[:2] == b"\x81\xc8"  # V=2, RC=1, PT=SR
    parsed = parse_compound(data)
    assert parsed == [sr, sdes]
    assert isinstance(parsed[1], SourceDescription) and parsed[1].chunks[0].cname == "alice@voxswitch.example"


def test_rr_bytes_and_bye_reason() -> None:
    rr = ReceiverReport(0x01020304)
    bye = Bye((0x01020304, 0x0A0B0C0D), "hung up")
    data = build_compound([rr, bye])
    # RR, no blocks: length 1 word after the header. BYE: SC=2, two SSRCs, 1+7 octets of reason.
    assert data == bytes.fromhex("80c90001 01020304 82cb0004 01020304 0a0b0c0d 07") + b"hung up"
    assert parse_compound(data) == [rr, bye]


def test_report_block_fields_on_the_wire() -> None:
    data = build_compound([ReceiverReport(9, (BLOCK,))])
    word = data[12:16]
    assert word == bytes.fromhex("19fffffd")  # fraction 25, cumulative lost -3 in 24-bit two's complement
    assert parse_compound(data)[0] == ReceiverReport(9, (BLOCK,))


def test_unknown_packets_and_padding_on_last() -> None:
    app = UnknownRtcp(204, 1, b"\x00\x00\x00\x05name1234")
    base = build_compound([ReceiverReport(5), app])
    # Append 4 padding octets to the last packet: set P and grow its length by one word.
    last = bytearray(base[8:])
    last[0] |= 0x20
    last[3] += 1
    padded = base[:8] + bytes(last) + b"\x00\x00\x00\x04"
    assert parse_compound(padded) == [ReceiverReport(5), app]


def test_sdes_several_items_and_chunks() -> None:
    sdes = SourceDescription(
        (SdesChunk(1, ((SdesItem.CNAME, "a@b"), (SdesItem.TOOL, "voxswitch"))), SdesChunk(2, ((SdesItem.CNAME, "c"),)))
    )
    assert parse_compound(build_compound([ReceiverReport(1), sdes])) == [ReceiverReport(1), sdes]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x80\xc9", "short"),
        (bytes.fromhex("40c90001 01020304"), "version 1"),
        (bytes.fromhex("80c90002 01020304"), "length past datagram"),
        (bytes.fromhex("81c90001 01020304"), "report block missing"),
        (bytes.fromhex("80ca0001 01020304"), "SDES first"),
        (bytes.fromhex("a0c90001 01020304 80cb0000"), "padding not on last"),
        (bytes.fromhex("80c90001 01020304 00"), "trailing octets"),
        (bytes.fromhex("80c90000 81ca0001 00000001"), "SDES chunk without END"),
    ],
)
def test_parse_rejects(data: bytes, why: str) -> None:
    with pytest.raises(RtcpError):
        parse_compound(data)


def test_first_packet_check_can_be_relaxed() -> None:
    bye = build_compound([Bye((1,))])
    with pytest.raises(RtcpError):
        parse_compound(bye)
    assert parse_compound(bye, require_report_first=False) == [Bye((1,))]


@given(st.binary(max_size=120))
def test_parse_junk_raises_only_rtcp_error(data: bytes) -> None:
    for strict in (True, False):
        try:
            parse_compound(data, require_report_first=strict)
        except RtcpError:
            pass


def test_ntp_timestamp() -> None:
    assert ntp_timestamp(0.0) == 2_208_988_800 << 32
    assert ntp_timestamp(0.5) == (2_208_988_800 << 32) | 0x80000000
    assert ntp_short(0x0123_4567_89AB_CDEF) == 0x456789AB


def test_round_trip_time_rfc3550_example() -> None:
    # §6.4.1: A = 0xb7108000 (46864.500 s), LSR = 0xb7052000 (46853.125 s), DLSR = 0x00054000 (5.250 s)
    assert round_trip_time(0xB7108000, 0xB7052000, 0x00054000) == 6.125
    assert round_trip_time(0xB7108000, 0, 0) is None  # no SR yet
    assert round_trip_time(0xB7052000, 0xB7052000, 0x10) is None  # negative: clock trouble


def test_report_block_from_receiver_and_rtt_end_to_end() -> None:
    sender = RtpSender(0, ssrc=77, sequence=100, timestamp=0)
    receiver = None
    for i in range(10):
        data = sender.audio(bytes(160), 160)
        if i in (4, 5):
            continue  # lost
        p = parse_rtp(data)
        receiver = receiver or RtpReceiver(p.ssrc, p.sequence, probation=0)
        receiver.update(p.sequence, p.timestamp, p.timestamp + 1000)
    assert receiver is not None

    wall = 1_700_000_000.0
    sr = sender_report(sender, wall, sender.timestamp)
    assert (sr.packet_count, sr.octet_count) == (10, 1600)
    receiver.on_sender_report(parse_compound(build_compound([sr]))[0].ntp_timestamp, now=50.0)  # type: ignore[union-attr]

    block = report_block(receiver, now=50.25)
    assert (block.ssrc, block.fraction_lost, block.cumulative_lost, block.highest_seq) == (77, 51, 2, 109)
    assert block.jitter == 0 and block.lsr == ntp_short(sr.ntp_timestamp) and block.dlsr == 0x4000
    # The report comes back 0.25 s (held) + 0.1 s (network both ways) after the SR was sent.
    arrival = ntp_short(ntp_timestamp(wall + 0.35))
    assert round_trip_time(arrival, block.lsr, block.dlsr) == pytest.approx(0.1, abs=1e-4)


def test_report_interval_is_deterministic_with_rng() -> None:
    values = [report_interval(random.Random(seed)) for seed in range(200)]
    assert all(2.5 <= v <= 7.5 for v in values) and max(values) - min(values) > 4
    assert report_interval(random.Random(7)) == report_interval(random.Random(7))
    assert all(1.25 <= report_interval(random.Random(s), initial=True) <= 3.75 for s in range(50))


def test_is_rtcp_demux() -> None:
    assert is_rtcp(build_compound([ReceiverReport(1)]))
    assert not is_rtcp(build_rtp(parse_rtp(bytes.fromhex("80e50001000000000000000001020304"))))
    assert not is_rtcp(b"\x80")
