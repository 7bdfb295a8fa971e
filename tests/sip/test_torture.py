"""RFC 4475 and RFC 5118 torture messages, byte-exact from tests/sip/corpus, through the message layer.

Each file is classified by the RFC section it comes from (`Stage`): the parser accepts it and a
server's `validate` accepts it (VALID), or one of them refuses it with the status and reason the
RFC text calls for (PARSE, VALIDATE). Then, message by message, the values the RFC points out are
checked, so that a message accepted for the wrong reason still fails. Hypothesis fuzzes random
bytes and mutated corpus messages: nothing but `SipParseError` may ever come out.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voxswitch.sip.errors import SipParseError
from voxswitch.sip.headers import parse_auth
from voxswitch.sip.message import (
    Request,
    Response,
    SipMessage,
    StreamFramer,
    error_response,
    parse_message,
    validate,
)
from voxswitch.sip.uri import AbsoluteUri, SipUri

CORPUS = Path(__file__).parent / "corpus"


class Stage(Enum):
    VALID = "parses and validates"
    PARSE = "refused by parse_message"
    VALIDATE = "parses, refused by validate"


@dataclass(frozen=True)
class Expect:
    section: str
    stage: Stage
    status: int = 0
    reason: str = ""  # a part of the reason phrase, naming the problem
    respond: bool = True  # whether a response can be sent at all


V = Stage.VALID
P = Stage.PARSE
X = Stage.VALIDATE

RFC4475: dict[str, Expect] = {
    # §3.1.1 valid messages
    "wsinv": Expect("3.1.1.1", V),
    "intmeth": Expect("3.1.1.2", V),
    "esc01": Expect("3.1.1.3", V),
    "escnull": Expect("3.1.1.4", V),
    "esc02": Expect("3.1.1.5", V),
    "lwsdisp": Expect("3.1.1.6", V),
    "longreq": Expect("3.1.1.7", V),
    "dblreq": Expect("3.1.1.8", V),
    "semiuri": Expect("3.1.1.9", V),
    "transports": Expect("3.1.1.10", V),
    "mpart01": Expect("3.1.1.11", V),
    "unreason": Expect("3.1.1.12", V),
    "noreason": Expect("3.1.1.13", V),
    # §3.1.2 invalid messages
    "badinv01": Expect("3.1.2.1", X, 400, "Malformed Via"),
    "clerr": Expect("3.1.2.2", P, 400, "Content-Length Larger Than Message"),
    "ncl": Expect("3.1.2.3", P, 400, "Invalid Content-Length"),
    "scalar02": Expect("3.1.2.4", X, 400, "Invalid CSeq"),
    "scalarlg": Expect("3.1.2.5", X, 400, "Invalid CSeq", respond=False),
    "quotbal": Expect("3.1.2.6", X, 400, "Malformed To"),
    "ltgtruri": Expect("3.1.2.7", P, 400, "Malformed Request-URI"),
    "lwsruri": Expect("3.1.2.8", P, 400, "Malformed Request-Line"),
    "lwsstart": Expect("3.1.2.9", P, 400, "Malformed Request-Line"),
    "trws": Expect("3.1.2.10", P, 400, "Malformed Request-Line"),
    "escruri": Expect("3.1.2.11", X, 400, "Headers Not Allowed in Request-URI"),
    "baddate": Expect("3.1.2.12", X, 400, "Invalid Date"),
    "regbadct": Expect("3.1.2.13", X, 400, "Malformed Contact"),
    "badaspec": Expect("3.1.2.14", X, 400, "Malformed To"),
    "baddn": Expect("3.1.2.15", X, 400, "Malformed From"),
    "badvers": Expect("3.1.2.16", X, 505, "Version Not Supported"),
    "mismatch01": Expect("3.1.2.17", X, 400, "CSeq Method Does Not Match"),
    "mismatch02": Expect("3.1.2.18", X, 400, "CSeq Method Does Not Match"),
    "bigcode": Expect("3.1.2.19", P, 400, "Invalid Status Code", respond=False),
    # §3.2 transaction layer
    "badbranch": Expect("3.2.1", X, 400, "Missing Transaction Identifier"),
    # §3.3 application layer: all parse; validate refuses what a server must refuse
    "insuf": Expect("3.3.1", X, 400, "Missing Call-ID, From, To"),
    "unkscm": Expect("3.3.2", X, 416, "Unsupported URI Scheme"),
    "novelsc": Expect("3.3.3", X, 416, "Unsupported URI Scheme"),
    "unksm2": Expect("3.3.4", V),  # a registrar refuses it: test_unksm2
    "bext01": Expect("3.3.5", V),  # 420 is the UAS's to send, from Require
    "invut": Expect("3.3.6", V),  # 415 is the UAS's to send, from Content-Type
    "regaut01": Expect("3.3.7", V),  # 401 is the registrar's to send
    "multi01": Expect("3.3.8", X, 400, "Multiple Call-ID, CSeq, From, To, Max-Forwards"),
    "mcl01": Expect("3.3.9", P, 400, "Multiple Content-Length"),
    "bcast": Expect("3.3.10", V),  # dropped by the transport layer, not the parser
    "zeromf": Expect("3.3.11", V),  # 483 is the proxy's to send, from max_forwards
    "cparam01": Expect("3.3.12", V),
    "cparam02": Expect("3.3.13", V),
    "regescrt": Expect("3.3.14", V),
    "sdp01": Expect("3.3.15", V),  # 406 is the UAS's to send, from Accept
    # §3.4 backward compatibility
    "inv2543": Expect("3.4.1", V),
}

RFC5118: dict[str, Expect] = {
    "ipv6-good": Expect("4.1", V),
    "ipv6-bad": Expect("4.2", P, 400, "Malformed Request-URI"),
    "port-ambiguous": Expect("4.3", V),
    "port-unambiguous": Expect("4.4", V),
    "via-received-param-with-delim": Expect("4.5", V),
    "via-received-param-no-delim": Expect("4.5", V),
    "ipv6-in-sdp": Expect("4.6", V),
    "mult-ip-in-header": Expect("4.7", V),
    "mult-ip-in-sdp": Expect("4.8", V),
    "ipv4-mapped-ipv6": Expect("4.9", V),
    "ipv6-bug-abnf-3-colons": Expect("4.10", V),  # "an implementation must tolerate both"
    "ipv6-correct-abnf-2-colons": Expect("4.10", V),
}


def raw(rfc: str, name: str) -> bytes:
    return (CORPUS / rfc / f"{name}.dat").read_bytes()


def wire(archived: bytes) -> bytes:
    """An RFC 5118 archive file as the message it describes (see corpus/README.md): CRLF line ends,
    the header section closed by an empty line, Content-Length counted from the body. Nothing else."""
    lines = archived.decode().split("\n")
    blank = lines.index("") if "" in lines else len(lines)
    head, body_lines = lines[:blank], lines[blank + 1 :]
    if body_lines and body_lines[-1] == "":
        body_lines = body_lines[:-1]
    body = "".join(line + "\r\n" for line in body_lines)
    out = []
    for line in head:
        if line.lower().startswith("content-length:"):
            line = f"Content-Length: {len(body.encode())}"
        out.append(line + "\r\n")
    return ("".join(out) + "\r\n" + body).encode()


def data_of(rfc: str, name: str) -> bytes:
    return wire(raw(rfc, name)) if rfc == "rfc5118" else raw(rfc, name)


def load(name: str) -> SipMessage:
    return parse_message(raw("rfc4475", name))


def load_v6(name: str) -> SipMessage:
    return parse_message(wire(raw("rfc5118", name)))


def request(name: str) -> Request:
    msg = load(name)
    assert isinstance(msg, Request)
    return msg


CASES = [("rfc4475", name, expect) for name, expect in RFC4475.items()] + [
    ("rfc5118", name, expect) for name, expect in RFC5118.items()
]


def test_corpus_is_byte_exact() -> None:
    """SHA256SUMS pins every file (the RFC archives' own bytes, see corpus/README.md): an editor or a
    checkout that converts line endings fails here instead of quietly testing other messages."""
    sums = {}
    for line in (CORPUS / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split("  ", 1)
        sums[path] = digest
    files = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.glob("rfc*/*") if p.is_file())
    assert sorted(sums) == files
    for path in files:
        assert hashlib.sha256((CORPUS / path).read_bytes()).hexdigest() == sums[path], path


def test_every_corpus_file_is_classified() -> None:
    for rfc, table in (("rfc4475", RFC4475), ("rfc5118", RFC5118)):
        files = {path.stem for path in (CORPUS / rfc).glob("*.dat")}
        assert files == set(table), rfc
    assert len(RFC4475) == 49 and len(RFC5118) == 12


@pytest.mark.parametrize(("rfc", "name", "expect"), CASES, ids=[f"{rfc}-{name}" for rfc, name, _ in CASES])
def test_corpus_message_is_handled_as_the_rfc_says(rfc: str, name: str, expect: Expect) -> None:
    data = data_of(rfc, name)
    if expect.stage is Stage.PARSE:
        with pytest.raises(SipParseError) as caught:
            parse_message(data)
    else:
        msg = parse_message(data)
        if expect.stage is Stage.VALID:
            validate(msg)
            assert_round_trips(msg, data)
            return
        with pytest.raises(SipParseError) as caught:
            validate(msg)
    error = caught.value
    assert (error.status, expect.reason in error.reason) == (expect.status, True), error
    assert error.reason.startswith("Bad Request - ") or error.status != 400
    assert error.can_respond is expect.respond
    answer = error_response(error)
    if not expect.respond:
        assert answer is None
        return
    assert answer is not None and error.message is not None
    assert (answer.status, answer.reason) == (error.status, error.reason)
    assert answer.get_all("via") == error.message.get_all("via")
    again = parse_message(answer.to_bytes())  # the answer is itself a well-formed message
    assert isinstance(again, Response) and again.status == error.status


def assert_round_trips(msg: SipMessage, data: bytes) -> None:
    """Unchanged, a message serialises to the bytes it came from; rebuilt, it parses to the same values."""
    out = msg.to_bytes()
    assert data.startswith(out)
    rebuilt = msg.copy()
    rebuilt.body = msg.body  # any change drops the received bytes
    again = parse_message(rebuilt.to_bytes())
    assert type(again) is type(msg)
    assert [h for h in again.headers if h.name != "Content-Length"] == [
        h for h in msg.headers if h.name != "Content-Length"
    ]
    assert again.body == msg.body
    if isinstance(msg, Request):
        assert isinstance(again, Request)
        assert (again.method, str(again.uri)) == (msg.method, str(msg.uri))
    else:
        assert isinstance(msg, Response) and isinstance(again, Response)
        assert (again.status, again.reason) == (msg.status, msg.reason)


# --- §3.1.1: valid messages, value by value --------------------------------------------------------------


def test_wsinv() -> None:
    msg = request("wsinv")
    assert msg.method == "INVITE"
    assert isinstance(msg.uri, SipUri) and "unknownparam" in msg.uri.params  # unknown Request-URI parameter
    # folding everywhere, LWS around colons, semicolons and equals
    assert str(msg.to.uri) == "sip:vivekg@chair-dnrc.example.com" and msg.to.tag == "1918181833n"
    assert msg.from_.display == 'J Rosenberg \\"'  # "J Rosenberg \\\"" unescaped
    assert msg.from_.tag == "98asjd8"
    # integer fields with leading zeros
    assert msg.max_forwards == 68
    assert msg.cseq == (9, "INVITE")
    assert msg.call_id == "wsinv.ndaksdj@192.0.2.1"
    # Via as separate lines, as a comma list, in long and compact form (v:)
    assert [(v.protocol, v.version, v.transport, v.host, v.branch) for v in msg.vias] == [
        ("SIP", "2.0", "UDP", "192.0.2.2", "390skdjuw"),
        ("SIP", "2.0", "TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("SIP", "2.0", "UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert msg.get("Subject") == ""  # the empty subject (compact s:)
    # unknown headers, including one whose value would be invalid as generic-params
    assert msg.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert msg.get_all("unknownheaderwithunusualvalue") == [";;,,;;,;"]
    # uri parameters with and without values in Route
    route = msg.route[0].uri
    assert isinstance(route, SipUri) and route.lr
    assert route.params.items == (("lr", None), ("unknownwith", "value"), ("unknown-no-value", None))
    # m: compact Contact, escaped quotes in the display name, unknown and valueless header params
    (contact,) = msg.contact
    assert contact.display == 'Quoted string ""'
    assert contact.params.items == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert contact.q == 0.33
    assert msg.content_type == "application/sdp" and len(msg.body) == msg.content_length == 150
    # header order and unusual names survive: the unchanged message is byte-for-byte what came in
    assert msg.to_bytes() == raw("rfc4475", "wsinv")
    names = [h.name for h in msg.headers]
    assert names.index("NewFangledHeader") < names.index("UnknownHeaderWithUnusualValue") < names.index("Route")


def test_intmeth() -> None:
    msg = request("intmeth")
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.method == method and msg.cseq == (139122385, method)
    uri = msg.uri
    assert isinstance(uri, SipUri) and uri.host == "example.com"
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert msg.top_via is not None and msg.top_via.branch == "z9hG4bK-.!%66*_+`'~"  # % is not an escape here
    assert msg.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"  # quoted-pairs of control characters
    to_uri = msg.to.uri
    assert isinstance(to_uri, SipUri) and to_uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert msg.from_.display == "token1~` token2'+_ token3*%!.-"  # unquoted tokens
    assert msg.from_.params.get("fromParam''~+*_!.-%") == '"работающий"'  # UTF-8 in a quoted string
    assert msg.from_.tag == "_token~1'+`*%!-."
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.max_forwards == 255
    assert msg.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01() -> None:
    msg = request("esc01")
    uri = msg.uri
    assert isinstance(uri, SipUri)
    assert (uri.user, uri.host) == ("sips:user@example.com", "example.net")
    assert isinstance(msg.to.uri, SipUri) and msg.to.uri.user == "user"
    assert isinstance(msg.from_.uri, SipUri) and msg.from_.uri.user == "I have spaces"
    assert msg.call_id == "esc01.239409asdfakjkn23onasd0-3234"  # i:
    assert msg.content_type == "application/sdp"  # C:
    contact = msg.contact[0].uri
    assert isinstance(contact, SipUri) and contact.user == "caller"
    assert contact.lr  # %6C%72
    assert contact.params.get("name") == "value%41"  # unescaped once, never twice: not "valueA"


def test_escnull() -> None:
    msg = request("escnull")
    assert isinstance(msg.to.uri, SipUri) and msg.to.uri.user == "null-\x00-null"
    assert isinstance(msg.from_.uri, SipUri) and msg.from_.uri.user == "null-\x00-null"
    assert [c.uri.user for c in msg.contact if isinstance(c.uri, SipUri)] == ["\x00", "\x00\x00"]
    assert msg.content_length == 0  # L:0


def test_esc02() -> None:
    msg = request("esc02")
    assert msg.method == "RE%47IST%45R"  # an unknown method, not REGISTER
    assert msg.cseq.method == "RE%47IST%45R"
    assert msg.to.display == "%Z%45" and msg.from_.display == "%Z%45"
    assert msg.top_via is not None and msg.top_via.branch == "z9hG4bK209%fzsnel234"
    # C%6Fntact is an unknown header, not a Contact
    assert [str(c.uri) for c in msg.contact] == ["sip:alias1@host1.example.com", "sip:alias3@host3.example.com"]
    assert msg.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp() -> None:
    msg = request("lwsdisp")
    assert msg.from_.display == "caller" and str(msg.from_.uri) == "sip:caller@example.com"
    assert msg.from_.tag == "323"


def test_longreq() -> None:
    msg = request("longreq")
    assert msg.to.display == "I have a user name of " + "extreme" * 10 + " proportion"
    to_uri = msg.to.uri
    assert isinstance(to_uri, SipUri) and to_uri.port == 6000
    assert to_uri.params.get("unknownparam1") == "very" + "long" * 20 + "value"
    assert to_uri.params.get("longparam" + "name" * 25) == "shortvalue"
    assert to_uri.params.get("very" + "long" * 25 + "ParameterNameWithNoValue") == ""
    from_uri = msg.from_.uri  # F:
    assert isinstance(from_uri, SipUri) and from_uri.user == "amazinglylongcallername" * 5
    assert msg.from_.tag == "1" + "298" * 50 + "2424"
    assert msg.from_.params.get("unknownheaderparam" + "name" * 20) == "unknowheaderparam" + "value" * 15
    assert "unknownValueless" + "paramname" * 10 in msg.from_.params
    assert msg.call_id == "longreq.one" + "really" * 20 + "longcallid"
    unknown = [h for h in msg.headers if h.name.startswith("Unknown-")]
    assert len(unknown) == 1 and unknown[0].name == "Unknown-" + "Long" * 20 + "-Name"
    assert unknown[0].value.startswith("unknown-" + "long" * 20 + "-value; unknown-")
    vias = msg.vias
    assert len(vias) == 34
    assert [v.host for v in vias[:33]] == [f"sip{n}.example.com" for n in range(33, 0, -1)]
    assert vias[-1].host == "host.example.com" and vias[-1].received == "192.0.2.5"
    assert vias[-1].branch == "very" + "long" * 50 + "branchvalue"
    contact = msg.contact[0].uri
    assert isinstance(contact, SipUri) and contact.user == "amazinglylongcallername" * 5
    assert msg.content_length == 150 and len(msg.body) == 150


def test_dblreq() -> None:
    data = raw("rfc4475", "dblreq")
    msg = request("dblreq")
    # only the first message of the datagram counts, by its Content-Length of 0
    assert msg.method == "REGISTER" and msg.body == b""
    assert msg.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"  # I:
    assert msg.to_bytes() == data[: data.index(b"\r\n\r\n") + 4]
    # on a stream, the same octets are two messages
    framer = StreamFramer()
    messages = framer.feed(data)
    assert [m.method for m in messages if isinstance(m, Request)] == ["REGISTER", "INVITE"]
    assert messages[1].to.uri == SipUri(host="example.com", user="joe")  # t:
    # the INVITE's Content-Length (150) leaves 5 octets that frame nothing: the stream is lost
    assert framer.broken and framer.error is not None and "Content-Length" in framer.error.reason


def test_semiuri() -> None:
    msg = request("semiuri")
    uri = msg.uri
    assert isinstance(uri, SipUri)
    assert (uri.user, uri.host, uri.params.items) == ("user;par=u@example.net", "example.com", ())
    assert msg.get_list("Accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def test_transports() -> None:
    msg = request("transports")
    assert [v.transport for v in msg.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert msg.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def test_mpart01() -> None:
    msg = request("mpart01")
    assert msg.content_type == "multipart/mixed"
    assert msg.media_type is not None and msg.media_type.param("boundary") == "7a9cbec02ceef655"
    text, signature = msg.parts()
    assert (text.content_type, text.body) == ("text/plain", b"Hello")
    assert signature.content_type == "application/octet-stream"
    assert signature.get("Content-Transfer-Encoding") == "binary"
    # a DER SEQUENCE whose length field says 0x0152 octets follow: NULs and bare CRs intact
    assert signature.body[:4] == b"\x30\x82\x01\x52" and len(signature.body) == 4 + 0x152
    assert b"\x00" in signature.body and b"\r" in signature.body.replace(b"\r\n", b"")
    assert msg.top_via is not None and msg.top_via.rport_requested and msg.top_via.rport is None


def test_unreason() -> None:
    msg = load("unreason")
    assert isinstance(msg, Response) and msg.status == 200
    assert msg.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"


def test_noreason() -> None:
    msg = load("noreason")
    assert isinstance(msg, Response) and (msg.status, msg.reason) == (100, "")


# --- §3.1.2 and §3.2: what was refused, and why ------------------------------------------------------------


def test_scalar02_names_every_overlarge_field() -> None:
    msg = request("scalar02")
    for read, reason in (
        (lambda: msg.cseq, "Invalid CSeq"),
        (lambda: msg.max_forwards, "Invalid Max-Forwards"),
        (lambda: msg.expires, "Invalid Expires"),
    ):
        with pytest.raises(SipParseError, match=reason):
            read()
    assert msg.contact[0].expires is None  # expires=280297596632815 is over 2**32-1


def test_scalarlg_is_a_response_and_is_dropped() -> None:
    msg = load("scalarlg")
    assert isinstance(msg, Response) and msg.status == 503
    with pytest.raises(SipParseError) as caught:
        validate(msg)
    assert not caught.value.can_respond and error_response(caught.value) is None


def test_bigcode() -> None:
    with pytest.raises(SipParseError) as caught:
        load("bigcode")
    assert "4294967301" in caught.value.detail and caught.value.can_respond is False


def test_badvers_is_answered_with_505() -> None:
    with pytest.raises(SipParseError) as caught:
        validate(load("badvers"))
    answer = error_response(caught.value)
    assert answer is not None and (answer.status, answer.reason) == (505, "Version Not Supported")
    assert answer.to_bytes().startswith(b"SIP/2.0 505 Version Not Supported\r\n")
    assert answer.get("Via") == "SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw"


def test_badbranch_parses_and_only_validation_refuses_it() -> None:
    msg = request("badbranch")
    assert msg.top_via is not None and msg.top_via.branch == "z9hG4bK"
    assert not msg.top_via.rfc3261_branch


def test_bad_requests_get_a_400_that_copies_what_there_is() -> None:
    with pytest.raises(SipParseError) as caught:
        load("lwsstart")
    answer = error_response(caught.value)
    assert answer is not None and answer.status == 400
    assert answer.get("Call-ID") == "lwsstart.dfknq234oi243099adsdfnawe3@example.com"
    assert answer.to.tag is not None  # §8.2.6.2


# --- §3.3 and §3.4 --------------------------------------------------------------------------------------


def test_insuf_is_answered_without_the_missing_fields() -> None:
    with pytest.raises(SipParseError) as caught:
        validate(load("insuf"))
    answer = error_response(caught.value)
    assert answer is not None
    assert [h.name for h in answer.headers] == ["Via", "CSeq"]


def test_unkscm_and_novelsc() -> None:
    unknown = request("unkscm").uri
    assert isinstance(unknown, AbsoluteUri) and unknown.scheme == "nobodyknowsthisscheme"
    assert str(unknown) == "nobodyKnowsThisScheme:totallyopaquecontent"
    novel = request("novelsc").uri
    assert isinstance(novel, AbsoluteUri) and (novel.scheme, novel.opaque) == ("soap.beep", "//192.0.2.103:3002")
    validate(request("novelsc"), schemes=frozenset({"sip", "soap.beep"}))  # one that knows soap.beep


def test_unksm2() -> None:
    msg = request("unksm2")
    assert str(msg.to.uri) == "isbn:2983792873" and isinstance(msg.to.uri, AbsoluteUri)
    assert str(msg.from_.uri) == "http://www.example.com"
    assert str(msg.contact[0].uri) == "name:John_Smith"
    with pytest.raises(SipParseError, match="To Is Not a SIP or SIPS URI") as caught:
        validate(msg, registrar=True)  # a registrar needs a SIP or SIPS address-of-record
    assert caught.value.status == 400 and caught.value.can_respond


def test_bext01() -> None:
    msg = request("bext01")
    assert msg.get_list("Require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert msg.get_list("Proxy-Require") == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
    assert msg.top_via is not None and msg.top_via.transport == "TLS"


def test_invut() -> None:
    msg = request("invut")
    assert msg.content_type == "application/unknownformat"
    assert msg.body == b'<audio>\r\n <pcmu port="443"/>\r\n</audio>\r\n'


def test_regaut01() -> None:
    auth = parse_auth(request("regaut01").get("Authorization") or "")
    assert auth.scheme == "NoOneKnowsThisScheme" and auth.get("opaque-data") == "here"


def test_mcl01_loses_the_framing_of_a_stream() -> None:
    framer = StreamFramer()
    with pytest.raises(SipParseError, match="Multiple Content-Length"):
        framer.feed(raw("rfc4475", "mcl01"))
    assert framer.broken


def test_bcast() -> None:
    msg = load("bcast")
    assert isinstance(msg, Response) and msg.status == 200
    assert [v.host for v in msg.vias] == ["192.0.2.198", "255.255.255.255"]


def test_zeromf() -> None:
    assert request("zeromf").max_forwards == 0  # valid; answering 483 is the proxy's job


def test_cparam01_and_cparam02() -> None:
    (outside,) = request("cparam01").contact  # without <>: a Contact header parameter
    assert outside.params.items == (("unknownparam", None),)
    assert isinstance(outside.uri, SipUri) and not outside.uri.params
    (inside,) = request("cparam02").contact  # within <>: a URI parameter
    assert not inside.params
    assert isinstance(inside.uri, SipUri) and inside.uri.params.items == (("unknownparam", None),)


def test_regescrt() -> None:
    msg = request("regescrt")
    uri = msg.contact[0].uri
    assert isinstance(uri, SipUri) and uri.headers == (("Route", "<sip:sip.example.com>"),)
    validate(msg, registrar=True)  # headers are allowed in a REGISTER Contact (§19.1.1 Table 1)


def test_sdp01() -> None:
    msg = request("sdp01")
    assert msg.get_list("Accept") == ["text/nobodyKnowsThis"] and msg.content_type == "application/sdp"


def test_inv2543() -> None:
    msg = request("inv2543")
    assert msg.max_forwards is None and msg.content_length is None
    assert msg.top_via is not None and msg.top_via.branch is None
    assert msg.from_.tag is None
    assert msg.body.startswith(b"v=0\r\n") and len(msg.body) == 105  # the rest of the datagram
    with pytest.raises(SipParseError, match="Missing Content-Length"):  # §18.3: not on a stream
        StreamFramer().feed(raw("rfc4475", "inv2543"))


@pytest.mark.parametrize("name", [n for n, e in RFC4475.items() if e.stage is not Stage.PARSE])
def test_stream_framer_agrees_with_datagrams(name: str) -> None:
    """Fed one octet at a time, a stream yields the same message as the datagram (when framed)."""
    data = raw("rfc4475", name)
    datagram = parse_message(data)
    if datagram.content_length is None or b"\r\n\r\n" not in data:
        return  # inv2543 and baddn cannot be framed on a stream (§18.3)
    framer = StreamFramer()
    got: list[SipMessage] = []
    for i in range(len(data)):
        got += framer.feed(data[i : i + 1])
        if got:
            break
    assert got[0].to_bytes() == datagram.to_bytes() and got[0].headers == datagram.headers
    assert framer.keepalives == 0 and not framer.broken


# --- RFC 5118 ---------------------------------------------------------------------------------------------


def test_rfc5118_archive_bytes_are_refused_cleanly() -> None:
    for name in RFC5118:
        with pytest.raises(SipParseError):
            parse_message(raw("rfc5118", name))  # bare LF line ends: not SIP on the wire


def v6_request(name: str) -> Request:
    msg = load_v6(name)
    assert isinstance(msg, Request)
    return msg


def test_ipv6_good() -> None:
    msg = v6_request("ipv6-good")
    assert isinstance(msg.uri, SipUri) and (msg.uri.host, msg.uri.port) == ("[2001:db8::10]", None)
    assert msg.uri.is_ipv6
    assert msg.top_via is not None and msg.top_via.host == "[2001:db8::9:1]"
    assert isinstance(msg.contact[0].uri, SipUri) and msg.contact[0].uri.host == "[2001:db8::1]"


def test_ipv6_bad() -> None:
    with pytest.raises(SipParseError) as caught:
        load_v6("ipv6-bad")
    assert "2001:db8::10" in caught.value.detail and caught.value.can_respond


@pytest.mark.parametrize(
    ("name", "host", "port"),
    [("port-ambiguous", "[2001:db8::10:5070]", None), ("port-unambiguous", "[2001:db8::10]", 5070)],
)
def test_ipv6_port(name: str, host: str, port: int | None) -> None:
    uri = v6_request(name).uri
    assert isinstance(uri, SipUri) and (uri.host, uri.port) == (host, port)


def test_via_received_with_and_without_brackets() -> None:
    with_delim = v6_request("via-received-param-with-delim").top_via
    assert with_delim is not None and with_delim.received == "2001:db8::9:255"
    assert with_delim.params.get("received") == "[2001:db8::9:255]"
    no_delim = v6_request("via-received-param-no-delim").top_via
    assert no_delim is not None and no_delim.received == "2001:db8::9:255"
    assert no_delim.branch == "z9hG4bKas3"  # the colons of the address did not end the parameters


def test_mult_ip_in_header() -> None:
    vias = v6_request("mult-ip-in-header").vias
    assert [(v.transport, v.host, v.port, v.received) for v in vias] == [
        ("UDP", "[2001:db8::9:1]", 6050, None),
        ("UDP", "192.0.2.1", None, None),
        ("TCP", "[2001:db8::9:255]", None, "192.0.2.200"),
    ]


@pytest.mark.parametrize("name", ["ipv6-in-sdp", "mult-ip-in-sdp", "ipv4-mapped-ipv6"])
def test_ipv6_sdp_bodies(name: str) -> None:
    msg = v6_request(name)
    assert msg.content_type == "application/sdp" and msg.body.startswith(b"v=0\r\n")
    assert b"IN IP6 " in msg.body and len(msg.body) == msg.content_length


def test_ipv4_mapped_ipv6() -> None:
    msg = v6_request("ipv4-mapped-ipv6")
    assert [(v.host, v.port) for v in msg.vias] == [("[::ffff:192.0.2.10]", 19823), ("[::ffff:192.0.2.2]", None)]
    assert isinstance(msg.contact[0].uri, SipUri) and msg.contact[0].uri.host == "[::ffff:192.0.2.2]"


def test_ipv6_abnf_bug_is_tolerated() -> None:
    buggy, correct = v6_request("ipv6-bug-abnf-3-colons"), v6_request("ipv6-correct-abnf-2-colons")
    assert isinstance(buggy.uri, SipUri) and buggy.uri.host == "[2001:db8:::192.0.2.1]"
    assert buggy.uri.equivalent(correct.uri)  # the same address, read as RFC 4291 has it
    assert buggy.to.uri == SipUri(host="[2001:db8:::192.0.2.1]", user="user")


# --- fuzzing ----------------------------------------------------------------------------------------------

SEEDS = [data_of(rfc, name) for rfc, name, _ in CASES]


def exercise(data: bytes) -> None:
    """Parse and read everything; only SipParseError may escape."""
    try:
        msg = parse_message(data, max_message=4096, max_headers=64, max_uri=512)
    except SipParseError as exc:
        assert 100 <= exc.status <= 699
        error_response(exc)
        return
    readers = [
        lambda: msg.headers,
        lambda: [str(v) for v in msg.vias],
        lambda: msg.top_via,
        lambda: msg.call_id,
        lambda: msg.cseq,
        lambda: str(msg.from_),
        lambda: str(msg.to),
        lambda: [str(c) for c in msg.contact],
        lambda: msg.contact_is_wildcard,
        lambda: msg.route,
        lambda: msg.record_route,
        lambda: msg.max_forwards,
        lambda: msg.expires,
        lambda: msg.content_length,
        lambda: msg.content_type,
        lambda: [(p.content_type, p.body) for p in msg.parts()],
        lambda: validate(msg),
        lambda: validate(msg, registrar=True),
        lambda: msg.to_bytes(),
    ]
    for read in readers:
        try:
            read()
        except SipParseError:
            pass
    rebuilt = msg.copy()
    rebuilt.body = msg.body
    try:
        parse_message(rebuilt.to_bytes())
    except SipParseError:
        pass


def exercise_stream(data: bytes, cuts: list[int]) -> None:
    framer = StreamFramer(max_message=4096, max_headers=64, max_uri=512)
    edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for start, end in itertools.pairwise(edges):
        try:
            framer.feed(data[start:end])
        except SipParseError:
            if framer.broken:
                return


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_fuzz_random_bytes(data: bytes) -> None:
    exercise(data)
    exercise(b"INVITE sip:a@b SIP/2.0\r\n" + data)


# octets that mean something to a SIP parser, and digits that only look like digits (U+00B2, U+0660)
SPECIAL = [b"\r\n", b"\r\n ", b";", b",", b'"', b"\\", b"<", b">", b":", b"%", b"[", b"]", b"=", b"\x00"]
SPECIAL += [b"\xc2\xb2", b"\xd9\xa0", b"9" * 30, b"\xff", b"\r", b"\n"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "special", "truncate"]))
        if action == "flip" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif action == "special":
            token = draw(st.sampled_from(SPECIAL))
            data[pos:pos] = token
        else:
            del data[pos:]
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fuzz_mutated_corpus(data: bytes) -> None:
    exercise(data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=3), st.lists(st.integers(0, 5000), max_size=6))
def test_fuzz_stream(messages: list[bytes], cuts: list[int]) -> None:
    exercise_stream(b"\r\n\r\n".join(messages), cuts)
