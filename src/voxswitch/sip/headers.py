"""SIP header fields: names, lists, quoted strings, name-addr, Via, CSeq, auth-params, media types.

Theory of operation
-------------------
The message layer keeps every header field as text and calls into this module only when a value
is read, so each function here takes one unfolded header value (RFC 3261 §7.3.1: folding already
removed) and returns an immutable object, or raises `SipParseError` naming the header at fault.

- Names: `header_key` maps any spelling, including the compact forms of §7.3.3 (and of the later
  RFCs that define their own), to one lowercase key; `canonical_name` to the usual spelling.
- Lists: `split_list` splits a comma-separated value (§7.3.1) without breaking inside a quoted
  string or ``<>``; headers whose grammar uses commas for other things (Date, auth headers,
  free text) are never split (`LIST_HEADERS` says which are).
- ``name-addr / addr-spec`` (§20.10, §25.1): `parse_name_addr` for From, To, Contact, Route,
  Record-Route and friends. A URI outside ``<>`` ends at the first ``;``, and may not contain
  ``,``, ``?`` or ``;`` at all (§20, RFC 4475 §3.1.2.13); a URI inside ``<>`` may not contain
  whitespace (RFC 4475 §3.1.2.14).
- Parameters (`parse_params`): ``generic-param`` (§25.1); values are kept as written, so a
  quoted-string value keeps its quotes (`unquote` removes them).
- Via (§20.42, §18.2.1), CSeq (§20.16, §8.1.1.5), auth-params (§25.1, RFC 2617 §1.2/§3.2),
  media types (§20.15) and the SIP Date (§20.17, RFC 1123 in GMT only).

Everything is tokenised with compiled regular expressions applied per element, never per
character in Python, because this code runs for every message a server receives.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from types import MappingProxyType
from typing import NamedTuple

from voxswitch.sip.errors import SipParseError
from voxswitch.sip.uri import NO_PARAMS, Params, Uri, bounded_int, is_valid_host, parse_uri

__all__ = [
    "KNOWN_NAMES",
    "LIST_HEADERS",
    "MAGIC_COOKIE",
    "MAX_CSEQ",
    "SPELLINGS",
    "AuthParam",
    "AuthValue",
    "CSeq",
    "MediaType",
    "NameAddr",
    "Params",
    "Via",
    "canonical_name",
    "header_key",
    "is_token",
    "known_name",
    "lookup_name",
    "parse_auth",
    "parse_cseq",
    "parse_date",
    "parse_media_type",
    "parse_name_addr",
    "parse_name_addrs",
    "parse_params",
    "parse_quoted",
    "parse_via",
    "parse_vias",
    "quote_string",
    "split_list",
    "unquote",
]

# --- names (§7.3, §7.3.3 compact forms) --------------------------------------------------------------

_CANONICAL = (
    "Accept Accept-Contact Accept-Encoding Accept-Language Accept-Resource-Priority Alert-Info Allow "
    "Allow-Events Authentication-Info Authorization Call-ID Call-Info Contact Content-Disposition "
    "Content-Encoding Content-Language Content-Length Content-Type CSeq Date Error-Info Event Expires "
    "Flow-Timer From History-Info Identity Identity-Info In-Reply-To Join Max-Forwards MIME-Version "
    "Min-Expires Min-SE Organization P-Asserted-Identity P-Preferred-Identity Path Priority Privacy "
    "Proxy-Authenticate Proxy-Authorization Proxy-Require RAck Reason Record-Route Refer-Sub Refer-To "
    "Referred-By Reject-Contact Replaces Reply-To Request-Disposition Require Resource-Priority "
    "Retry-After Route RSeq Security-Client Security-Server Security-Verify Server Service-Route "
    "Session-Expires SIP-ETag SIP-If-Match Subject Subscription-State Supported Target-Dialog "
    "Timestamp To Unsupported User-Agent Via Warning WWW-Authenticate"
).split()

# RFC 3261 §7.3.3 and §20 (i m e l c f s k t v), RFC 6665 (o u), RFC 3515 (r), RFC 3892 (b),
# RFC 3841 (a j d), RFC 4028 (x), RFC 8224 (y), RFC 4474 (n).
_COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "u": "Allow-Events",
    "r": "Refer-To",
    "b": "Referred-By",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "x": "Session-Expires",
    "y": "Identity",
    "n": "Identity-Info",
}

_NAMES: dict[str, tuple[str, str]] = {name.lower(): (name.lower(), name) for name in _CANONICAL}
_NAMES.update({short: (full.lower(), full) for short, full in _COMPACT.items()})
KNOWN_NAMES: Mapping[str, tuple[str, str]] = MappingProxyType(_NAMES)
"""Lowercase header name (full or compact) -> ``(key, canonical spelling)``."""
# The same entries under the spellings met most (canonical, lowercase, compact in either case), so
# the lookups every message makes skip the ``lower()``; anything else falls back to `_NAMES`.
_SPELLINGS: dict[str, tuple[str, str]] = {
    **_NAMES,
    **{entry[1]: entry for entry in _NAMES.values()},
    **{short.upper(): _NAMES[short] for short in _COMPACT},
}

# Headers whose values are comma-separated lists (§7.3.1). Others (Date, WWW-Authenticate,
# Authorization, free text such as Subject) may hold commas that separate nothing.
LIST_HEADERS = frozenset(
    name.lower()
    for name in (
        "Accept Accept-Contact Accept-Encoding Accept-Language Alert-Info Allow Allow-Events Call-Info "
        "Contact Content-Encoding Content-Language Error-Info History-Info In-Reply-To "
        "P-Asserted-Identity P-Preferred-Identity Path Proxy-Require Reason Record-Route Reject-Contact "
        "Request-Disposition Require Route Security-Client Security-Server Security-Verify "
        "Service-Route Supported Unsupported Via Warning"
    ).split()
)


def lookup_name(name: str) -> tuple[str, str]:
    """``(key, spelling)`` for a header name: the lowercase key and the name as it will be written."""
    found = _SPELLINGS.get(name) or _NAMES.get(name.lower())
    return found if found is not None else (name.lower(), name)


def known_name(name: str) -> tuple[str, str] | None:
    """`lookup_name` for known names only: None for a name this module does not know."""
    return _SPELLINGS.get(name) or _NAMES.get(name.lower())


SPELLINGS: Mapping[str, tuple[str, str]] = _SPELLINGS  # read-only by type; a plain dict for speed
"""`KNOWN_NAMES` also under the canonical and compact spellings: the parser's first look."""


def header_key(name: str) -> str:
    """The lowercase key of a header name, compact forms expanded: ``"v"`` and ``"VIA"`` -> ``"via"``."""
    found = _SPELLINGS.get(name) or _NAMES.get(name.lower())
    return found[0] if found is not None else name.lower()


def canonical_name(name: str) -> str:
    """The usual spelling of a known header name (``"cseq"`` -> ``"CSeq"``); others are kept as written."""
    found = _NAMES.get(name.lower())
    return found[1] if found is not None else name


# --- tokens, quoted strings, lists ------------------------------------------------------------------

_TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
_TOKEN = re.compile(rf"[{_TOKEN_CHARS}]+")
# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE (§25.1)
_QUOTED = re.compile(r'"((?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\U0010ffff]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*)"')
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_LIST_PIECE = re.compile(r'"(?:[^"\\]|\\.)*"|<[^<>]*>|[^,"<]+', re.DOTALL)
_WS = " \t"
_BLANK = re.compile(r"[ \t]*")


def is_token(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None


def _bad(what: str, text: str = "") -> SipParseError:
    return SipParseError(400, f"Bad Request - Malformed {what}", detail=text[:120])


def parse_quoted(text: str, pos: int = 0) -> tuple[str, int]:
    """The unescaped content of the quoted-string at `pos`, and the index just past it."""
    m = _QUOTED.match(text, pos)
    if m is None:
        raise _bad("Quoted String", text[pos:])
    content = m.group(1)
    return (_QUOTED_PAIR.sub(r"\1", content) if "\\" in content else content), m.end()


def quote_string(text: str) -> str:
    """`text` as a quoted-string, escaping only ``"`` and ``\\`` (§25.1 quoted-pair)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquote(value: str) -> str:
    """A parameter value without its quotes and escapes if it is a quoted-string, else unchanged."""
    if len(value) >= 2 and value[0] == '"':
        return parse_quoted(value)[0]
    return value


def split_list(value: str, what: str = "Header") -> list[str]:
    """Split a comma-separated header value (§7.3.1), not inside quotes or ``<>``; elements stripped.

    Empty elements are returned as ``""`` for the caller to judge. An unterminated quoted string or
    ``<`` raises `SipParseError` (RFC 4475 §3.1.2.6).
    """
    if '"' not in value and "<" not in value:
        return [piece.strip(_WS) for piece in value.split(",")]
    pieces: list[str] = []
    current: list[str] = []
    pos, end = 0, len(value)
    while pos < end:
        if value[pos] == ",":
            pieces.append("".join(current).strip(_WS))
            current = []
            pos += 1
            continue
        m = _LIST_PIECE.match(value, pos)
        if m is None:
            raise _bad(what, value)
        current.append(m.group())
        pos = m.end()
    pieces.append("".join(current).strip(_WS))
    return pieces


# --- generic-param (§25.1) ---------------------------------------------------------------------------

# SEMI token [ EQUAL gen-value ]; gen-value = token / host / quoted-string
_PARAM = re.compile(
    rf"[{_WS}]*;[{_WS}]*([{_TOKEN_CHARS}]+)"
    rf'(?:[{_WS}]*=[{_WS}]*("(?:[^"\\]|\\.)*"|[{_TOKEN_CHARS}:\[\]]+))?[{_WS}]*',
    re.DOTALL,
)


def parse_params(text: str, what: str = "Header") -> Params:
    """``*(SEMI generic-param)``; quoted values are checked and kept with their quotes."""
    items: list[tuple[str, str | None]] = []
    pos, end = 0, len(text)
    while pos < end:
        m = _PARAM.match(text, pos)
        if m is None:
            if not text[pos:].strip(_WS):
                break
            raise _bad(what, text)
        name, value = m.group(1), m.group(2)
        if value is not None and value[0] == '"':
            parse_quoted(value)  # well-formed quoted-string, or raise
        items.append((name, value))
        pos = m.end()
    return Params(tuple(items))


# --- name-addr / addr-spec (§20.10, §25.1) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A From, To, Contact, Route or Record-Route value: display name, URI and header parameters."""

    uri: Uri
    display: str | None = None
    params: Params = NO_PARAMS
    _text: str | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def expires(self) -> int | None:
        """The Contact ``expires`` parameter (§20.10), if a valid delta-seconds."""
        return bounded_int(self.params.get("expires"), 2**32 - 1)

    @property
    def q(self) -> float | None:
        value = self.params.get("q")
        try:
            return float(value) if value else None
        except ValueError:
            return None

    def with_param(self, name: str, value: str | None = None) -> NameAddr:
        return replace(self, params=self.params.with_param(name, value))

    def with_tag(self, tag: str) -> NameAddr:
        return self.with_param("tag", tag)

    def __str__(self) -> str:
        if self._text is not None:
            return self._text
        display = ""
        if self.display is not None:
            tokens = self.display.split(" ")
            display = (self.display if all(map(is_token, tokens)) else quote_string(self.display)) + " "
        return f"{display}<{self.uri}>{self.params}"


_LWS_OR_LT = re.compile(r"[ \t<]")
_NOT_IN_BARE_URI = re.compile(r'[ \t,?<>"]')


def parse_name_addr(text: str, what: str = "Header") -> NameAddr:
    """One ``(name-addr / addr-spec) *(SEMI param)`` element; errors name `what` (e.g. "From")."""
    try:
        # From (and To in a dialog) differ from request to request only in a final ``;tag=``: parse
        # the rest through the cache, then add the tag. Anything unusual takes the full parse.
        base, sep, tag = text.rpartition(";tag=")
        if sep and _TOKEN.fullmatch(tag):
            head = _name_addr(base)
            if "tag" not in head.params:
                value = NameAddr(head.uri, head.display, Params((*head.params.items, ("tag", tag))))
                object.__setattr__(value, "_text", text.strip(_WS))
                return value
        return _name_addr(text)
    except SipParseError:
        raise _bad(what, text) from None


# NameAddr is immutable, and a registrar meets the same values again and again: From, To and
# Contact of a challenged REGISTER come back in the one that answers the challenge, and To and
# Contact on every refresh. Values that fail to parse are not kept.
@lru_cache(maxsize=4096)
def _name_addr(text: str) -> NameAddr:
    return _parse_name_addr(text, "Header")


def _parse_name_addr(text: str, what: str) -> NameAddr:
    s = text.strip(_WS)
    if not s:
        raise _bad(what, text)
    display: str | None = None
    if s[0] == '"':
        display, pos = parse_quoted(s)
        lt = pos
        while lt < len(s) and s[lt] in _WS:
            lt += 1
        if lt >= len(s) or s[lt] != "<":
            raise _bad(what, text)
    else:
        lt = s.find("<")
        if lt > 0:
            tokens = s[:lt].split()
            if not all(map(is_token, tokens)):
                raise _bad(what, text)  # RFC 4475 §3.1.2.15: non-token characters in a display name
            display = " ".join(tokens) or None
    if lt >= 0:
        gt = s.find(">", lt)
        if gt < 0:
            raise _bad(what, text)
        uri_text = s[lt + 1 : gt]
        if not uri_text or _LWS_OR_LT.search(uri_text):
            raise _bad(what, text)  # RFC 4475 §3.1.2.14: no LWS inside <>
        rest = s[gt + 1 :]
    else:
        semi = s.find(";")
        uri_text = s if semi < 0 else s[:semi].rstrip(_WS)
        if not uri_text or _NOT_IN_BARE_URI.search(uri_text):
            raise _bad(what, text)  # §20: such a URI MUST be enclosed in <>
        rest = "" if semi < 0 else s[semi:]
    value = NameAddr(parse_uri(uri_text), display, parse_params(rest, what) if rest else NO_PARAMS)
    object.__setattr__(value, "_text", s)
    return value


def parse_name_addrs(value: str, what: str = "Header") -> list[NameAddr]:
    """A comma-separated list of name-addr values (Contact, Route, Record-Route, ...)."""
    if "," not in value:  # the usual case: one value
        return [parse_name_addr(value, what)]
    pieces = split_list(value, what)
    if any(not piece for piece in pieces):
        raise _bad(what, value)
    return [parse_name_addr(piece, what) for piece in pieces]


# --- Via (§20.42, §18.2.1) ---------------------------------------------------------------------------

# sent-protocol LWS sent-by, with SWS around "/" and ":" (SLASH, COLON)
_VIA = re.compile(
    rf"[{_WS}]*([{_TOKEN_CHARS}]+)[{_WS}]*/[{_WS}]*([{_TOKEN_CHARS}]+)[{_WS}]*/[{_WS}]*([{_TOKEN_CHARS}]+)"
    rf"[{_WS}]+(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9_.\-]*)(?:[{_WS}]*:[{_WS}]*([0-9]{{1,5}}))?"
)
MAGIC_COOKIE = "z9hG4bK"


def _strip_brackets(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value: sent-protocol, sent-by and parameters (branch, received, rport, maddr, ttl)."""

    transport: str
    host: str
    port: int | None = None
    params: Params = NO_PARAMS
    protocol: str = "SIP"
    version: str = "2.0"
    _text: str | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        """The ``received`` address without IPv6 brackets (both forms are sent; RFC 5118 §4.5)."""
        value = self.params.get("received")
        return None if value is None else _strip_brackets(value)

    @property
    def rport(self) -> int | None:
        """The port filled in by the server (RFC 3581 §4); None when absent or still empty."""
        return bounded_int(self.params.get("rport"), 65535)

    @property
    def rport_requested(self) -> bool:
        return "rport" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def ttl(self) -> int | None:
        return bounded_int(self.params.get("ttl"), 255)

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def rfc3261_branch(self) -> bool:
        """True when the branch carries the magic cookie and an identifier after it (§8.1.1.7)."""
        branch = self.branch
        return branch is not None and branch.startswith(MAGIC_COOKIE) and len(branch) > len(MAGIC_COOKIE)

    def with_param(self, name: str, value: str | None = None) -> Via:
        return replace(self, params=self.params.with_param(name, value))

    def __str__(self) -> str:
        if self._text is not None:
            return self._text
        return f"{self.protocol}/{self.version}/{self.transport} {self.sent_by}{self.params}"


@lru_cache(maxsize=1024)  # a peer's sent-by is the same on every request it sends
def _sent_protocol_and_by(head: str) -> tuple[str, str, str, str, int | None]:
    """``(protocol, version, transport, host, port)`` of the part of a via-parm before its params."""
    m = _VIA.match(head)
    if m is None or head[m.end() :].strip(_WS):
        raise _bad("Via", head)
    protocol, version, transport, host, port = m.groups()
    if not is_valid_host(host) or (port is not None and int(port) > 65535):
        raise _bad("Via", head)
    return protocol.upper(), version, transport.upper(), host, None if port is None else int(port)


def parse_via(text: str) -> Via:
    """One via-parm (§25.1). Transport names are upper-cased; unknown ones are kept (RFC 4475 §3.1.1.10)."""
    head, semi, rest = text.partition(";")
    try:
        protocol, version, transport, host, port = _sent_protocol_and_by(head)
    except SipParseError:
        raise _bad("Via", text) from None
    params = parse_params(semi + rest, "Via") if semi else NO_PARAMS
    for name, value in params.items:
        lname = name.lower()
        if lname == "branch" and not value:
            raise _bad("Via", text)
        if lname == "ttl" and bounded_int(value, 255) is None:
            raise _bad("Via", text)
        if lname == "rport" and value is not None and bounded_int(value, 65535) is None:
            raise _bad("Via", text)
        if lname in ("received", "maddr") and not value:
            raise _bad("Via", text)
    via = Via(transport, host, port, params, protocol, version)
    object.__setattr__(via, "_text", text.strip(_WS))
    return via


def parse_vias(value: str) -> list[Via]:
    if "," not in value:  # the usual case: one value
        return [parse_via(value)]
    pieces = split_list(value, "Via")
    if any(not piece for piece in pieces):
        raise _bad("Via", value)  # RFC 4475 §3.1.2.1: empty list elements
    return [parse_via(piece) for piece in pieces]


# --- CSeq (§20.16) -----------------------------------------------------------------------------------

_CSEQ = re.compile(rf"[{_WS}]*([0-9]+)[{_WS}]+([{_TOKEN_CHARS}]+)[{_WS}]*")
MAX_CSEQ = 2**31 - 1  # §8.1.1.5: a 32-bit unsigned integer less than 2**31


class CSeq(NamedTuple):
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


@lru_cache(maxsize=1024)  # "1 REGISTER", "2 REGISTER", "1 OPTIONS"...: the same few, over and over
def parse_cseq(value: str) -> CSeq:
    m = _CSEQ.fullmatch(value)
    if m is None:
        raise SipParseError(400, "Bad Request - Invalid CSeq", detail=value[:120])
    seq = bounded_int(m.group(1), MAX_CSEQ)
    if seq is None:
        raise SipParseError(400, "Bad Request - Invalid CSeq", detail="sequence number out of range")
    return CSeq(seq, m.group(2))


# --- auth-params (§25.1 challenge / credentials, RFC 2617 §1.2) ---------------------------------------

_AUTH_PARAM = re.compile(
    rf'[{_WS}]*([{_TOKEN_CHARS}]+)[{_WS}]*=[{_WS}]*("(?:[^"\\]|\\.)*"|[{_TOKEN_CHARS}]+)[{_WS}]*(,|$)',
    re.DOTALL,
)


class AuthParam(NamedTuple):
    name: str
    value: str
    quoted: bool


@dataclass(frozen=True, slots=True)
class AuthValue:
    """A WWW-Authenticate / Authorization (and Proxy-) value: the scheme and its auth-params."""

    scheme: str
    params: tuple[AuthParam, ...] = ()

    def get(self, name: str) -> str | None:
        lname = name.lower()
        for param in self.params:
            if param.name.lower() == lname:
                return param.value
        return None

    def __str__(self) -> str:
        parts = [f"{p.name}={quote_string(p.value) if p.quoted else p.value}" for p in self.params]
        return f"{self.scheme} {', '.join(parts)}" if parts else self.scheme


def parse_auth(value: str, what: str = "Authorization") -> AuthValue:
    """``auth-scheme LWS auth-param *(COMMA auth-param)``; values are unquoted, order kept."""
    s = value.strip(_WS)
    m = _TOKEN.match(s)
    if m is None:
        raise _bad(what, value)
    scheme, pos = m.group(), m.end()
    rest = s[pos:]
    if rest and rest[0] not in _WS:
        raise _bad(what, value)
    params: list[AuthParam] = []
    pos = 0
    while not _BLANK.fullmatch(rest, pos):
        pm = _AUTH_PARAM.match(rest, pos)
        if pm is None:
            raise _bad(what, value)
        raw = pm.group(2)
        quoted = raw[0] == '"'
        params.append(AuthParam(pm.group(1), parse_quoted(raw)[0] if quoted else raw, quoted))
        pos = pm.end()
        if pm.group(3) == "," and _BLANK.fullmatch(rest, pos):
            raise _bad(what, value)  # a trailing comma
    return AuthValue(scheme, tuple(params))


# --- media types (§20.15, RFC 2045 §5.1) -------------------------------------------------------------

_MEDIA = re.compile(rf"[{_WS}]*([{_TOKEN_CHARS}]+)[{_WS}]*/[{_WS}]*([{_TOKEN_CHARS}]+)")


@dataclass(frozen=True, slots=True)
class MediaType:
    """``type/subtype;params`` of a Content-Type (or a body part's)."""

    type: str
    subtype: str
    params: Params = NO_PARAMS

    @property
    def essence(self) -> str:
        """``type/subtype`` in lowercase, what the media type is compared on."""
        return f"{self.type}/{self.subtype}".lower()

    def param(self, name: str) -> str | None:
        value = self.params.get(name)
        return None if value is None else unquote(value)

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}{self.params}"


def parse_media_type(value: str) -> MediaType:
    m = _MEDIA.match(value)
    if m is None:
        raise _bad("Content-Type", value)
    return MediaType(m.group(1), m.group(2), parse_params(value[m.end() :], "Content-Type"))


# --- Date (§20.17: RFC 1123 date, always GMT) --------------------------------------------------------

_DATE = re.compile(
    r"[ \t]*(Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT[ \t]*"
)
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def parse_date(value: str) -> datetime:
    """A SIP Date value as an aware UTC datetime; other time zones are refused (RFC 4475 §3.1.2.12)."""
    m = _DATE.fullmatch(value)
    if m is None:
        raise SipParseError(400, "Bad Request - Invalid Date", detail=value[:120])
    _, day, month, year, hour, minute, second = m.groups()
    try:
        return datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except ValueError:
        raise SipParseError(400, "Bad Request - Invalid Date", detail=value[:120]) from None
