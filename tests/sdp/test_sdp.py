"""SDP parsing and offer/answer against RFC 4566/8866, RFC 3264 §10 and RFC 4317 examples."""

from __future__ import annotations

import string
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxswitch.sip.sdp import (
    PCMA,
    PCMU,
    Attribute,
    Bandwidth,
    Codec,
    Connection,
    Crypto,
    Direction,
    KeyParam,
    LocalMedia,
    Media,
    Negotiated,
    NegotiationError,
    Origin,
    SdpError,
    SessionDescription,
    Timing,
    answer,
    build_offer,
    parse,
    process_answer,
)

DATA = Path(__file__).parent / "data"
ILBC = Codec("iLBC", 8000)
G723 = Codec("G723", 8000)
OPUS = Codec("opus", 48000, 2, fmtp="useinbandfec=1")


def load(name: str) -> SessionDescription:
    return parse((DATA / f"{name}.sdp").read_text())


def local(*codecs: Codec, **kwargs: Any) -> LocalMedia:
    return LocalMedia("192.0.2.10", 40000, codecs or (PCMU,), **kwargs)


def reparse(sdp: SessionDescription) -> SessionDescription:
    """What the peer sees: every description we build must survive the wire."""
    again = parse(sdp.to_bytes())
    assert again == sdp
    return again


# ------------------------------------------------------------------------------------------ parsing


def test_rfc4566_section_5_example() -> None:
    sdp = load("rfc4566-5")
    assert sdp.origin == Origin("jdoe", 2890844526, 2890842807, "IN", "IP4", "10.47.16.5")
    assert sdp.session_name == "SDP Seminar"
    assert sdp.information == "A Seminar on the session description protocol"
    assert sdp.uri == "http://www.example.com/seminars/sdp.pdf"
    assert sdp.emails == ["j.doe@example.com (Jane Doe)"]
    assert sdp.connection == Connection("IN", "IP4", "224.2.17.12", ttl=127)
    assert sdp.timings == [Timing(2873397496, 2873404696)]
    assert sdp.direction is Direction.RECVONLY
    audio, video = sdp.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == ("audio", 49170, "RTP/AVP", ["0"])
    assert audio.codecs() == [Codec("PCMU", 8000, payload_type=0)]
    assert sdp.media_direction(audio) is Direction.RECVONLY  # session level applies
    assert video.rtpmaps[99].encoding == "h263-1998" and video.rtpmaps[99].clock_rate == 90000


def test_rfc8866_section_5_example() -> None:
    sdp = load("rfc8866-5")
    assert sdp.phones == ["+1 617 555-6011"]
    assert sdp.emails == ["Jane Doe <jane@jdoe.example.com>"]
    assert [m.port for m in sdp.media] == [49170, 49180, 51372]
    assert sdp.media_connection(sdp.media[0]) == Connection("IN", "IP4", "198.51.100.1")
    assert sdp.media_connection(sdp.media[2]) == Connection("IN", "IP6", "2001:db8::2")


@pytest.mark.parametrize("path", sorted(DATA.glob("*.sdp")), ids=lambda p: p.stem)
def test_vectors_round_trip_byte_for_byte(path: Path) -> None:
    text = path.read_text()
    crlf = text.replace("\n", "\r\n")
    assert str(parse(text)) == crlf  # LF accepted, CRLF emitted
    assert parse(crlf.encode()) == parse(text)


def test_every_line_type_and_unknown_attributes() -> None:
    sdp = load("every-line")
    assert sdp.timings[0].repeats == ["604800 3600 0 90000", "7d 1h 0 25h"]
    assert sdp.time_zones == "2882844526 -1h 2898848070 0" and sdp.key == "prompt"
    assert sdp.bandwidths == [Bandwidth("CT", 128)]
    audio, app, text = sdp.media
    assert audio.port_count == 2 and audio.information == "voice" and audio.key == "clear:key"
    assert audio.bandwidths == [Bandwidth("AS", 64), Bandwidth("TIAS", 64000)]
    assert [(c.name, c.clock_rate, c.channels, c.payload_type) for c in audio.codecs()] == [
        ("opus", 48000, 2, 111),
        ("PCMU", 8000, 1, 0),
        ("PCMA", 8000, 1, 8),
        ("telephone-event", 8000, 1, 101),
        ("CN", 8000, 1, 13),
    ]
    assert audio.codecs()[0].fmtp == "minptime=10;useinbandfec=1"
    assert (audio.ptime, audio.value("maxptime"), audio.rtcp_port) == (20, "40", 5005)
    assert audio.has("rtcp-mux") and audio.direction is Direction.SENDRECV
    assert Attribute("x-custom-empty", "") in audio.attributes
    assert audio.value("candidate") == "1 1 UDP 2130706431 2001:db8::2 5004 typ host"
    assert app.formats == ["*"] and app.codecs() == []
    assert app.connection == Connection("IN", "IP4", "198.51.100.7", ttl=127, count=3)
    assert text.port == 0


def test_static_payload_types_need_no_rtpmap() -> None:
    body = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 4000 RTP/AVP 0 8 9 3 18 4 13 96\n"
    codecs = parse(body).media[0].codecs()  # 96 has no rtpmap, so it cannot be used
    assert [(c.name, c.clock_rate, c.payload_type) for c in codecs] == [
        ("PCMU", 8000, 0),
        ("PCMA", 8000, 8),
        ("G722", 8000, 9),  # RFC 3551 §4.5.2: the RTP clock stays 8000
        ("GSM", 8000, 3),
        ("G729", 8000, 18),
        ("G723", 8000, 4),
        ("CN", 8000, 13),
    ]


def test_rfc4568_crypto_line_is_structured() -> None:
    (crypto,) = load("rfc4568-srtp").media[0].crypto
    assert crypto == Crypto(
        1,
        "AES_CM_128_HMAC_SHA1_80",
        (KeyParam("inline", "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz", "2^20", "1:4"),),
        ("FEC_ORDER=FEC_SRTP",),
    )
    several = Crypto.parse("7 AES_CM_128_HMAC_SHA1_32 inline:a|1:4;inline:b|2^31 KDR=1 UNENCRYPTED_SRTCP")
    assert [k.key for k in several.key_params] == ["a", "b"]
    assert several.key_params[1].lifetime == "2^31" and several.key_params[0].mki == "1:4"
    assert Crypto.parse(str(several)) == several


INVALID = [
    ("no-version", 1, "v=0"),
    ("version-1", 1, "v=0"),
    ("no-equals", 3, "<type>=<value>"),
    ("short-origin", 2, "6 fields"),
    ("no-session-name", 3, "s="),
    ("no-timing", None, "t="),
    ("unknown-type", 5, "x="),
    ("bad-port", 6, "port"),
    ("bad-payload-type", 6, "payload type"),
    ("no-formats", 6, "<fmt>"),
    ("bad-rtpmap", 7, "rtpmap"),
    ("bad-ptime", 7, "ptime"),
    ("bad-crypto", 7, "crypto"),
    ("no-connection", 5, "c="),
    ("two-session-connections", 5, "more than one c="),
    ("repeat-before-timing", 4, "r="),
    ("timing-in-media", 7, "t="),
    ("unicode-digits", 2, "sess-id"),
    ("bad-attribute-name", 5, "attribute name"),
]


@pytest.mark.parametrize(("name", "line_no", "fragment"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_vectors_name_the_line(name: str, line_no: int | None, fragment: str) -> None:
    text = (DATA / "invalid" / f"{name}.sdp").read_text()
    with pytest.raises(SdpError) as info:
        parse(text)
    assert info.value.line_no == line_no
    assert fragment in str(info.value)
    if line_no is not None:
        assert info.value.line == text.split("\n")[line_no - 1]


def test_every_invalid_vector_is_listed() -> None:
    assert {p.stem for p in (DATA / "invalid").glob("*.sdp")} == {c[0] for c in INVALID}


def test_non_utf8_body() -> None:
    with pytest.raises(SdpError, match="UTF-8"):
        parse(b"v=0\r\no=\xff 1 1 IN IP4 h\r\n")


# ------------------------------------------------------------------------------------ offer building


def test_build_offer_numbers_codecs_and_adds_dtmf_per_clock_rate() -> None:
    offer = reparse(build_offer(local(PCMU, PCMA, OPUS, ptime=20), session_id=42))
    assert offer.origin == Origin("-", 42, 42, "IN", "IP4", "192.0.2.10")
    assert offer.connection == Connection("IN", "IP4", "192.0.2.10")
    (audio,) = offer.media
    assert (audio.port, audio.proto, audio.formats) == (40000, "RTP/AVP", ["0", "8", "96", "101", "97"])
    assert [(c.name, c.clock_rate, c.channels, c.fmtp) for c in audio.codecs()] == [
        ("PCMU", 8000, 1, None),
        ("PCMA", 8000, 1, None),
        ("opus", 48000, 2, "useinbandfec=1"),
        ("telephone-event", 8000, 1, "0-16"),
        ("telephone-event", 48000, 1, "0-16"),
    ]
    assert audio.ptime == 20 and audio.direction is Direction.SENDRECV


def test_build_offer_with_srtp_and_rtcp_mux() -> None:
    key = Crypto(1, "AES_CM_128_HMAC_SHA1_80", (KeyParam("inline", "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5"),))
    offer = reparse(build_offer(local(crypto=(key,), rtcp_mux=True, dtmf=False), session_id=1))
    assert offer.media[0].proto == "RTP/SAVP"
    assert offer.media[0].crypto == [key] and offer.media[0].has("rtcp-mux")


# ---------------------------------------------------------------------------------- RFC 3264 §10


def test_rfc3264_10_1_answering_audio_only() -> None:
    offer = load("rfc3264-10.1-offer")
    sdp, neg = answer(offer, local(PCMU, dtmf=True), session_id=7)
    reparse(sdp)
    assert [(m.media, m.port, m.formats) for m in sdp.media] == [
        ("audio", 40000, ["0"]),
        ("video", 0, ["31"]),  # §6: refused streams stay, with port 0
        ("video", 0, ["32"]),
    ]
    assert sdp.timings == offer.timings
    assert neg == Negotiated(
        media_index=0,
        remote_address="host.anywhere.com",
        remote_port=49170,
        remote_rtcp_port=49171,
        rtcp_mux=False,
        codec=Codec("PCMU", 8000, payload_type=0),
        local_payload_type=0,
        telephone_event_pt=None,  # not offered
        local_telephone_event_pt=None,
        direction=Direction.SENDRECV,
        ptime=None,
        remote_hold=False,
        remote_crypto=None,
        local_crypto=None,
    )


def test_rfc3264_10_1_offerer_side_both_exchanges() -> None:
    neg = process_answer(load("rfc3264-10.1-offer"), load("rfc3264-10.1-answer"))
    assert neg is not None
    assert (neg.remote_address, neg.remote_port, neg.codec.name) == ("host.example.com", 49920, "PCMU")
    # Bob's re-offer moves his port and adds a recvonly events stream that Alice accepts.
    offer2, answer2 = load("rfc3264-10.1-offer-2"), load("rfc3264-10.1-answer-2")
    assert offer2.origin.version == load("rfc3264-10.1-answer").origin.version + 1
    neg2 = process_answer(offer2, answer2)
    assert neg2 is not None
    assert (neg2.media_index, neg2.remote_address, neg2.remote_port) == (0, "host.anywhere.com", 49170)
    # Voxswitch as Alice: one audio stream is all it takes; the rest are refused in place.
    sdp, _ = answer(offer2, local(PCMU), session_id=1)
    assert [m.port for m in sdp.media] == [40000, 0, 0, 0]


def test_rfc3264_10_2_inactive_then_locked_down() -> None:
    offer = load("rfc3264-10.2-offer")
    sdp, neg = answer(offer, local(G723, PCMU, single_codec=False), session_id=1)
    assert neg is not None and neg.direction is Direction.INACTIVE
    assert sdp.media[0].formats == ["4", "0"] and sdp.media[0].direction is Direction.INACTIVE
    theirs = process_answer(offer, load("rfc3264-10.2-answer"))
    assert theirs is not None and theirs.direction is Direction.INACTIVE
    neg2 = process_answer(load("rfc3264-10.2-offer-2"), load("rfc3264-10.2-answer-2"))
    assert neg2 is not None and neg2.direction is Direction.SENDRECV and neg2.codec.name == "G723"


# ------------------------------------------------------------------------------------------ RFC 4317


def test_rfc4317_2_1_audio_and_video() -> None:
    offer = load("rfc4317-2.1-offer")
    sdp, neg = answer(offer, local(PCMU, PCMA), session_id=1)
    assert [(m.port, m.formats) for m in sdp.media] == [(40000, ["0"]), (0, ["31", "32"])]
    assert neg is not None and neg.codec.payload_type == 0
    theirs = process_answer(offer, load("rfc4317-2.1-answer"))
    assert theirs is not None
    assert (theirs.remote_address, theirs.remote_port, theirs.codec.name) == ("host.biloxi.example.com", 49174, "PCMU")


def test_rfc4317_2_2_narrowed_in_a_second_exchange() -> None:
    first = process_answer(load("rfc4317-2.2-offer"), load("rfc4317-2.2-answer"))
    second = process_answer(load("rfc4317-2.2-offer-2"), load("rfc4317-2.2-answer-2"))
    assert first is not None and second is not None
    assert first.codec.name == second.codec.name == "PCMU"
    assert second.remote_port == 49172


def test_rfc4317_2_3_renumbered_dynamic_payload_type() -> None:
    neg = process_answer(load("rfc4317-2.3-offer"), load("rfc4317-2.3-answer"))
    assert neg is not None
    assert (neg.codec.name, neg.codec.payload_type, neg.local_payload_type) == ("iLBC", 99, 97)


def test_rfc4317_2_4_two_audio_streams() -> None:
    offer = load("rfc4317-2.4-offer")
    neg = process_answer(offer, load("rfc4317-2.4-answer"))
    assert neg is not None and neg.media_index == 0 and neg.codec.name == "iLBC"
    sdp, mine = answer(offer, local(ILBC, PCMU), session_id=1)
    assert [(m.port, m.formats) for m in sdp.media] == [(40000, ["97"]), (0, ["98"])]
    assert mine is not None and mine.codec == Codec("iLBC", 8000, payload_type=97)


def test_rfc4317_2_5_unchanged_answer_keeps_its_version() -> None:
    bob_offer, bob_reoffer = load("rfc4317-2.5-answer"), load("rfc4317-2.5-offer-2")
    first, _ = answer(bob_offer, local(ILBC), session_id=900)
    same, neg = answer(bob_reoffer, local(ILBC), session_id=12345, previous=first)
    assert str(same) == str(first)  # §8: nothing changed, so neither did o=
    assert neg is not None and neg.remote_address == "newhost.biloxi.example.com" and neg.remote_port == 49178
    moved, _ = answer(bob_reoffer, replace(local(ILBC), port=40002), session_id=1, previous=first)
    assert moved.origin == replace(first.origin, version=first.origin.version + 1)


def test_rfc4317_2_6_first_stream_refused_second_accepted() -> None:
    offer = load("rfc4317-2.6-offer")
    sdp, neg = answer(offer, local(ILBC), session_id=1)
    assert [(m.port, m.formats) for m in sdp.media] == [(0, ["0"]), (40000, ["97", "101"])]
    assert sdp.media[1].fmtps == {"101": "0-16"}
    assert neg is not None and (neg.media_index, neg.telephone_event_pt) == (1, 101)
    theirs = process_answer(offer, load("rfc4317-2.6-answer"))
    assert theirs is not None
    assert (theirs.media_index, theirs.telephone_event_pt, theirs.local_telephone_event_pt) == (1, 101, 101)


def test_rfc4317_3_1_hold_and_unhold() -> None:
    held = process_answer(load("rfc4317-3.1-offer"), load("rfc4317-3.1-answer"))
    assert held is not None
    assert (held.direction, held.remote_hold, held.remote_address) == (
        Direction.RECVONLY,
        True,
        "placeholder.biloxi.example.com",
    )
    # Voxswitch as Alice answering Bob's unhold offer (no direction attribute: sendrecv).
    offer2 = load("rfc4317-3.1-offer-2")
    sdp, mine = answer(offer2, local(ILBC, PCMU), session_id=1)
    assert mine is not None and mine.direction is Direction.SENDRECV and not mine.remote_hold
    assert sdp.media[0].direction is Direction.SENDRECV and sdp.media[0].formats == ["97"]
    resumed = process_answer(offer2, load("rfc4317-3.1-answer-2"))
    assert resumed is not None and resumed.direction is Direction.SENDRECV and resumed.remote_port == 49178


def test_rfc4317_3_2_hold_one_of_two_streams() -> None:
    offer2 = load("rfc4317-3.2-offer-2")
    neg = process_answer(offer2, load("rfc4317-3.2-answer-2"))
    assert neg is not None and neg.direction is Direction.SENDONLY and not neg.remote_hold
    sdp, mine = answer(offer2, local(ILBC), session_id=1)
    assert mine is not None and mine.direction is Direction.RECVONLY and mine.remote_hold
    assert sdp.media[0].direction is Direction.RECVONLY


def test_rfc4317_4_3_stream_deleted_in_a_reoffer() -> None:
    offer2 = load("rfc4317-4.3-offer-2")
    sdp, neg = answer(offer2, local(ILBC), session_id=1)
    assert [(m.media, m.port) for m in sdp.media] == [("audio", 40000), ("video", 0)]
    assert neg is not None and neg.remote_port == 49174
    assert process_answer(offer2, load("rfc4317-4.3-answer-2")) is not None


def test_rfc4317_5_1_no_media_then_audio_added() -> None:
    sdp, neg = answer(load("rfc4317-5.1-offer"), local(ILBC), session_id=5)
    assert neg is None and sdp.media == []
    assert process_answer(load("rfc4317-5.1-offer"), load("rfc4317-5.1-answer")) is None
    sdp2, neg2 = answer(load("rfc4317-5.1-offer-2"), local(ILBC), session_id=5, previous=sdp)
    assert neg2 is not None and sdp2.origin.version == sdp.origin.version + 1


def test_rfc4317_5_2_and_5_3_legacy_hold_address() -> None:
    # RFC 3264 §8.4: c=0.0.0.0 means "do not send to me".
    sdp, neg = answer(load("rfc4317-5.2-offer"), local(ILBC), session_id=1)
    assert neg is not None and neg.remote_hold and neg.direction is Direction.RECVONLY
    assert neg.remote_address == "0.0.0.0" and sdp.media[0].direction is Direction.RECVONLY
    theirs = process_answer(load("rfc4317-5.3-offer"), load("rfc4317-5.3-answer"))
    assert theirs is not None and theirs.remote_hold and theirs.direction is Direction.RECVONLY


# ------------------------------------------------------------------------------- negotiation rules


def offer_with(direction: str | None = None, formats: str = "0", extra: str = "", proto: str = "RTP/AVP") -> str:
    lines = ["v=0", "o=peer 1 1 IN IP4 198.51.100.1", "s=-", "c=IN IP4 198.51.100.1", "t=0 0"]
    lines.append(f"m=audio 30000 {proto} {formats}")
    lines += [line for line in extra.split("\n") if line]
    if direction:
        lines.append(f"a={direction}")
    return "\r\n".join(lines) + "\r\n"


@pytest.mark.parametrize(
    ("offered", "wanted", "expected"),
    [
        # RFC 3264 §6.1
        ("sendrecv", Direction.SENDRECV, Direction.SENDRECV),
        ("sendonly", Direction.SENDRECV, Direction.RECVONLY),
        ("recvonly", Direction.SENDRECV, Direction.SENDONLY),
        ("inactive", Direction.SENDRECV, Direction.INACTIVE),
        ("sendrecv", Direction.SENDONLY, Direction.SENDONLY),
        ("sendrecv", Direction.INACTIVE, Direction.INACTIVE),
        ("sendonly", Direction.SENDONLY, Direction.INACTIVE),
    ],
)
def test_direction_table(offered: str, wanted: Direction, expected: Direction) -> None:
    sdp, neg = answer(parse(offer_with(offered)), local(direction=wanted), session_id=1)
    assert neg is not None and neg.direction is expected
    assert sdp.media[0].direction is expected


def test_dynamic_payload_types_keep_the_offerers_numbers() -> None:
    extra = "a=rtpmap:109 opus/48000/2\na=rtpmap:110 telephone-event/48000\na=rtpmap:96 telephone-event/8000"
    offer = parse(offer_with(formats="109 0 110 96", extra=extra))
    sdp, neg = answer(offer, local(OPUS, PCMU), session_id=1)
    assert neg is not None
    assert (neg.codec.payload_type, neg.telephone_event_pt) == (109, 110)  # same clock as opus
    assert sdp.media[0].formats == ["109", "110"]
    assert sdp.media[0].fmtps == {"109": "useinbandfec=1", "110": "0-16"}
    _, neg8 = answer(offer, local(PCMU, OPUS), session_id=1)
    assert neg8 is not None and (neg8.codec.payload_type, neg8.telephone_event_pt) == (0, 96)


def test_preference_order_single_and_multiple_codecs() -> None:
    offer = parse(offer_with(formats="8 0"))
    assert answer(offer, local(PCMU, PCMA), session_id=1)[0].media[0].formats == ["0"]
    assert answer(offer, local(PCMU, PCMA, prefer_remote=True), session_id=1)[0].media[0].formats == ["8"]
    both = answer(offer, local(PCMU, PCMA, single_codec=False, dtmf=False), session_id=1)[0]
    assert both.media[0].formats == ["0", "8"]


def test_no_common_codec_refuses_the_offer() -> None:
    with pytest.raises(NegotiationError):
        answer(parse(offer_with(formats="18")), local(PCMU, PCMA), session_id=1)
    video_only = load("rfc4317-2.1-offer")
    video_only.media = video_only.media[1:]
    with pytest.raises(NegotiationError):
        answer(video_only, local(), session_id=1)


def test_telephone_event_alone_is_not_a_voice_codec() -> None:
    with pytest.raises(NegotiationError):
        answer(parse(offer_with(formats="101", extra="a=rtpmap:101 telephone-event/8000")), local(), session_id=1)


def test_rtcp_mux_and_rtcp_port() -> None:
    offer = parse(offer_with(extra="a=rtcp-mux\na=rtcp:30011"))
    sdp, neg = answer(offer, local(rtcp_mux=True), session_id=1)
    assert neg is not None and neg.rtcp_mux and neg.remote_rtcp_port == 30000
    assert sdp.media[0].has("rtcp-mux")
    _, no_mux = answer(offer, local(), session_id=1)
    assert no_mux is not None and not no_mux.rtcp_mux and no_mux.remote_rtcp_port == 30011


def test_ptime_from_media_or_session() -> None:
    _, neg = answer(parse(offer_with(extra="a=ptime:30")), local(), session_id=1)
    assert neg is not None and neg.ptime == 30
    session_level = offer_with().replace("t=0 0\r\n", "t=0 0\r\na=ptime:40\r\n")
    _, neg = answer(parse(session_level), local(), session_id=1)
    assert neg is not None and neg.ptime == 40


SUITE_80 = "AES_CM_128_HMAC_SHA1_80"
SUITE_32 = "AES_CM_128_HMAC_SHA1_32"


def test_srtp_answer_uses_the_offers_tag_and_our_key() -> None:
    extra = f"a=crypto:1 {SUITE_80} inline:dGhlaXJrZXkxdGhlaXJrZXkxdGhlaXJrZXkx\n"
    extra += f"a=crypto:2 {SUITE_32} inline:dGhlaXJrZXkydGhlaXJrZXkydGhlaXJrZXky|2^31"
    offer = parse(offer_with(extra=extra, proto="RTP/SAVP"))
    ours = Crypto(9, SUITE_32, (KeyParam("inline", "b3Vya2V5b3Vya2V5b3Vya2V5b3Vya2V5"),))
    sdp, neg = answer(offer, local(crypto=(ours,)), session_id=1)
    assert neg is not None and neg.remote_crypto is not None
    assert neg.remote_crypto.tag == 2 and neg.remote_crypto.key_params[0].lifetime == "2^31"
    assert neg.local_crypto == replace(ours, tag=2)
    assert sdp.media[0].proto == "RTP/SAVP" and sdp.media[0].crypto == [replace(ours, tag=2)]
    with pytest.raises(NegotiationError):  # SRTP offered, no keys here
        answer(offer, local(), session_id=1)


def test_require_crypto_refuses_plain_streams_even_when_they_come_first() -> None:
    ours = Crypto(1, SUITE_80, (KeyParam("inline", "b3Vya2V5b3Vya2V5b3Vya2V5b3Vya2V5b3Vy"),))
    theirs = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:dGhlaXJrZXkxdGhlaXJrZXkxdGhlaXJrZXkx"
    two = offer_with() + offer_with(extra=theirs, proto="RTP/SAVP").split("t=0 0\r\n", 1)[1]
    offer = parse(two)
    assert [m.proto for m in offer.media] == ["RTP/AVP", "RTP/SAVP"]
    sdp, neg = answer(offer, local(crypto=(ours,)), session_id=1)
    assert neg is not None and neg.media_index == 0 and neg.remote_crypto is None  # plain first is fine
    sdp, neg = answer(offer, local(crypto=(ours,), require_crypto=True), session_id=1)
    assert neg is not None and neg.media_index == 1 and neg.remote_crypto is not None
    assert sdp.media[0].port == 0 and sdp.media[1].proto == "RTP/SAVP"
    with pytest.raises(NegotiationError):
        answer(parse(offer_with()), local(crypto=(ours,), require_crypto=True), session_id=1)


def test_srtp_end_to_end() -> None:
    alice_key = Crypto(1, SUITE_80, (KeyParam("inline", "YWxpY2VhbGljZWFsaWNlYWxpY2VhbGljZWFs"),))
    bob_key = Crypto(1, SUITE_80, (KeyParam("inline", "Ym9iYm9iYm9iYm9iYm9iYm9iYm9iYm9iYm9i"),))
    offer = reparse(build_offer(local(crypto=(alice_key,)), session_id=1))
    sdp, bob = answer(offer, LocalMedia("198.51.100.2", 50000, (PCMU,), crypto=(bob_key,)), session_id=2)
    alice = process_answer(offer, reparse(sdp))
    assert alice is not None and bob is not None
    assert alice.local_crypto == bob.remote_crypto == alice_key
    assert alice.remote_crypto == bob.local_crypto == bob_key


def test_offer_answer_end_to_end_with_hold_and_resume() -> None:
    alice_media = local(PCMU, PCMA)
    bob_media = LocalMedia("198.51.100.2", 50000, (PCMA, PCMU))
    offer = reparse(build_offer(alice_media, session_id=100))
    bob_sdp, bob = answer(offer, bob_media, session_id=200)
    alice = process_answer(offer, reparse(bob_sdp))
    assert alice is not None and bob is not None
    assert alice.codec.name == bob.codec.name == "PCMA"  # the answerer's preference wins
    assert (alice.remote_address, alice.remote_port) == ("198.51.100.2", 50000)
    assert (bob.remote_address, bob.remote_port) == ("192.0.2.10", 40000)
    assert alice.telephone_event_pt == bob.telephone_event_pt == 101
    # Alice holds (RFC 3264 §8.4): same o= line, version + 1, sendonly; Bob answers recvonly.
    hold = build_offer(replace(alice_media, direction=Direction.SENDRECV.held()), session_id=0, previous=offer)
    assert hold.origin == replace(offer.origin, version=offer.origin.version + 1)
    bob_hold_sdp, bob_held = answer(hold, bob_media, session_id=0, previous=bob_sdp)
    assert bob_held is not None and bob_held.remote_hold and bob_held.direction is Direction.RECVONLY
    assert bob_hold_sdp.origin.version == bob_sdp.origin.version + 1
    alice_held = process_answer(hold, bob_hold_sdp)
    assert alice_held is not None and alice_held.direction is Direction.SENDONLY
    # Resume, then a refresh that changes nothing keeps the version.
    resume = build_offer(alice_media, session_id=0, previous=hold)
    assert resume.origin.version == offer.origin.version + 2
    assert build_offer(alice_media, session_id=0, previous=resume).origin == resume.origin


def test_reoffer_keeps_refused_streams() -> None:
    # We answered audio+video with video refused; our later offer must keep both m= lines (§8).
    ours, _ = answer(load("rfc4317-2.1-offer"), local(PCMU), session_id=1)
    reoffer = build_offer(local(PCMU, direction=Direction.SENDONLY), session_id=1, previous=ours)
    assert [(m.media, m.port) for m in reoffer.media] == [("audio", 40000), ("video", 0)]
    assert reoffer.media[0].direction is Direction.SENDONLY


def test_process_answer_rejects_malformed_answers() -> None:
    offer = load("rfc4317-2.1-offer")
    short = load("rfc4317-2.1-answer")
    short.media = short.media[:1]
    with pytest.raises(NegotiationError, match="m= lines"):
        process_answer(offer, short)
    swapped = load("rfc4317-2.1-answer")
    swapped.media.reverse()
    with pytest.raises(NegotiationError):
        process_answer(offer, swapped)
    refused = load("rfc4317-2.1-answer")
    refused.media[0].port = 0
    with pytest.raises(NegotiationError):
        process_answer(offer, refused)


# ---------------------------------------------------------------------------------------- property


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_fuzz_parse_raises_only_sdp_error(body: str | bytes) -> None:
    try:
        parse(body)
    except SdpError:
        pass


_VECTOR_TEXTS = [p.read_text() for p in sorted(DATA.glob("*.sdp"))]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_VECTOR_TEXTS), st.integers(min_value=0, max_value=40), st.text(max_size=40))
def test_fuzz_one_corrupted_line(text: str, index: int, junk: str) -> None:
    lines = text.split("\n")
    lines[index % len(lines)] = junk
    try:
        parse("\n".join(lines))
    except SdpError:
        pass


_token = st.text(string.ascii_letters + string.digits + "-.", min_size=1, max_size=8)
_free = st.text(st.characters(exclude_characters="\r\n\x00", exclude_categories=["Cs"]), max_size=12)
_num = st.integers(min_value=0, max_value=2**40)
_conn = st.one_of(
    st.builds(Connection, st.just("IN"), st.just("IP4"), _token, st.none(), st.none()),
    st.builds(Connection, st.just("IN"), st.just("IP4"), _token, st.integers(0, 255), st.none() | st.integers(1, 9)),
    st.builds(Connection, st.just("IN"), st.just("IP6"), _token, st.none(), st.none() | st.integers(1, 9)),
)
_attr = st.builds(
    Attribute,
    _token.filter(lambda n: n not in {"rtpmap", "fmtp", "ptime", "maxptime", "rtcp", "crypto"}),
    st.none() | _free,
)
_bw = st.builds(Bandwidth, _token, _num)


@st.composite
def _media(draw: st.DrawFn) -> Media:
    rtp = draw(st.booleans())
    fmt = st.integers(0, 127).map(str) if rtp else _token
    return Media(
        media=draw(_token),
        port=draw(st.integers(0, 65535)),
        proto="RTP/AVP" if rtp else draw(_token),
        formats=draw(st.lists(fmt, min_size=1, max_size=4)),
        port_count=draw(st.none() | st.integers(1, 4)),
        information=draw(st.none() | _free),
        connections=draw(st.lists(_conn, min_size=1, max_size=2)),
        bandwidths=draw(st.lists(_bw, max_size=2)),
        key=draw(st.none() | _free),
        attributes=draw(st.lists(_attr, max_size=4)),
    )


_sdp = st.builds(
    SessionDescription,
    origin=st.builds(Origin, _token, _num, _num, st.just("IN"), st.sampled_from(["IP4", "IP6"]), _token),
    session_name=_free,
    information=st.none() | _free,
    uri=st.none() | _free,
    emails=st.lists(_free, max_size=2),
    phones=st.lists(_free, max_size=2),
    connection=st.none() | _conn,
    bandwidths=st.lists(_bw, max_size=2),
    timings=st.lists(st.builds(Timing, _num, _num, st.lists(_free, max_size=2)), min_size=1, max_size=2),
    time_zones=st.none() | _free,
    key=st.none() | _free,
    attributes=st.lists(_attr, max_size=4),
    media=st.lists(_media(), max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(_sdp)
def test_round_trip_structured(sdp: SessionDescription) -> None:
    assert parse(str(sdp)) == sdp
