"""SIP, SIPS, tel and other URIs: RFC 3261 §19.1 (comparison examples of §19.1.4), RFC 3966, RFC 5118."""

from __future__ import annotations

import string
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxswitch.sip import uri as uri_module
from voxswitch.sip.errors import SipParseError
from voxswitch.sip.uri import AbsoluteUri, Params, Scheme, SipUri, TelUri, bounded_int, is_valid_host, parse_uri


def sip(text: str) -> SipUri:
    parsed = parse_uri(text)
    assert isinstance(parsed, SipUri)
    return parsed


def test_components() -> None:
    u = sip("sips:alice:secret@atlanta.com:5061;transport=tcp;lr;maddr=239.255.255.1;ttl=15?subject=hi&x=")
    assert (u.scheme, u.user, u.password, u.host, u.port) == (Scheme.SIPS, "alice", "secret", "atlanta.com", 5061)
    assert u.secure and u.transport == "tcp" and u.lr and u.maddr == "239.255.255.1" and u.ttl == 15
    assert u.headers == (("subject", "hi"), ("x", ""))
    assert u.hostport == "atlanta.com:5061" and u.aor == "sips:alice@atlanta.com"
    assert str(u) == "sips:alice:secret@atlanta.com:5061;transport=tcp;lr;maddr=239.255.255.1;ttl=15?subject=hi&x="


def test_scheme_is_case_insensitive_and_text_is_kept() -> None:
    u = sip("SIP:Bob@Biloxi.COM;User=Phone")
    assert u.scheme is Scheme.SIP and u.user == "Bob" and u.user_param == "Phone"
    assert str(u) == "SIP:Bob@Biloxi.COM;User=Phone"  # as received
    assert str(replace(u, port=5060)) == "sip:Bob@Biloxi.COM:5060;User=Phone"  # changed: rebuilt


def test_no_user_part() -> None:
    u = sip("sip:registrar.biloxi.com")
    assert (u.user, u.password, u.host, u.port, u.params.items) == (None, None, "registrar.biloxi.com", None, ())


def test_escapes_are_decoded_once() -> None:
    u = sip("sip:%61lice%20x@atlanta.com;n%61me=v%61lue%25%34%31?h%20=a%26b")
    assert u.user == "alice x" and u.params.get("name") == "value%41" and u.headers == (("h ", "a&b"),)


def test_building_escapes_only_what_the_grammar_needs() -> None:
    u = SipUri("example.com", user="I have spaces;and@at", params=Params((("n", "a b"), ("lr", None))))
    assert str(u) == "sip:I%20have%20spaces;and%40at@example.com;n=a%20b;lr"
    assert sip(str(u)) == u
    tricky = SipUri("h.example", user="null-\x00-%", headers=(("Route", "<sip:x.example;lr>"),))
    assert str(tricky) == "sip:null-%00-%25@h.example?Route=%3Csip:x.example%3Blr%3E"
    assert sip(str(tricky)) == tricky


@pytest.mark.parametrize(
    "text",
    [
        "sip:",
        "sip:@example.com",
        "sip:user@",
        "sip:user@example.com:",
        "sip:user@example.com:65536",
        "sip:user@example.com:123456",
        "sip:user@exa mple.com",
        "sip:us er@example.com",
        "sip:user@example.com;;lr",
        "sip:user@example.com;lr;",
        "sip:user@example.com;=x",
        "sip:user@example.com?",  # an empty header list is not a header
        "sip:user@example.com?a",
        "sip:%zzuser@example.com",
        "sip:user%4@example.com",
        "sip:user@-bad.example.com",
        "sip:user@a..example.com",
        "sip:user@256.1.1.1",
        "sip:user@1.2.3",
        "sip:2001:db8::10",  # RFC 5118 §4.2: IPv6 needs brackets
        "sip:[2001:db8::10",
        "sip:[2001:db8::g]",
        "sip:[1:2:3:4:5:6:7:8:9]",
        "sip:[2001:db8::::1]",
        "<sip:user@example.com>",  # RFC 4475 §3.1.2.7
        "sip:user@example.com>",
        ":opaque",
        "1abc:opaque",
        "http:",
        "http:has space",
        "tel:",
        "tel:12a45",  # a local number needs phone-context (RFC 3966 §5.1.5)
        "tel:+",
        "tel:+1-800;=x",
        "tel:+1-800;a b=1",
    ],
)
def test_malformed(text: str) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_uri(text)
    assert caught.value.status == 400 and caught.value.reason == "Bad Request - Malformed URI"


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::10]", "[2001:db8::10]", None),
        ("sip:user@[2001:db8::10]:5070", "[2001:db8::10]", 5070),
        ("sip:[2001:db8::10:5070]", "[2001:db8::10:5070]", None),  # RFC 5118 §4.3: no port
        ("sip:[::ffff:192.0.2.2]", "[::ffff:192.0.2.2]", None),  # §4.9
        ("sip:user@[2001:db8:::192.0.2.1]", "[2001:db8:::192.0.2.1]", None),  # §4.10, tolerated
        ("sip:192.0.2.4:5060", "192.0.2.4", 5060),
        ("sip:host.example.com.", "host.example.com.", None),
        ("sip:under_score.example.com", "under_score.example.com", None),
    ],
)
def test_hosts(text: str, host: str, port: int | None) -> None:
    u = sip(text)
    assert (u.host, u.port) == (host, port)
    assert u.is_ipv6 is host.startswith("[")


def test_is_valid_host() -> None:
    assert is_valid_host("example.com") and is_valid_host("255.255.255.255") and is_valid_host("[::1]")
    assert not is_valid_host("") and not is_valid_host("[::1") and not is_valid_host("example.123")


def test_bounded_int() -> None:
    assert bounded_int("0068", 255) == 68
    assert bounded_int("256", 255) is None and bounded_int("-1", 255) is None and bounded_int("", 9) is None
    assert bounded_int("²", 9) is None and bounded_int("٣", 9) is None  # digits, but not ASCII ones
    assert bounded_int("9" * 5000, 2**64) is None  # never reaches int()'s digit limit


# RFC 3261 §19.1.4: "the following URIs are equivalent" / "are not equivalent"
EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
    ("sip:[2001:db8::9:1]", "sip:[2001:DB8:0:0:0:0:9:1]"),  # RFC 5954 §4
]
NOT_EQUIVALENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),  # different usernames
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),  # can resolve to different ports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),  # can resolve to different transports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),  # different header component
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),  # even if that is what it resolves to
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_equivalent(a: str, b: str) -> None:
    assert sip(a).equivalent(sip(b)) and sip(b).equivalent(sip(a))


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT)
def test_not_equivalent(a: str, b: str) -> None:
    assert not sip(a).equivalent(sip(b)) and not sip(b).equivalent(sip(a))


def test_params() -> None:
    p = Params((("Transport", "tcp"), ("lr", None)))
    assert p.get("transport") == "tcp" and p.get("LR") == "" and p.get("x") is None and p.get("x", "d") == "d"
    assert "TRANSPORT" in p and 3 not in p and list(p) == ["Transport", "lr"] and len(p) == 2
    assert p.with_param("transport", "udp").items == (("Transport", "udp"), ("lr", None))
    assert p.with_param("ttl", "1").items[-1] == ("ttl", "1")
    assert p.without("LR").items == (("Transport", "tcp"),)
    assert str(p) == ";Transport=tcp;lr" and not Params() and bool(p)
    u = sip("sip:a@b.example").with_param("lr").with_param("transport", "tls")
    assert (
        str(u) == "sip:a@b.example;lr;transport=tls" and str(u.without_param("lr")) == "sip:a@b.example;transport=tls"
    )


def test_tel() -> None:
    t = parse_uri("tel:+1-201-555-0123;ext=42")
    assert isinstance(t, TelUri) and t.scheme is Scheme.TEL
    assert t.is_global and t.digits == "+12015550123" and t.extension == "42"
    local = parse_uri("tel:7042;phone-context=example.com")
    assert isinstance(local, TelUri) and not local.is_global and local.phone_context == "example.com"
    assert str(local) == "tel:7042;phone-context=example.com"
    assert t.equivalent(parse_uri("tel:+1(201)555.0123;EXT=42"))
    assert not t.equivalent(parse_uri("tel:+12015550123"))
    assert str(TelUri("+1-201-555-0123", Params((("ext", "4 2"),)))) == "tel:+1-201-555-0123;ext=4%202"


def test_absolute_uris() -> None:
    for text, scheme, opaque in [
        ("isbn:2983792873", "isbn", "2983792873"),
        ("http://www.example.com", "http", "//www.example.com"),
        ("soap.beep://192.0.2.103:3002", "soap.beep", "//192.0.2.103:3002"),
        ("Name:John_Smith", "name", "John_Smith"),
    ]:
        u = parse_uri(text)
        assert isinstance(u, AbsoluteUri) and (u.scheme, u.opaque, str(u)) == (scheme, opaque, text)
    assert AbsoluteUri("urn", "x").equivalent(parse_uri("URN:x")) and str(AbsoluteUri("urn", "x")) == "urn:x"


def test_public_api() -> None:
    for name in uri_module.__all__:
        assert hasattr(uri_module, name), name


USER_TEXT = st.text(alphabet=string.printable + "é\x00", min_size=1, max_size=12)
HOSTS = st.sampled_from(["example.com", "192.0.2.1", "[2001:db8::1]", "a-b.c_d.example.", "h"])
PARAM_NAME = st.text(alphabet=string.ascii_letters + string.digits + "-_.!~*'()[]/:&+$", min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(
    USER_TEXT | st.none(),
    st.booleans(),
    HOSTS,
    st.integers(0, 65535) | st.none(),
    st.lists(st.tuples(PARAM_NAME, USER_TEXT | st.none()), max_size=3),
    st.lists(st.tuples(USER_TEXT, st.text(max_size=6)), max_size=2),
)
def test_built_uris_survive_the_wire(
    user: str | None,
    secure: bool,
    host: str,
    port: int | None,
    params: list[tuple[str, str | None]],
    headers: list[tuple[str, str]],
) -> None:
    built = SipUri(
        host,
        user=user,
        port=port,
        params=Params(tuple(params)),
        headers=tuple(headers),
        scheme=Scheme.SIPS if secure else Scheme.SIP,
    )
    again = sip(str(built))
    assert again == built and again.equivalent(built)
