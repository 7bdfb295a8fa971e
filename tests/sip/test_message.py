"""Header fields, messages, framing, validation and responses (RFC 3261 §7, §8.2, §18.3, §20, §24)."""

from __future__ import annotations

import itertools
import string
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxswitch.sip import errors as errors_module
from voxswitch.sip import headers as headers_module
from voxswitch.sip import message as message_module
from voxswitch.sip.errors import SipParseError
from voxswitch.sip.headers import (
    CSeq,
    NameAddr,
    Via,
    canonical_name,
    header_key,
    parse_auth,
    parse_cseq,
    parse_date,
    parse_media_type,
    parse_name_addr,
    parse_name_addrs,
    parse_params,
    parse_quoted,
    parse_via,
    parse_vias,
    quote_string,
    split_list,
    unquote,
)
from voxswitch.sip.message import (
    Request,
    Response,
    SipMessage,
    StreamFramer,
    build_response,
    error_response,
    parse_message,
    parse_multipart,
    validate,
)
from voxswitch.sip.uri import AbsoluteUri, Params, SipUri, TelUri

RFC3261 = Path(__file__).parent / "corpus" / "rfc3261"

OPTIONS = (
    b"OPTIONS sip:carol@chicago.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:carol@chicago.com>\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 63104 OPTIONS\r\n"
    b"Contact: <sip:alice@pc33.atlanta.com>\r\n"
    b"Accept: application/sdp\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def options(**fields: str) -> bytes:
    """OPTIONS (RFC 3261 §11.1) with header lines replaced, added before Content-Length, or dropped ("")."""
    lines = OPTIONS.split(b"\r\n")
    for field, value in fields.items():
        name = field.replace("_", "-").encode()
        line = name + b": " + value.encode()
        found = [i for i, old in enumerate(lines) if old.lower().startswith(name.lower() + b":")]
        if found and value:
            lines[found[0]] = line
        elif found:
            del lines[found[0]]
        elif value:
            lines.insert(len(lines) - 3, line)
    return b"\r\n".join(lines)


def req(data: bytes = OPTIONS) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


# --- names -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("i", "Call-ID"),
        ("m", "Contact"),
        ("e", "Content-Encoding"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("f", "From"),
        ("s", "Subject"),
        ("k", "Supported"),
        ("t", "To"),
        ("v", "Via"),
        ("o", "Event"),
        ("u", "Allow-Events"),
        ("r", "Refer-To"),
        ("b", "Referred-By"),
        ("x", "Session-Expires"),
        ("y", "Identity"),
        ("V", "Via"),
        ("cseq", "CSeq"),
        ("CALL-ID", "Call-ID"),
        ("www-authenticate", "WWW-Authenticate"),
        ("X-Custom-Thing", "X-Custom-Thing"),
    ],
)
def test_header_names(name: str, canonical: str) -> None:
    assert canonical_name(name) == canonical and header_key(name) == canonical.lower()


# --- quoted strings, lists, params -------------------------------------------------------------------------


def test_quoted_strings() -> None:
    assert parse_quoted('"a \\"b\\" \\\\ c" rest') == ('a "b" \\ c', 14)
    assert quote_string('a "b" \\ c') == '"a \\"b\\" \\\\ c"'
    assert unquote('"x\\"y"') == 'x"y' and unquote("token") == "token"
    for bad in ('"unterminated', '"bare \x01 control"', '"\\é"'):
        with pytest.raises(SipParseError):
            parse_quoted(bad)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs", "Cc"]) | st.just("\t"), max_size=20))
def test_quote_string_round_trips(text: str) -> None:
    quoted = quote_string(text)  # control characters are not qdtext, so they are left out here
    assert parse_quoted(quoted) == (text, len(quoted))


def test_split_list() -> None:
    assert split_list("a, b ,c") == ["a", "b", "c"]
    assert split_list('"Doe, John" <sip:j@x>;q=1, <sip:a,b@y>') == ['"Doe, John" <sip:j@x>;q=1', "<sip:a,b@y>"]
    assert split_list('"a \\" , b", c') == ['"a \\" , b"', "c"]
    assert split_list("a,,b") == ["a", "", "b"]
    for bad in ('"open, b', "<sip:open, b"):
        with pytest.raises(SipParseError):
            split_list(bad)


def test_params_parse() -> None:
    p = parse_params(' ; tag = 1x ;lr; q=0.5;received=[2001:db8::1] ;x="a;b"')
    assert p.items == (("tag", "1x"), ("lr", None), ("q", "0.5"), ("received", "[2001:db8::1]"), ("x", '"a;b"'))
    for bad in (";", ";;", "; =1", ";a b", ';x="open'):
        with pytest.raises(SipParseError):
            parse_params(bad)


# --- name-addr ---------------------------------------------------------------------------------------------


def test_name_addr_forms() -> None:
    quoted = parse_name_addr('"Doe, \\"J\\"" <sip:j@example.com;lr>;tag=9;expires=60')
    assert quoted.display == 'Doe, "J"' and quoted.tag == "9" and quoted.expires == 60
    assert isinstance(quoted.uri, SipUri) and quoted.uri.lr
    tokens = parse_name_addr("Bob  Smith<sip:bob@biloxi.com>")
    assert tokens.display == "Bob Smith" and tokens.tag is None
    bare = parse_name_addr("sip:bob@biloxi.com;tag=a6c85cf")
    assert bare.display is None and bare.tag == "a6c85cf"
    assert isinstance(bare.uri, SipUri) and not bare.uri.params
    tel = parse_name_addr("<tel:+1-201-555-0123>")
    assert isinstance(tel.uri, TelUri)
    assert str(quoted) == '"Doe, \\"J\\"" <sip:j@example.com;lr>;tag=9;expires=60'  # as received


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Bell, Alexander <sip:a@b>",  # RFC 4475 §3.1.2.15
        '"Watson" < sip:t.watson@example.org >',  # §3.1.2.14
        '"Mr. J. User <sip:j.user@example.com>',  # §3.1.2.6
        "sip:user@example.com?Route=%3Csip:x%3E",  # §3.1.2.13
        "<sip:a@b",
        "<>",
        "sip:a@b;;",
        "<sip:a@b> junk",
        '"x" sip:a@b',
        "not a uri",
    ],
)
def test_name_addr_malformed(text: str) -> None:
    with pytest.raises(SipParseError, match="Malformed From"):
        parse_name_addr(text, "From")


def test_name_addr_build() -> None:
    built = NameAddr(SipUri("biloxi.com", user="bob"), "Bob").with_tag("x1")
    assert str(built) == "Bob <sip:bob@biloxi.com>;tag=x1"
    assert str(NameAddr(SipUri("h"), 'J. R. "Bob"')) == '"J. R. \\"Bob\\"" <sip:h>'
    assert parse_name_addr(str(built)) == built
    assert [a.tag for a in parse_name_addrs("<sip:a@b>;tag=1, Bob <sip:c@d>")] == ["1", None]
    with pytest.raises(SipParseError):
        parse_name_addrs("<sip:a@b>,,<sip:c@d>", "Route")


# --- Via, CSeq, auth, media types, dates -------------------------------------------------------------------


def test_via() -> None:
    v = parse_via("SIP / 2.0 / udp [2001:db8::9:1]:5070 ;branch=z9hG4bK776;rport=5060;received=192.0.2.9;ttl=3")
    assert (v.protocol, v.version, v.transport, v.host, v.port) == ("SIP", "2.0", "UDP", "[2001:db8::9:1]", 5070)
    assert (v.branch, v.rport, v.rport_requested, v.received, v.ttl) == ("z9hG4bK776", 5060, True, "192.0.2.9", 3)
    assert v.sent_by == "[2001:db8::9:1]:5070" and v.rfc3261_branch
    flag = parse_via("SIP/2.0/TCP h.example;rport;maddr=224.0.1.75")
    assert flag.rport is None and flag.rport_requested and flag.maddr == "224.0.1.75" and flag.branch is None
    built = Via("TLS", "pbx.example.com", 5061, Params((("branch", "z9hG4bKx"),))).with_param("rport")
    assert str(built) == "SIP/2.0/TLS pbx.example.com:5061;branch=z9hG4bKx;rport"
    assert parse_via(str(built)) == built
    assert [x.host for x in parse_vias("SIP/2.0/UDP a, SIP/2.0/UDP b")] == ["a", "b"]


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0/UDP",
        "SIP/2.0 host",
        "SIP/2.0/UDP host;;",
        "SIP/2.0/UDP host;branch=",
        "SIP/2.0/UDP host;ttl=256",
        "SIP/2.0/UDP host;rport=70000",
        "SIP/2.0/UDP host;received",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP 2001:db8::1",
        "SIP/2.0/UDP host junk",
    ],
)
def test_via_malformed(text: str) -> None:
    with pytest.raises(SipParseError, match="Malformed Via"):
        parse_vias(text)


def test_cseq() -> None:
    assert parse_cseq("0009  INVITE") == CSeq(9, "INVITE") == (9, "INVITE")
    assert str(CSeq(1, "BYE")) == "1 BYE" and parse_cseq(str(2**31 - 1) + " ACK").seq == 2**31 - 1
    for bad in ("1", "INVITE", "1 INV ITE", str(2**31) + " INVITE", "-1 INVITE", "1\tx y"):
        with pytest.raises(SipParseError, match="Invalid CSeq"):
            parse_cseq(bad)


def test_auth() -> None:
    challenge = parse_auth(
        'Digest realm="atlanta.com", domain="sip:ss1.carrier.com", qop="auth",\t'
        'nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5'
    )
    assert challenge.scheme == "Digest" and challenge.get("REALM") == "atlanta.com" and challenge.get("opaque") == ""
    assert challenge.get("stale") == "FALSE" and challenge.get("missing") is None
    assert str(challenge).startswith('Digest realm="atlanta.com", domain="sip:ss1.carrier.com", qop="auth", ')
    assert parse_auth(str(challenge)) == challenge
    escaped = parse_auth('Digest username="bob \\"the\\" builder"')
    assert escaped.get("username") == 'bob "the" builder' and parse_auth(str(escaped)) == escaped
    assert parse_auth("Bearer").scheme == "Bearer"
    for bad in ("", "Digest realm", "Digest realm=", 'Digest a="x" b="y"', "Digest a=1,", "Digest, a=1"):
        with pytest.raises(SipParseError):
            parse_auth(bad)


def test_media_type() -> None:
    media = parse_media_type('Multipart/Mixed ; boundary="simple boundary";charset=utf-8')
    assert media.essence == "multipart/mixed" and media.param("boundary") == "simple boundary"
    assert media.param("CHARSET") == "utf-8" and media.param("x") is None
    assert str(parse_media_type("application/sdp")) == "application/sdp"
    for bad in ("application", "/sdp", "application/sdp junk", "a/b;"):
        with pytest.raises(SipParseError):
            parse_media_type(bad)


def test_date() -> None:
    assert parse_date("Sat, 13 Nov 2010 23:29:00 GMT") == datetime(2010, 11, 13, 23, 29, tzinfo=UTC)
    for bad in ("Fri, 01 Jan 2010 16:00:00 EST", "Sat, 31 Feb 2010 00:00:00 GMT", "13 Nov 2010 23:29:00 GMT"):
        with pytest.raises(SipParseError, match="Invalid Date"):
            parse_date(bad)


# --- messages built in code ---------------------------------------------------------------------------------


def test_request_from_scratch() -> None:
    msg = Request(
        "OPTIONS",
        "sip:carol@chicago.com",
        [
            ("v", "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877"),
            ("max-forwards", "70"),
            ("To", "<sip:carol@chicago.com>"),
            ("From", "Alice <sip:alice@atlanta.com>;tag=1928301774"),
            ("i", "a84b4c76e66710"),
            ("CSEQ", "63104 OPTIONS"),
            ("Contact", "<sip:alice@pc33.atlanta.com>"),
            ("Accept", "application/sdp"),
        ],
    )
    assert msg.to_bytes() == OPTIONS == bytes(msg)  # canonical names, Content-Length added
    validate(msg)
    assert isinstance(msg.uri, SipUri) and msg.uri.user == "carol"
    assert repr(msg) == "<Request OPTIONS sip:carol@chicago.com>"


def test_response_from_scratch() -> None:
    resp = Response(486, headers=[("Via", "SIP/2.0/UDP h;branch=z9hG4bK1")], body=b"x")
    assert (resp.status, resp.reason) == (486, "Busy Here") and repr(resp) == "<Response 486 Busy Here>"
    assert (
        resp.to_bytes() == b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 1\r\n\r\nx"
    )
    assert Response(299).reason == "" and Response(200, "Fine").reason == "Fine"


def test_header_access_and_changes() -> None:
    msg = req()
    assert msg.get("v") == msg.get("VIA") == "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877"
    assert msg.get("X-Missing") is None and msg.get("X-Missing", "d") == "d" and msg.get_all("X-Missing") == []
    assert "call-id" in msg and "i" in msg and "Route" not in msg and 42 not in msg
    msg.add("Via", "SIP/2.0/UDP proxy.example;branch=z9hG4bKp1", first=True)
    msg.add("Record-Route", "<sip:proxy.example;lr>", first=True)  # none yet: at the very top
    msg.add("X-Trace", "1")
    msg.add("x-trace", "2")
    assert msg.get_all("X-TRACE") == ["1", "2"]
    assert [v.host for v in msg.vias] == ["proxy.example", "pc33.atlanta.com"]
    assert msg.headers[0].name == "Record-Route" and msg.headers[-1] == ("x-trace", "2")
    msg.set("Max-Forwards", "69")
    msg.set("Subject", "new")  # absent: appended
    assert msg.max_forwards == 69 and msg.get("s") == "new"
    assert msg.remove("x-trace") == 2 and msg.remove("x-trace") == 0
    popped = msg.pop_via()
    assert popped is not None and popped.host == "proxy.example" and msg.top_via is not None
    msg.set("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2")
    assert msg.pop_via() is not None and msg.get("via") == "SIP/2.0/UDP b;branch=z9hG4bK2"
    msg.pop_via()
    assert msg.pop_via() is None and msg.vias == []
    out = parse_message(msg.to_bytes())
    assert out.headers == msg.headers


def test_header_lines_cannot_be_forged() -> None:
    msg = req()
    for name, value in (("X-A", "1\r\nVia: evil"), ("X-A", "1\n"), ("Bad Name", "1"), ("", "1")):
        with pytest.raises(ValueError):
            msg.add(name, value)
        with pytest.raises(ValueError):
            msg.set(name, value)
    with pytest.raises(ValueError):
        Response(200, headers=[("To", "a\rb")])
    assert msg.to_bytes() == OPTIONS


def test_parsed_message_returns_its_bytes_until_changed() -> None:
    data = options(To="<sip:carol@chicago.com>  ;tag=x", Accept="application/sdp,\r\n  text/plain")
    msg = req(data)
    assert msg.to_bytes() is msg.to_bytes() and msg.to_bytes() == data
    assert msg.get("Accept") == "application/sdp,  text/plain"  # the fold's CRLF gone, its space kept
    assert msg.get_list("Accept") == ["application/sdp", "text/plain"]
    copy = msg.copy()
    copy.body = b"hello"
    assert copy.to_bytes().endswith(b"Content-Length: 5\r\n\r\nhello") and msg.to_bytes() == data
    msg.uri = "sip:dave@chicago.com"
    assert msg.to_bytes().startswith(b"OPTIONS sip:dave@chicago.com SIP/2.0\r\n")


def test_structured_values_are_cached_and_refreshed() -> None:
    msg = req()
    assert msg.cseq is msg.cseq and msg.from_ is msg.from_
    msg.set("CSeq", "63105 OPTIONS")
    assert msg.cseq == (63105, "OPTIONS")
    # A server stamps the top Via (received, rport) on almost every request: what was parsed from
    # the other header fields stays parsed, the Via is read again.
    from_, to, cseq = msg.from_, msg.to, msg.cseq
    msg.pop_via()
    msg.add("Via", "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877;received=192.0.2.4", first=True)
    assert msg.top_via is not None and msg.top_via.received == "192.0.2.4"
    assert msg.from_ is from_ and msg.to is to and msg.cseq is cseq
    msg.body = b"hi"
    assert msg.content_length == 2 and msg.from_ is from_


def test_accessors_name_the_header_at_fault() -> None:
    msg = req(options(Call_ID="", CSeq="x OPTIONS", From='"unterminated <sip:a@b>', Max_Forwards="256"))
    for read, reason in (
        (lambda: msg.call_id, "Bad Request - Missing Call-ID"),
        (lambda: msg.cseq, "Bad Request - Invalid CSeq"),
        (lambda: msg.from_, "Bad Request - Malformed From"),
        (lambda: msg.max_forwards, "Bad Request - Invalid Max-Forwards"),
    ):
        with pytest.raises(SipParseError) as caught:
            read()
        assert caught.value.reason == reason
    assert msg.expires is None and msg.content_type is None and msg.parts() == []


def test_wildcard_contact() -> None:
    msg = req(options(Contact="*", Expires="0").replace(b"OPTIONS", b"REGISTER"))
    assert msg.contact_is_wildcard and msg.contact == []
    validate(msg, registrar=True)
    msg.add("Contact", "<sip:a@b>")
    with pytest.raises(SipParseError, match="Invalid Wildcard Contact"):
        validate(msg, registrar=True)


# --- parse_message: limits, framing, start lines ---------------------------------------------------------------


def test_crlf_before_the_start_line_is_ignored() -> None:
    assert parse_message(b"\r\n\r\n" + OPTIONS).to_bytes() == OPTIONS


@pytest.mark.parametrize(
    ("data", "status", "reason", "respond"),
    [
        (b"", 400, "Bad Request - Empty Message", False),
        (b"\r\n\r\n", 400, "Bad Request - Empty Message", False),
        (OPTIONS[:-4], 400, "Bad Request - Incomplete Header Section", False),
        (OPTIONS.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\n"), 400, "Bare CR or LF", False),
        (OPTIONS.replace(b"Accept:", b"Accept"), 400, "Bad Request - Malformed Header Field", False),
        (OPTIONS.replace(b"Accept:", b"Acc ept:"), 400, "Bad Request - Malformed Header Field", False),
        (OPTIONS.replace(b"SIP/2.0\r\n", b"SIP/2.0\r\n folded\r\n", 1), 400, "Malformed Header Field", False),
        (OPTIONS.replace(b" SIP/2.0\r\n", b" HTTP/1.1\r\n", 1), 400, "Bad Request - Malformed Request-Line", True),
        (OPTIONS.replace(b"OPTIONS ", b"OPT<IONS ", 1), 400, "Bad Request - Malformed Request-Line", True),
        (OPTIONS.replace(b"\tsip", b"sip").replace(b" sip:carol", b"\tsip:carol", 1), 400, "Request-Line", True),
        (options(Content_Length="1"), 400, "Content-Length Larger Than Message", True),
        (OPTIONS.replace(b"OPTIONS sip:carol", b"ACK sip:carol"), 0, "", False),  # valid as a message
        (b"SIP/2.0 20 OK\r\n\r\n", 400, "Bad Request - Invalid Status Code", False),
        (b"SIP/2.0 700 Huh\r\n\r\n", 400, "Bad Request - Invalid Status Code", False),
        (b"SIP/2.0 ABC OK\r\n\r\n", 400, "Bad Request - Invalid Status Code", False),
        (b"SIP/X 200 OK\r\n\r\n", 400, "Bad Request - Malformed Status-Line", False),
    ],
)
def test_refused_by_the_parser(data: bytes, status: int, reason: str, respond: bool) -> None:
    if not status:
        parse_message(data)
        return
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    assert caught.value.status == status and reason in caught.value.reason
    assert caught.value.can_respond is respond


def test_limits() -> None:
    with pytest.raises(SipParseError) as caught:
        parse_message(OPTIONS, max_message=len(OPTIONS) - 1)
    assert (caught.value.status, caught.value.reason) == (513, "Message Too Large")
    with pytest.raises(SipParseError) as caught:
        parse_message(OPTIONS, max_headers=8)
    assert caught.value.status == 513
    with pytest.raises(SipParseError) as caught:
        parse_message(OPTIONS, max_uri=20)
    assert (caught.value.status, caught.value.reason, caught.value.can_respond) == (414, "Request-URI Too Long", True)
    parse_message(OPTIONS, max_message=len(OPTIONS), max_headers=9, max_uri=21)


def test_response_is_never_answered() -> None:
    with pytest.raises(SipParseError) as caught:
        parse_message(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\nContent-Length: x\r\n\r\n")
    assert not caught.value.can_respond and error_response(caught.value) is None


# --- validate ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (options(Max_Forwards="256"), 400, "Bad Request - Invalid Max-Forwards"),
        (options(Max_Forwards="-1"), 400, "Bad Request - Invalid Max-Forwards"),
        (options(Expires=str(2**32)), 400, "Bad Request - Invalid Expires"),
        (options(Call_ID="has space"), 400, "Bad Request - Invalid Call-ID"),
        (options(Route="<sip:p1.example;lr>,"), 400, "Bad Request - Malformed Route"),
        (options(Record_Route="sip:a@b?x=1"), 400, "Bad Request - Malformed Record-Route"),
        (options(Content_Type="sdp"), 400, "Bad Request - Malformed Content-Type"),
        (options(Date="Sat, 13 Nov 2010 23:29:00 GMT"), 0, ""),
        (options(Via="SIP/2.0/UDP pc33.atlanta.com"), 0, ""),  # RFC 2543: no branch at all
        (options(Max_Forwards=""), 0, ""),  # optional for a server (RFC 4475 §3.4.1)
        (OPTIONS.replace(b"sip:carol@chicago.com SIP", b"tel:+1-212-555-0101 SIP"), 0, ""),
        (OPTIONS.replace(b"sip:carol@chicago.com SIP", b"im:carol@chicago.com SIP"), 416, "Unsupported URI Scheme"),
        (OPTIONS.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505, "Version Not Supported"),
        (
            OPTIONS.replace(b"Call-ID: a84b4c76e66710\r\n", b"Call-ID: a\r\nCall-ID: b\r\n"),
            400,
            "Bad Request - Multiple Call-ID Values",
        ),
        (OPTIONS.replace(b"Via", b"X-Via"), 400, "Bad Request - Missing Via"),
    ],
)
def test_validate(data: bytes, status: int, reason: str) -> None:
    msg = parse_message(data)
    if not status:
        validate(msg)
        return
    with pytest.raises(SipParseError) as caught:
        validate(msg)
    assert (caught.value.status, caught.value.reason) == (status, reason)
    assert caught.value.message is msg and caught.value.can_respond is ("Via" in msg)


def test_validate_built_message_with_wrong_content_length() -> None:
    msg = req(options(Content_Length="0"))
    msg.body = b"abc"
    assert msg.content_length == 3  # a new body updates Content-Length
    validate(msg)
    msg.set("Content-Length", "5")
    with pytest.raises(SipParseError, match="Invalid Content-Length"):
        validate(msg)
    assert parse_message(msg.to_bytes()).content_length == 3


# --- responses ------------------------------------------------------------------------------------------------


def test_build_response() -> None:
    msg = req(OPTIONS.replace(b"Accept:", b"Timestamp: 54\r\nAccept:"))
    ok = build_response(msg, 200, to_tag="93810874", headers=[("Allow", "INVITE, ACK, CANCEL, OPTIONS, BYE")])
    assert ok.to_bytes() == (
        b"SIP/2.0 200 OK\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKhjhs8ass877\r\n"
        b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
        b"To: <sip:carol@chicago.com>;tag=93810874\r\n"
        b"Call-ID: a84b4c76e66710\r\n"
        b"CSeq: 63104 OPTIONS\r\n"
        b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    trying = build_response(msg, 100)
    assert trying.to.tag is None and trying.get("Timestamp") == "54" and trying.reason == "Trying"
    assert len(build_response(msg, 486).to.tag or "") == 16  # a fresh random tag, §19.3
    tagged = req(options(To="<sip:carol@chicago.com>;tag=abc"))
    assert build_response(tagged, 200, to_tag="zzz").to.tag == "abc"  # never a second tag


def test_error_response_of_validate() -> None:
    msg = req(options(CSeq="63104 INVITE"))
    with pytest.raises(SipParseError) as caught:
        validate(msg)
    answer = error_response(caught.value)
    assert answer is not None and answer.status == 400
    assert answer.reason == "Bad Request - CSeq Method Does Not Match Request Method"
    assert answer.cseq == (63104, "INVITE")


def test_ack_is_never_answered() -> None:
    ack = req(OPTIONS.replace(b"OPTIONS", b"ACK"))
    with pytest.raises(SipParseError) as caught:
        validate(ack, schemes=frozenset())
    assert caught.value.status == 416 and not caught.value.can_respond


# --- RFC 3261 §24 examples ---------------------------------------------------------------------------------------

EXAMPLES = sorted(path.name for path in RFC3261.glob("*.sip"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_rfc3261_examples_round_trip(name: str) -> None:
    data = (RFC3261 / name).read_bytes()
    msg = parse_message(data)
    validate(msg)
    assert msg.to_bytes() == data
    rebuilt = msg.copy()
    rebuilt.body = msg.body
    again = parse_message(rebuilt.to_bytes())
    assert again.headers == msg.headers and again.body == msg.body
    assert again.to_bytes() == rebuilt.to_bytes()


def test_rfc3261_registration() -> None:
    register = req((RFC3261 / "24.1-f1-register.sip").read_bytes())
    assert register.method == "REGISTER" and register.expires == 7200
    assert isinstance(register.uri, SipUri) and register.uri.aor == "sip:registrar.biloxi.com"
    assert (register.to.display, str(register.to.uri), register.to.tag) == ("Bob", "sip:bob@biloxi.com", None)
    assert str(register.contact[0].uri) == "sip:bob@192.0.2.4"
    ok = parse_message((RFC3261 / "24.1-f2-200.sip").read_bytes())
    assert isinstance(ok, Response) and ok.to.tag == "2493k59kd"
    assert ok.top_via is not None and ok.top_via.received == "192.0.2.4"  # on a folded line
    built = build_response(register, 200, to_tag="2493k59kd", headers=[("Contact", "<sip:bob@192.0.2.4>")])
    assert (built.to, built.from_, built.call_id, built.cseq) == (ok.to, ok.from_, ok.call_id, ok.cseq)
    assert built.contact == ok.contact and built.vias[0].branch == ok.vias[0].branch


def test_rfc3261_session() -> None:
    proxied = req((RFC3261 / "24.2-f3-invite.sip").read_bytes())
    assert [v.host for v in proxied.vias] == ["bigbox3.site3.atlanta.com", "pc33.atlanta.com"]
    assert proxied.vias[1].received == "192.0.2.1" and proxied.max_forwards == 69
    assert proxied.content_type == "application/sdp" and proxied.content_length == len(proxied.body)
    ok = parse_message((RFC3261 / "24.2-f9-200.sip").read_bytes())
    assert [v.received for v in ok.vias] == ["192.0.2.3", "192.0.2.2", "192.0.2.1"]
    ack = req((RFC3261 / "24.2-f12-ack.sip").read_bytes())
    assert ack.cseq == (314159, "ACK") and ack.to.tag == "a6c85cf"
    bye = req((RFC3261 / "24.2-f13-bye.sip").read_bytes())
    assert (bye.from_.tag, bye.to.tag, bye.cseq) == ("a6c85cf", "1928301774", (231, "BYE"))


# --- StreamFramer (§18.3) -------------------------------------------------------------------------------------------


def test_stream_splits_pipelined_messages_and_skips_keepalives() -> None:
    framer = StreamFramer()
    second = options(CSeq="63105 OPTIONS")
    stream = b"\r\n\r\n" + OPTIONS + b"\r\n\r\n\r\n" + second + b"\r\n"
    got = framer.feed(stream)
    assert [m.cseq.seq for m in got] == [63104, 63105] and framer.keepalives == 2
    assert [m.to_bytes() for m in got] == [OPTIONS, second]
    assert framer.feed(b"\r\n") == [] and not framer.broken and framer.error is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 400), max_size=8))
def test_stream_chunking_does_not_matter(cuts: list[int]) -> None:
    body = b"v=0\r\n"
    invite = OPTIONS.replace(b"Content-Length: 0", b"Content-Length: 5") + body
    stream = OPTIONS + invite + OPTIONS
    edges = sorted({0, len(stream), *(c % len(stream) for c in cuts)})
    framer = StreamFramer()
    got = [m for a, b in itertools.pairwise(edges) for m in framer.feed(stream[a:b])]
    assert [m.body for m in got] == [b"", body, b""]


def test_stream_without_content_length_is_a_framing_error() -> None:
    framer = StreamFramer()
    with pytest.raises(SipParseError) as caught:
        framer.feed(options(Content_Length=""))
    error = caught.value
    assert (error.status, error.reason, error.can_respond) == (400, "Bad Request - Missing Content-Length", True)
    assert framer.broken and error_response(error) is not None
    with pytest.raises(SipParseError):
        framer.feed(OPTIONS)  # a broken stream stays broken
    with pytest.raises(SipParseError, match="Invalid Content-Length"):
        StreamFramer().feed(options(Content_Length="-5"))


def test_stream_limits() -> None:
    framer = StreamFramer(max_message=100)
    with pytest.raises(SipParseError) as caught:
        framer.feed(b"x" * 101)
    assert caught.value.status == 513 and framer.broken
    framer = StreamFramer(max_message=len(OPTIONS) + 10)
    with pytest.raises(SipParseError) as caught:
        framer.feed(options(Content_Length="11"))
    assert (caught.value.status, caught.value.reason, caught.value.can_respond) == (
        413,
        "Request Entity Too Large",
        True,
    )


def test_stream_survives_a_well_framed_bad_message() -> None:
    bad = OPTIONS.replace(b"OPTIONS sip:carol@chicago.com SIP/2.0", b"OPTIONS  sip:carol@chicago.com SIP/2.0")
    framer = StreamFramer()
    with pytest.raises(SipParseError, match="Malformed Request-Line"):
        framer.feed(bad)
    assert not framer.broken and len(framer.feed(OPTIONS)) == 1
    # after a good message in the same chunk, the fault waits in `error` and comes out next time
    assert len(framer.feed(OPTIONS + bad)) == 1 and framer.error is not None
    with pytest.raises(SipParseError, match="Malformed Request-Line"):
        framer.feed(OPTIONS)
    assert framer.error is None and len(framer.feed(b"")) == 1


def test_stream_next_message_meets_each_fault_in_place() -> None:
    bad = OPTIONS.replace(b"OPTIONS sip", b"OPTIONS <sip").replace(b".com SIP", b".com> SIP", 1)
    framer = StreamFramer()
    framer.receive_data(OPTIONS + bad + OPTIONS)
    assert framer.next_message() is not None
    with pytest.raises(SipParseError, match="Malformed Request-URI"):
        framer.next_message()
    assert framer.next_message() is not None and framer.next_message() is None


# --- multipart (RFC 2046 §5.1) ----------------------------------------------------------------------------------------


def test_multipart() -> None:
    body = (
        b"preamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\nHello\r\n"
        b"--b1  \r\n\r\nno headers\r\n--b1\r\n\r\n\r\n--b1\r\nContent-Type: application/x\r\n"
        b" ;folded=yes\r\n\r\n\x00\r\x00\r\n--b1--\r\nepilogue"
    )
    parts = parse_multipart(body, "b1")
    assert [(p.content_type, p.body) for p in parts] == [
        ("text/plain", b"Hello"),
        (None, b"no headers"),
        (None, b""),
        ("application/x", b"\x00\r\x00"),
    ]
    assert parts[3].media_type is not None and parts[3].media_type.param("folded") == "yes"
    for bad in (b"no boundary here", b"--b1\r\nContent-Type: a/b\r\n\r\nunterminated", b"--b1junk\r\n\r\n--b1--"):
        with pytest.raises(SipParseError, match="Malformed Multipart Body"):
            parse_multipart(bad, "b1")
    msg = req(options(Content_Type="multipart/mixed", Content_Length="0"))
    with pytest.raises(SipParseError, match="Multipart"):
        msg.parts()


def test_public_api() -> None:
    for module in (errors_module, headers_module, message_module):
        for name in module.__all__:
            assert hasattr(module, name), (module.__name__, name)
    assert issubclass(Request, SipMessage) and issubclass(Response, SipMessage)
    assert isinstance(parse_name_addr("<isbn:1>").uri, AbsoluteUri)


TOKEN = st.text(alphabet=string.ascii_letters + string.digits + "-.!%*_+`'~", min_size=1, max_size=10)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(TOKEN, st.text(alphabet=string.printable.strip() + " ", max_size=20)), max_size=8))
def test_unknown_headers_round_trip_in_order(extra: list[tuple[str, str]]) -> None:
    msg = req()
    for name, value in extra:
        msg.add("X-" + name, value.strip())
    again = parse_message(msg.to_bytes())
    assert again.headers == msg.headers
