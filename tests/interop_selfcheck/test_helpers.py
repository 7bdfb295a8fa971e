"""The peer-free parts of tests/peers: ports, digest checking, SIP log parsing, audio measures."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.peers import audio, digest, ports, siplog
from tests.peers.sipp import parse_stats, render_scenario, scenario


def test_sip_port_is_free_on_udp_and_tcp() -> None:
    port = ports.free_sip_port()
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", port))
    assert port not in {ports.free_sip_port() for _ in range(20)}, "handed-out ports are not reused"


def test_rtp_range_is_even_free_and_below_the_ephemeral_range() -> None:
    base = ports.free_rtp_range(10)
    assert base % 2 == 0 and base >= 20000
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        assert base + 10 <= int(f.read().split()[0])
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(10)]
    try:
        for i, s in enumerate(sockets):
            s.bind(("127.0.0.1", base + i))
    finally:
        for s in sockets:
            s.close()
    ports.release(*range(base, base + 10))


# RFC 2617 3.5 and RFC 7616 3.9.1 examples.
RFC2617 = (
    'Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
    'uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", '
    'response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC7616 = (
    'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm={alg}, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, '
    'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="{resp}", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)


def test_digest_rfc_examples() -> None:
    assert digest.verify_authorization(RFC2617, "GET", "Circle Of Life", username="Mufasa")
    assert not digest.verify_authorization(RFC2617, "GET", "Circle of Life")
    md5 = RFC7616.format(alg="MD5", resp="8ca523f5e9506fed4657c9700eebdbec")
    sha = RFC7616.format(alg="SHA-256", resp="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")
    assert digest.verify_authorization(md5, "GET", "Circle of Life", realm="http-auth@example.org")
    assert digest.verify_authorization(sha, "GET", "Circle of Life", algorithm="SHA-256")
    assert not digest.verify_authorization(sha, "GET", "Circle of Life", algorithm="MD5")
    assert digest.parse_digest(sha)["cnonce"] == "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def test_sipp_message_log_parsing() -> None:
    log = (
        "----------------------------------------------- 2026-01-01 10:00:00.000000\n"
        "UDP message received [100] bytes :\n\n"
        "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:5062\r\nCSeq: 1 REGISTER\r\n"
        'Authorization: Digest username="a",\r\n realm="r"\r\nContent-Length: 0\r\n\r\n\n'
        "----------------------------------------------- 2026-01-01 10:00:00.001000\n"
        "UDP message sent (80 bytes):\n\n"
        "SIP/2.0 401 Unauthorized\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n\n"
    )
    request, response = siplog.parse_sipp_message_log(log)
    assert (request.direction, request.transport, request.method) == ("received", "UDP", "REGISTER")
    assert request.header("Via") == "SIP/2.0/UDP 127.0.0.1:5062"  # compact form
    assert request.header("authorization") == 'Digest username="a", realm="r"'  # folded line
    assert (response.direction, response.status, response.method) == ("sent", 401, "REGISTER")


def test_pjsip_log_parsing() -> None:
    head = "10:00:00.000           pjsua_core.c  ."
    log = (
        f"{head}TX 300 bytes Request msg MESSAGE/cseq=7 (tdta0x1) to TCP 127.0.0.1:5060:\n"
        "MESSAGE sip:bob@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKPj1\r\n"
        "Call-ID: c1\r\nCSeq: 7 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length:     2\r\n\r\nhi\n--end msg--\n"
        f"{head}RX 200 bytes Response msg 200/MESSAGE/cseq=7 (rdata0x2) from TCP 127.0.0.1:5060:\n"
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKPj1\r\nCall-ID: c1\r\nCSeq: 7 MESSAGE\r\n"
        "Content-Length:  0\r\n\r\n\n--end msg--\n"
    )
    request, response = siplog.parse_pjsip_log(log)
    assert (request.direction, request.transport, request.destination) == ("sent", "TCP", "127.0.0.1:5060")
    assert (request.call_id, request.cseq, request.sent_by, request.body) == ("c1", 7, "127.0.0.1:5070", "hi")
    assert (response.direction, response.status, response.method) == ("received", 200, "MESSAGE")
    assert response.source == "127.0.0.1:5060"


def test_baresip_trace_parsing() -> None:
    def entry(src: str, dst: str, text: str) -> str:
        return f"\x1b[36;1m#\nTCP {src} -> {dst}\n{text}\x1b[;m\n"

    own = {"127.0.0.1:5070", "127.0.0.1:5071"}
    # Over TCP baresip's end of a connection is an ephemeral port: only the Via says who sent what.
    trace = (
        "baresip is ready.\n"
        + entry(
            "127.0.0.1:40001",
            "127.0.0.1:5060",
            "MESSAGE sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070\r\nCSeq: 1 MESSAGE\r\n\r\nhi",
        )
        + "some log line\n"
        + entry(
            "127.0.0.1:5060",
            "127.0.0.1:40001",
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1:5070\r\nCSeq: 1 MESSAGE\r\n\r\n",
        )
        + entry(
            "127.0.0.1:5060",
            "127.0.0.1:40001",
            "MESSAGE sip:a@x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK1\r\nCSeq: 9 MESSAGE\r\n\r\nyo",
        )
        + entry(
            "127.0.0.1:40001",
            "127.0.0.1:5060",
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK1\r\nCSeq: 9 MESSAGE\r\n\r\n",
        )
    )
    messages = siplog.parse_baresip_trace(trace, own)
    assert [(m.is_request, m.direction) for m in messages] == [
        (True, "sent"),
        (False, "received"),
        (True, "received"),
        (False, "sent"),
    ]
    assert [m.body for m in messages] == ["hi", "", "yo", ""]
    assert messages[0].source == "127.0.0.1:40001" and messages[0].transport == "TCP"


def test_stats_and_templates(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text("A;SuccessfulCall(C);FailedCall(C);\n1;0;0;\n2;3;1;\n")
    assert parse_stats(tmp_path / "s.csv") == {"A": "2", "SuccessfulCall(C)": "3", "FailedCall(C)": "1"}
    assert parse_stats(tmp_path / "missing.csv") == {}
    with pytest.raises(KeyError, match="reason, status"):
        render_scenario(scenario("uas_reject"), tmp_path / "r.xml", {})
    out = render_scenario(scenario("uas_reject"), tmp_path / "r.xml", {"status": "486", "reason": "Busy Here"})
    assert "SIP/2.0 486 Busy Here" in out.read_text() and "{{" not in out.read_text()


def test_tone_measures(tmp_path: Path) -> None:
    wav = audio.read_wav(audio.write_tone(tmp_path / "t.wav", 1000, seconds=0.5))
    assert wav.rate == 8000 and wav.seconds == 0.5
    assert -10 < audio.rms_dbfs(wav.samples) < -8  # a 0.5 amplitude sine: -9 dBFS
    assert audio.tone_ratio(wav.samples, wav.rate, 1000) > 0.95
    assert audio.tone_ratio(wav.samples, wav.rate, 440) < 0.05
    silence = audio.read_wav(audio.write_tone(tmp_path / "s.wav", 0, seconds=0.1))
    assert audio.rms_dbfs(silence.samples) == float("-inf")
