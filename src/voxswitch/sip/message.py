"""SIP requests and responses: parse from bytes, read and change, serialise to bytes, validate.

Theory of operation
-------------------
Parsing is split so that a server pays only for what it reads (RFC 3261 §7, §18.3):

1. Framing. `parse_message` takes one datagram; `StreamFramer` cuts a TCP/TLS byte stream into
   messages by Content-Length (§18.3, mandatory on streams) and skips the CRLFs between messages
   (§7.5, RFC 5626 §3.5.1 keep-alives). Limits on size, header count and Request-URI length are
   parameters, answered with 513, 413 and 414.
2. The head. The start line is checked (§7.1, §7.2; RFC 4475 §3.1.2.7-§3.1.2.10, §3.1.2.19) and
   the Request-URI parsed. Header lines are unfolded (§7.3.1: the CRLF of a fold is dropped, its
   whitespace kept) and stored in arrival order as ``(key, name, value)`` text, known names in
   their canonical spelling and compact forms expanded (§7.3.3), unknown ones exactly as received.
3. Structured values (Via, From, To, CSeq, Contact, ...) are parsed from that text on first access
   by `voxswitch.sip.headers` and cached until the message changes.

A parsed message keeps its bytes: serialising one that was not changed returns them untouched (a
proxy relays what it got; unknown headers round-trip by construction). Any change drops them and
the message is rebuilt from the header list, with Content-Length recomputed from the body.

`validate` is what a server checks before accepting a request (§8.2, §16.3): version (505),
Request-URI scheme (416), the mandatory header fields present exactly once, each parseable, CSeq
matching the method, numeric fields in range. Failures are `SipParseError`s whose reason phrase names
the problem and which, where a response can be routed, carry the message so `error_response` can
answer it. `build_response` is §8.2.6: Via, From, To (with a tag), Call-ID and CSeq copied.

Multipart bodies (RFC 2046 §5.1) are split on demand by `BaseMessage.parts`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple, TypeAlias, TypeVar

from voxswitch.sip.errors import SipParseError
from voxswitch.sip.headers import (
    MAGIC_COOKIE,
    SPELLINGS,
    CSeq,
    MediaType,
    NameAddr,
    Via,
    header_key,
    is_token,
    known_name,
    lookup_name,
    parse_cseq,
    parse_date,
    parse_media_type,
    parse_name_addr,
    parse_name_addrs,
    parse_vias,
    split_list,
)
from voxswitch.sip.uri import SipUri, Uri, bounded_int, parse_uri

__all__ = [
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_MESSAGE",
    "DEFAULT_MAX_URI",
    "REASON_PHRASES",
    "SIP_VERSION",
    "SUPPORTED_SCHEMES",
    "BaseMessage",
    "BodyPart",
    "Header",
    "Request",
    "Response",
    "SipMessage",
    "StreamFramer",
    "build_response",
    "error_response",
    "parse_message",
    "parse_multipart",
    "validate",
]

SIP_VERSION = "SIP/2.0"
SUPPORTED_SCHEMES = frozenset({"sip", "sips", "tel"})
DEFAULT_MAX_MESSAGE = 65_535
DEFAULT_MAX_HEADERS = 256
DEFAULT_MAX_URI = 4_096

# RFC 3261 §21 (and the extensions a PBX meets)
REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    430: "Flow Failed",
    433: "Anonymity Disallowed",
    436: "Bad Identity-Info",
    437: "Unsupported Certificate",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}

_NOWHERE: tuple[int, ...] = ()  # the positions of an absent header field
_MISSING = object()
_spelling = SPELLINGS.get
_VERSION = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
_WS = " \t"
_T = TypeVar("_T")


class Header(NamedTuple):
    """One header field line: the name as it will be written and the unfolded value."""

    name: str
    value: str


# --- errors -----------------------------------------------------------------------------------------


def _respondable(msg: SipMessage | None) -> bool:
    """A response can be built: a request, not an ACK (§17.1.1.3), that carries a Via to copy back.

    A malformed Via or CSeq does not prevent the answer: RFC 4475 §3.1.2.1 and §3.1.2.4 ask for a
    400 to exactly such requests, copied as received and sent back to where they came from.
    """
    return isinstance(msg, Request) and msg.method != "ACK" and bool(msg._positions("via"))


def _error(status: int, reason: str, msg: SipMessage | None = None, detail: str = "") -> SipParseError:
    return SipParseError(status, reason, detail=detail, message=msg, can_respond=_respondable(msg))


# --- messages ----------------------------------------------------------------------------------------


class BaseMessage:
    """What requests and responses share: header fields in order, a body, typed accessors."""

    __slots__ = ("_body", "_cache", "_entries", "_index", "_raw", "version")

    def __init__(self, headers: Iterable[tuple[str, str]] = (), body: bytes = b"", *, version: str = SIP_VERSION):
        self._entries = [_entry(name, value) for name, value in headers]
        self._index: dict[str, list[int]] | None = None
        self._cache: dict[str, object] = {}
        self._raw: bytes | None = None
        self._body = bytes(body)
        self.version = version

    # --- header fields ------------------------------------------------------------------------------

    def _changed(self, key: str) -> None:
        """Header `key` changed: the bytes and positions are stale, and what was parsed from it."""
        self._raw = None
        self._index = None
        self._cache.pop(key, None)  # values are cached under their header's key

    def _header_index(self) -> dict[str, list[int]]:
        """Header key -> the positions of its lines, built once per change."""
        index = self._index
        if index is None:
            entries = self._entries
            index = {entry[0]: [i] for i, entry in enumerate(entries)}
            if len(index) != len(entries):  # some field has several lines (Via, Route...): collect them
                index = {}
                for i, entry in enumerate(entries):
                    index.setdefault(entry[0], []).append(i)
            self._index = index
        return index

    def _positions(self, key: str) -> Sequence[int]:
        index = self._index
        if index is None:
            index = self._header_index()
        return index.get(key, _NOWHERE)

    def _values(self, key: str) -> list[str]:
        """`get_all` for a key already in `header_key` form."""
        entries = self._entries
        return [entries[i][2] for i in self._positions(key)]

    @property
    def headers(self) -> list[Header]:
        """Every header field in order (a copy)."""
        return [Header(name, value) for _, name, value in self._entries]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.has_key(header_key(name))

    def has_key(self, key: str) -> bool:
        """A header field of this `header_key` is present (a scan: no index is built for one look)."""
        if self._index is not None:
            return key in self._index
        for entry in self._entries:
            if entry[0] == key:
                return True
        return False

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of a header field; any spelling, compact forms included."""
        positions = self._positions(header_key(name))
        return self._entries[positions[0]][2] if positions else default

    def get_all(self, name: str) -> list[str]:
        """Every line of a header field, in order, as written (not split at commas)."""
        entries = self._entries
        return [entries[i][2] for i in self._positions(header_key(name))]

    def get_list(self, name: str) -> list[str]:
        """The comma-separated elements of every line of a list header (§7.3.1), empty ones dropped."""
        out: list[str] = []
        for value in self.get_all(name):
            out.extend(piece for piece in split_list(value, lookup_name(name)[1]) if piece)
        return out

    def set(self, name: str, value: str) -> None:
        """Replace every line of a header field with one, where the first was (else at the end)."""
        entry = _entry(name, value)
        positions = self._positions(entry[0])
        if not positions:
            self._entries.append(entry)
        else:
            self._entries[positions[0]] = entry
            for i in reversed(positions[1:]):
                del self._entries[i]
        self._changed(entry[0])

    def add(self, name: str, value: str, first: bool = False) -> None:
        """Add a header line: after the others (default), or before the first of its name (a Via)."""
        entry = _entry(name, value)
        if first:
            positions = self._positions(entry[0])
            self._entries.insert(positions[0] if positions else 0, entry)
        else:
            self._entries.append(entry)
        self._changed(entry[0])

    def remove(self, name: str) -> int:
        """Remove every line of a header field; the number removed."""
        key = header_key(name)
        before = len(self._entries)
        self._entries = [entry for entry in self._entries if entry[0] != key]
        removed = before - len(self._entries)
        if removed:
            self._changed(key)
        return removed

    def pop_via(self) -> Via | None:
        """Remove and return the topmost Via value (§16.7 step 3), even from a comma-joined line."""
        positions = self._positions("via")
        if not positions:
            return None
        top = self.top_via
        i = positions[0]
        rest = split_list(self._entries[i][2], "Via")[1:]
        if rest:
            self._entries[i] = ("via", "Via", ", ".join(rest))
        else:
            del self._entries[i]
        self._changed("via")
        return top

    @property
    def body(self) -> bytes:
        return self._body

    @body.setter
    def body(self, value: bytes) -> None:
        """A new body; an existing Content-Length is updated to match (and written at the end if none)."""
        self._body = bytes(value)
        positions = self._positions("content-length")
        if positions:
            key, name, _ = self._entries[positions[0]]
            self._entries[positions[0]] = (key, name, str(len(self._body)))
        self._changed("content-length")

    # --- typed accessors (parsed on first use, cached) ----------------------------------------------

    def _parsed(self, key: str, parse: Callable[[str], _T], what: str) -> _T:
        cache = self._cache
        value = cache.get(key, _MISSING)
        if value is not _MISSING:
            return value  # type: ignore[return-value]
        positions = self._positions(key)
        if not positions:
            raise SipParseError(400, f"Bad Request - Missing {what}")
        try:
            value = parse(self._entries[positions[0]][2])
        except SipParseError as exc:
            raise SipParseError(exc.status, _reason_for(exc, what), detail=exc.detail) from None
        cache[key] = value
        return value

    # These four are read several times per request (validation, transaction matching, the TU):
    # a cached value is returned without the call into _parsed.

    @property
    def call_id(self) -> str:
        value = self._cache.get("call-id")
        return value if value is not None else self._parsed("call-id", _parse_call_id, "Call-ID")  # type: ignore[return-value]

    @property
    def cseq(self) -> CSeq:
        """``(sequence number, method)``; raises `SipParseError` if absent or malformed."""
        value = self._cache.get("cseq")
        return value if value is not None else self._parsed("cseq", parse_cseq, "CSeq")  # type: ignore[return-value]

    @property
    def from_(self) -> NameAddr:
        value = self._cache.get("from")
        return value if value is not None else self._parsed("from", _parse_from, "From")  # type: ignore[return-value]

    @property
    def to(self) -> NameAddr:
        value = self._cache.get("to")
        return value if value is not None else self._parsed("to", _parse_to, "To")  # type: ignore[return-value]

    def _vias(self) -> list[Via]:
        cache = self._cache
        if "via" not in cache:
            vias: list[Via] = []
            for value in self._values("via"):
                vias.extend(parse_vias(value))
            cache["via"] = vias
        return cache["via"]  # type: ignore[return-value]

    @property
    def vias(self) -> list[Via]:
        """Every Via value, top first, across lines and commas; [] if there is none."""
        return list(self._vias())

    @property
    def top_via(self) -> Via | None:
        vias = self._cache.get("via")
        if vias is None:
            vias = self._vias()
        return vias[0] if vias else None  # type: ignore[index]

    def _name_addr_list(self, key: str, what: str) -> list[NameAddr]:
        cache = self._cache
        if key not in cache:
            values: list[NameAddr] = []
            for value in self._values(key):
                if key == "contact" and value.strip(_WS) == "*":
                    continue
                values.extend(parse_name_addrs(value, what))
            cache[key] = values
        cached: list[NameAddr] = cache[key]  # type: ignore[assignment]
        return list(cached)

    @property
    def contact(self) -> list[NameAddr]:
        """Every Contact value in order; a ``*`` (§10.2.2) is not in the list, see `contact_is_wildcard`."""
        return self._name_addr_list("contact", "Contact")

    @property
    def contact_is_wildcard(self) -> bool:
        entries = self._entries
        for i in self._positions("contact"):
            if entries[i][2].strip(_WS) == "*":
                return True
        return False

    @property
    def route(self) -> list[NameAddr]:
        return self._name_addr_list("route", "Route")

    @property
    def record_route(self) -> list[NameAddr]:
        return self._name_addr_list("record-route", "Record-Route")

    def _optional_int(self, key: str, what: str, maximum: int) -> int | None:
        cache = self._cache
        if key not in cache:
            positions = self._positions(key)
            cache[key] = _parse_int(self._entries[positions[0]][2], what, maximum) if positions else None
        return cache[key]  # type: ignore[return-value]

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (§20.22, 0-255), None if absent (RFC 2543 peers omit it)."""
        return self._optional_int("max-forwards", "Max-Forwards", 255)

    @property
    def expires(self) -> int | None:
        """Expires in seconds (§20.19, up to 2**32-1), None if absent."""
        return self._optional_int("expires", "Expires", 2**32 - 1)

    @property
    def content_length(self) -> int | None:
        return self._optional_int("content-length", "Content-Length", 2**63)

    @property
    def media_type(self) -> MediaType | None:
        cache = self._cache
        if "content-type" not in cache:
            value = self.get("content-type")
            try:
                cache["content-type"] = None if value is None else parse_media_type(value)
            except SipParseError as exc:
                raise SipParseError(400, _reason_for(exc, "Content-Type"), detail=exc.detail) from None
        return cache["content-type"]  # type: ignore[return-value]

    @property
    def content_type(self) -> str | None:
        """The body's media type as ``type/subtype`` in lowercase (parameters in `media_type`)."""
        media = self.media_type
        return None if media is None else media.essence

    def parts(self) -> list[BodyPart]:
        """The parts of a multipart body (RFC 2046 §5.1); [] when the body is not multipart."""
        media = self.media_type
        if media is None or media.type.lower() != "multipart":
            return []
        boundary = media.param("boundary")
        if not boundary:
            raise SipParseError(400, "Bad Request - Malformed Multipart Body", detail="no boundary")
        return parse_multipart(self._body, boundary)

    # --- serialisation ------------------------------------------------------------------------------

    def _start_line(self) -> str:
        raise NotImplementedError

    def copy(self) -> BaseMessage:
        """An independent copy (header list and cache not shared) that still has the received bytes."""
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The message on the wire: the received bytes if unchanged, else rebuilt (§7)."""
        if self._raw is not None:
            return self._raw
        lines = [self._start_line()]
        length = str(len(self._body))
        wrote_length = False
        for key, name, value in self._entries:
            if key == "content-length":
                if wrote_length:
                    continue
                value, wrote_length = length, True
            lines.append(f"{name}: {value}")
        if not wrote_length:
            lines.append(f"Content-Length: {length}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self._body

    def __bytes__(self) -> bytes:
        return self.to_bytes()


class Request(BaseMessage):
    """A SIP request. `uri` may be given as text or as a parsed URI."""

    __slots__ = ("_uri", "_uri_text", "method")

    def __init__(
        self,
        method: str,
        uri: Uri | str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        version: str = SIP_VERSION,
    ):
        super().__init__(headers, body, version=version)
        self.method = method
        self._uri: Uri | None = parse_uri(uri) if isinstance(uri, str) else uri
        self._uri_text = str(uri)

    @property
    def uri(self) -> Uri:
        """The Request-URI; raises `SipParseError` only for a message kept as a failed parse's context."""
        if self._uri is None:
            raise SipParseError(400, "Bad Request - Malformed Request-URI", detail=self._uri_text[:120])
        return self._uri

    @uri.setter
    def uri(self, value: Uri | str) -> None:
        self._uri = parse_uri(value) if isinstance(value, str) else value
        self._uri_text = str(value)
        self._raw = None

    def _start_line(self) -> str:
        return f"{self.method} {self._uri if self._uri is not None else self._uri_text} {self.version}"

    def copy(self) -> Request:
        clone = Request.__new__(Request)
        _copy_into(self, clone)
        clone.method, clone._uri, clone._uri_text = self.method, self._uri, self._uri_text
        return clone

    def __repr__(self) -> str:
        return f"<Request {self.method} {self._uri_text}>"


class Response(BaseMessage):
    """A SIP response; the reason phrase defaults to the usual one for the status (§21)."""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        version: str = SIP_VERSION,
    ):
        super().__init__(headers, body, version=version)
        self.status = status
        self.reason = REASON_PHRASES.get(status, "") if reason is None else reason

    def _start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def copy(self) -> Response:
        clone = Response.__new__(Response)
        _copy_into(self, clone)
        clone.status, clone.reason = self.status, self.reason
        return clone

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


SipMessage: TypeAlias = Request | Response
"""A request or a response: ``isinstance(msg, Response)`` narrows the rest to `Request`."""


def _copy_into(source: BaseMessage, clone: BaseMessage) -> None:
    clone._entries = list(source._entries)
    clone._index = None
    clone._cache = {}
    clone._raw = source._raw
    clone._body = source._body
    clone.version = source.version


def _entry(name: str, value: str) -> tuple[str, str, str]:
    """A header line set in code; a name that is no token or a CR/LF in the value would forge lines."""
    known = known_name(name)  # known names are tokens
    if (known is None and not is_token(name)) or "\r" in value or "\n" in value:
        raise ValueError(f"not a header field: {name!r}: {value!r}")
    if known is None:
        return name.lower(), name, value
    return known[0], known[1], value


def _reason_for(exc: SipParseError, what: str) -> str:
    """Re-aim a low-level reason at the header it came from ("Malformed Quoted String" -> "... To")."""
    if exc.reason.startswith("Bad Request - Invalid"):
        return exc.reason
    return f"Bad Request - Malformed {what}"


def _parse_from(value: str) -> NameAddr:
    return parse_name_addr(value, "From")


def _parse_to(value: str) -> NameAddr:
    return parse_name_addr(value, "To")


# callid = word [ "@" word ] (§25.1)
_CALL_ID = re.compile(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+(?:@[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+)?")


def _parse_call_id(value: str) -> str:
    value = value.strip(_WS)
    if _CALL_ID.fullmatch(value) is None:
        raise SipParseError(400, "Bad Request - Invalid Call-ID", detail=value[:120])
    return value


@lru_cache(maxsize=1024)  # Max-Forwards: 70, Expires: 3600, Content-Length: 0 on most requests
def _parse_int(value: str, what: str, maximum: int) -> int:
    number = bounded_int(value.strip(_WS), maximum)
    if number is None:
        raise SipParseError(400, f"Bad Request - Invalid {what}", detail=value[:40])
    return number


# --- parsing -----------------------------------------------------------------------------------------


def _split_header_lines(text: str, max_headers: int, what: str = "Header Field") -> list[tuple[str, str, str]]:
    """Header lines (CRLF-separated, no start line) -> ``(key, name, value)``, folds undone (§7.3.1)."""
    if not text:
        return []
    entries: list[tuple[str, str, str]] = []
    folds: dict[int, list[str]] = {}  # entry -> its raw value and continuation lines, joined once at the end
    raw = ""
    for line in text.split("\r\n"):
        first = line[:1]
        if first == " " or first == "\t":
            if not entries:
                raise SipParseError(400, f"Bad Request - Malformed {what}", detail="folded first line")
            folds.setdefault(len(entries) - 1, [raw]).append(line)  # many folds must not cost quadratic time
            continue
        name, colon, raw = line.partition(":")
        if not colon:
            raise SipParseError(400, f"Bad Request - Malformed {what}", detail=line[:80])
        known = _spelling(name)  # e.g. "Via": no lower(), no call
        if known is None:
            name = name.rstrip(_WS)
            known = known_name(name)
            if known is None:
                if not is_token(name):
                    raise SipParseError(400, f"Bad Request - Malformed {what}", detail=line[:80])
                known = (name.lower(), name)
        entries.append((known[0], known[1], raw.strip(_WS)))
    if len(entries) > max_headers:
        raise SipParseError(513, "Message Too Large", detail=f"more than {max_headers} header fields")
    for i, parts in folds.items():
        key, name, _ = entries[i]
        entries[i] = (key, name, "".join(parts).strip(_WS))
    return entries


class _Head(NamedTuple):
    message: SipMessage
    content_length: int | None
    error: SipParseError | None  # a start-line fault, raised once the message exists to answer it
    length_error: SipParseError | None  # Content-Length unusable: the framing is lost


def _parse_head(head: bytes, max_headers: int, max_uri: int) -> _Head:
    text = head.decode("utf-8", "surrogateescape")
    crlf = text.count("\r\n")
    if text.count("\n") != crlf or text.count("\r") != crlf:
        raise SipParseError(400, "Bad Request - Bare CR or LF in Header Section")
    first, _, rest = text.partition("\r\n")
    entries = _split_header_lines(rest, max_headers)

    error: SipParseError | None = None
    msg: SipMessage
    space = first.find(" ")
    if space > 0 and "/" in first[:space]:
        # Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2)
        parts = first.split(" ", 2)
        code = parts[1] if len(parts) > 1 else ""
        response = Response.__new__(Response)
        response.status = (bounded_int(code, 999) or 0) if len(code) == 3 else 0
        response.reason = parts[2] if len(parts) > 2 else ""
        response.version = parts[0]
        if not _VERSION.fullmatch(parts[0]):
            error = SipParseError(400, "Bad Request - Malformed Status-Line", detail=first[:120])
        elif not 100 <= response.status <= 699:
            error = SipParseError(400, "Bad Request - Invalid Status Code", detail=code[:20])
        msg = response
    else:
        # Request-Line = Method SP Request-URI SP SIP-Version CRLF (§7.1): single spaces, nothing else
        parts = first.split(" ")
        request = Request.__new__(Request)
        request.method = parts[0] if is_token(parts[0]) else ""
        request._uri, request._uri_text = None, parts[1] if len(parts) > 1 else ""
        request.version = parts[2] if len(parts) > 2 else SIP_VERSION
        if len(parts) != 3 or not request.method or not _VERSION.fullmatch(request.version):
            error = SipParseError(400, "Bad Request - Malformed Request-Line", detail=first[:120])
        elif len(request._uri_text) > max_uri:
            error = SipParseError(414, "Request-URI Too Long")
        else:
            try:
                request._uri = parse_uri(request._uri_text)
            except SipParseError:
                error = SipParseError(400, "Bad Request - Malformed Request-URI", detail=request._uri_text[:120])
        msg = request
    msg._entries = entries
    msg._index = None
    msg._cache = {}
    msg._raw = None
    msg._body = b""

    lengths = [entries[i][2] for i in msg._positions("content-length")]  # the index is needed soon anyway
    content_length: int | None = None
    length_error: SipParseError | None = None
    if lengths:
        if len(lengths) > 1:  # RFC 4475 §3.3.9: the framing is ambiguous
            length_error = SipParseError(400, "Bad Request - Multiple Content-Length Values")
        else:
            content_length = bounded_int(lengths[0], 2**62)
            if content_length is None:  # RFC 4475 §3.1.2.3: e.g. -999
                length_error = SipParseError(400, "Bad Request - Invalid Content-Length", detail=lengths[0][:40])
    return _Head(msg, content_length, error, length_error)


def _raise_with(head: _Head, error: SipParseError) -> SipParseError:
    return _error(error.status, error.reason, head.message, error.detail)


def parse_message(
    data: bytes,
    *,
    max_message: int = DEFAULT_MAX_MESSAGE,
    max_headers: int = DEFAULT_MAX_HEADERS,
    max_uri: int = DEFAULT_MAX_URI,
) -> SipMessage:
    """Parse one datagram (§18.3): a body by Content-Length, trailing octets ignored (RFC 4475 §3.1.1.8).

    Without Content-Length the body is the rest of the datagram. A datagram that ends right after a
    header line is taken as a header section without body. Raises `SipParseError`.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    start, size = 0, len(data)
    while data.startswith(b"\r\n", start):  # §7.5: CRLFs before the start line are ignored
        start += 2
    if size - start > max_message:
        raise SipParseError(513, "Message Too Large")
    if start >= size:
        raise SipParseError(400, "Bad Request - Empty Message")
    end = data.find(b"\r\n\r\n", start)
    if end >= 0:
        body_start = end + 4
    elif data.endswith(b"\r\n"):
        end, body_start = size - 2, size
    else:
        raise SipParseError(400, "Bad Request - Incomplete Header Section")
    head = _parse_head(data[start:end], max_headers, max_uri)
    for error in (head.error, head.length_error):
        if error is not None:
            raise _raise_with(head, error)
    msg = head.message
    if head.content_length is None:
        body_end = size
    else:
        body_end = body_start + head.content_length
        if body_end > size:  # RFC 4475 §3.1.2.2
            raise _error(400, "Bad Request - Content-Length Larger Than Message", msg)
    msg._body = data[body_start:body_end]
    msg._raw = data[start:body_end]
    return msg


class StreamFramer:
    """Cuts a TCP/TLS byte stream into messages by Content-Length (§18.3), skipping keep-alives.

    Two ways to drive it. `feed` appends bytes and returns the messages they complete. Or, in the
    style of h11, `receive_data` then `next_message` until it returns None, which meets every fault
    exactly where it is in the stream.

    A fault that loses the framing (no or an unreadable Content-Length, a head or body over the
    limits, a header section that cannot be split) raises `SipParseError` and leaves the framer
    `broken`: the connection must be closed, after answering when the error `can_respond`. A
    well-framed message that does not parse raises too, but its bytes are consumed and the stream
    goes on. When `feed` meets a fault after completing other messages it returns those and keeps
    the fault in `error`, raised by the next `feed`; a caller should look at `error` after `feed`.
    """

    def __init__(
        self,
        *,
        max_message: int = DEFAULT_MAX_MESSAGE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_uri: int = DEFAULT_MAX_URI,
    ):
        self.max_message = max_message
        self.max_headers = max_headers
        self.max_uri = max_uri
        self.keepalives = 0  # CRLFCRLF pings seen between messages (RFC 5626 §3.5.1)
        self.broken = False
        self.error: SipParseError | None = None
        self._buffer = bytearray()
        self._scanned = 0
        self._head: tuple[int, _Head] | None = None

    def feed(self, data: bytes) -> list[SipMessage]:
        """Append `data`; the messages it completes, in order."""
        self.receive_data(data)
        if self.error is not None:
            error = self.error
            if not self.broken:
                self.error = None
            raise error
        out: list[SipMessage] = []
        while True:
            try:
                msg = self.next_message()
            except SipParseError as exc:
                if not out:
                    if not self.broken:
                        self.error = None
                    raise
                self.error = exc
                return out
            if msg is None:
                return out
            out.append(msg)

    def receive_data(self, data: bytes) -> None:
        if not self.broken:
            self._buffer += data

    def next_message(self) -> SipMessage | None:
        """The next complete message, or None until more bytes arrive; raises `SipParseError`."""
        if self.broken:
            assert self.error is not None
            raise self.error
        buf = self._buffer
        skip = 0
        while buf.startswith(b"\r\n", skip):  # §7.5; RFC 5626 §3.5.1 ping (CRLFCRLF) and pong (CRLF)
            skip += 2
        if skip:
            self.keepalives += skip // 4
            del buf[:skip]
            self._scanned = 0
        if not buf:
            return None
        if self._head is None:
            end = buf.find(b"\r\n\r\n", max(0, self._scanned - 3))
            if end < 0:
                self._scanned = len(buf)
                if len(buf) > self.max_message:
                    raise self._fatal(SipParseError(513, "Message Too Large"))
                return None
            try:
                head = _parse_head(bytes(buf[:end]), self.max_headers, self.max_uri)
            except SipParseError as exc:
                raise self._fatal(exc) from None
            if head.length_error is not None:
                raise self._fatal(_raise_with(head, head.length_error))
            if head.content_length is None:  # §18.3: MUST be present on a stream
                raise self._fatal(_error(400, "Bad Request - Missing Content-Length", head.message))
            if end + 4 + head.content_length > self.max_message:
                raise self._fatal(_error(413, "Request Entity Too Large", head.message))
            self._head = (end, head)
        end, head = self._head
        total = end + 4 + (head.content_length or 0)
        if len(buf) < total:
            return None
        self._head = None
        self._scanned = 0
        msg = head.message
        msg._body = bytes(buf[end + 4 : total])
        msg._raw = bytes(buf[:total])
        del buf[:total]
        if head.error is not None:
            raise _raise_with(head, head.error)
        return msg

    def _fatal(self, error: SipParseError) -> SipParseError:
        self.broken = True
        self.error = error
        self._buffer.clear()
        return error


# --- multipart (RFC 2046 §5.1) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BodyPart:
    """One part of a multipart body: its header fields (unfolded) and its octets."""

    headers: tuple[Header, ...]
    body: bytes

    def get(self, name: str) -> str | None:
        key = header_key(name)
        for header in self.headers:
            if header_key(header.name) == key:
                return header.value
        return None

    @property
    def media_type(self) -> MediaType | None:
        value = self.get("Content-Type")
        return None if value is None else parse_media_type(value)

    @property
    def content_type(self) -> str | None:
        media = self.media_type
        return None if media is None else media.essence


def _bad_multipart(detail: str) -> SipParseError:
    return SipParseError(400, "Bad Request - Malformed Multipart Body", detail=detail)


def parse_multipart(body: bytes, boundary: str) -> list[BodyPart]:
    """Split a multipart body. The CRLF before each delimiter belongs to the delimiter (§5.1.1)."""
    delimiter = b"--" + boundary.encode("utf-8", "surrogateescape")
    if body.startswith(delimiter):
        pos = 0
    else:
        pos = body.find(b"\r\n" + delimiter)
        if pos < 0:
            raise _bad_multipart("no boundary")
        pos += 2  # the preamble is ignored
    parts: list[BodyPart] = []
    while True:
        after = pos + len(delimiter)
        if body.startswith(b"--", after):
            return parts  # close-delimiter; the epilogue is ignored
        eol = body.find(b"\r\n", after)
        if eol < 0 or body[after:eol].strip(b" \t"):
            raise _bad_multipart("bad delimiter line")
        start = eol + 2
        nxt = body.find(b"\r\n" + delimiter, eol)  # from eol: a part may be empty
        if nxt < 0:
            raise _bad_multipart("no close-delimiter")
        parts.append(_parse_part(body[start:nxt] if nxt > eol else b""))
        pos = nxt + 2


def _parse_part(part: bytes) -> BodyPart:
    if part.startswith(b"\r\n"):
        return BodyPart((), part[2:])
    end = part.find(b"\r\n\r\n")
    head, content = (part, b"") if end < 0 else (part[:end], part[end + 4 :])
    try:
        entries = _split_header_lines(head.decode("utf-8", "surrogateescape"), DEFAULT_MAX_HEADERS, "Body Part")
    except SipParseError:
        raise _bad_multipart("bad part header") from None
    return BodyPart(tuple(Header(name, value) for _, name, value in entries), content)


# --- validation and responses ----------------------------------------------------------------------------

# Header fields a request or response must carry exactly once (§8.1.1, §20); Via may repeat.
_MANDATORY = (("call-id", "Call-ID"), ("cseq", "CSeq"), ("from", "From"), ("to", "To"), ("via", "Via"))
_MANDATORY_KEYS = frozenset(key for key, _ in _MANDATORY)
_SINGLE = (
    ("call-id", "Call-ID"),
    ("cseq", "CSeq"),
    ("from", "From"),
    ("to", "To"),
    ("max-forwards", "Max-Forwards"),
    ("content-type", "Content-Type"),
    ("expires", "Expires"),
    ("date", "Date"),
)


# What `validate` parses, in this order, when present: (name for the reason, key, accessor).
_CHECKS: tuple[tuple[str, str, Callable[[BaseMessage], object]], ...] = (
    ("Via", "via", BaseMessage._vias),
    ("From", "from", BaseMessage.from_.fget),  # type: ignore[attr-defined]
    ("To", "to", BaseMessage.to.fget),  # type: ignore[attr-defined]
    ("Call-ID", "call-id", BaseMessage.call_id.fget),  # type: ignore[attr-defined]
    ("CSeq", "cseq", BaseMessage.cseq.fget),  # type: ignore[attr-defined]
    ("Max-Forwards", "max-forwards", BaseMessage.max_forwards.fget),  # type: ignore[attr-defined]
    ("Expires", "expires", BaseMessage.expires.fget),  # type: ignore[attr-defined]
    ("Contact", "contact", BaseMessage.contact.fget),  # type: ignore[attr-defined]
    ("Record-Route", "record-route", BaseMessage.record_route.fget),  # type: ignore[attr-defined]
    ("Route", "route", BaseMessage.route.fget),  # type: ignore[attr-defined]
    ("Content-Type", "content-type", BaseMessage.media_type.fget),  # type: ignore[attr-defined]
)


def validate(
    msg: SipMessage,
    *,
    registrar: bool = False,
    schemes: frozenset[str] = SUPPORTED_SCHEMES,
) -> None:
    """The checks a server makes before accepting a message (§8.2, §16.3, §18.1.2); raises `SipParseError`.

    With `registrar`, a REGISTER must also name a SIP or SIPS address-of-record in To (§10.3) and
    use ``Contact: *`` only alone and with Expires 0 (§10.3 step 6). Max-Forwards 0 is valid here:
    answering 483 belongs to the proxy (§16.3 step 3, RFC 4475 §3.3.11).
    """

    def fail(status: int, reason: str, detail: str = "") -> SipParseError:
        return _error(status, reason, msg, detail)

    is_request = isinstance(msg, Request)
    if msg.version.upper() != SIP_VERSION:  # §8.2.2 / RFC 4475 §3.1.2.16
        raise fail(505, "Version Not Supported") if is_request else fail(400, "Bad Request - Unsupported SIP Version")
    if isinstance(msg, Request):
        try:
            uri = msg.uri
        except SipParseError as exc:
            raise fail(exc.status, exc.reason, exc.detail) from None
        if str(uri.scheme).lower() not in schemes:  # §8.2.2.1, RFC 4475 §3.3.2
            raise fail(416, "Unsupported URI Scheme", str(uri)[:120])
        if isinstance(uri, SipUri) and uri.headers:  # §19.1.1 Table 1, RFC 4475 §3.1.2.11
            raise fail(400, "Bad Request - Headers Not Allowed in Request-URI")

    index = msg._header_index()
    if not _MANDATORY_KEYS <= index.keys():  # RFC 4475 §3.3.1
        missing = [name for key, name in _MANDATORY if key not in index]
        raise fail(400, "Bad Request - Missing " + ", ".join(missing))
    if len(index) < len(msg._entries):  # some field has several lines: none of these may (RFC 4475 §3.3.8)
        repeated = [name for key, name in _SINGLE if len(index.get(key, ())) > 1]
        if repeated:
            raise fail(400, "Bad Request - Multiple " + ", ".join(repeated) + " Values")

    for what, key, check in _CHECKS:
        if key not in index:
            continue  # absent: nothing to parse (the mandatory ones were checked above)
        try:
            check(msg)
        except SipParseError as exc:
            raise fail(exc.status, _reason_for(exc, what), exc.detail) from None
    date = msg.get("date") if "date" in index else None
    if date is not None:
        try:
            parse_date(date)
        except SipParseError as exc:  # RFC 4475 §3.1.2.12
            raise fail(exc.status, exc.reason, exc.detail) from None
    length = msg.content_length
    if length is not None and length != len(msg.body):
        raise fail(400, "Bad Request - Invalid Content-Length")
    if not isinstance(msg, Request):
        return

    if msg.cseq.method != msg.method:  # §8.1.1.5, RFC 4475 §3.1.2.17-18
        raise fail(400, "Bad Request - CSeq Method Does Not Match Request Method")
    top = msg.top_via
    if top is not None and top.branch == MAGIC_COOKIE:  # RFC 4475 §3.2.1
        raise fail(400, "Bad Request - Missing Transaction Identifier")
    if registrar and msg.method == "REGISTER":
        if not isinstance(msg.to.uri, SipUri):  # §10.2, RFC 4475 §3.3.4
            raise fail(400, "Bad Request - To Is Not a SIP or SIPS URI")
        if msg.contact_is_wildcard and (msg.contact or len(msg.get_all("contact")) > 1 or msg.expires != 0):
            raise fail(400, "Bad Request - Invalid Wildcard Contact")


def build_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """A response to `request` (§8.2.6.1-2): Via lines, From, To, Call-ID and CSeq copied as received.

    A To without a tag gets `to_tag` (or a fresh random one), except on 100 Trying, which also
    copies Timestamp. Works on a request that failed to parse, copying whatever is there.
    """
    entries = request._entries
    copied = [entries[i] for i in request._positions("via")]  # checked when parsed: no need to again
    for key in ("from", "to", "call-id", "cseq"):
        positions = request._positions(key)
        if not positions:
            continue
        entry = entries[positions[0]]
        if key == "to" and status != 100:
            try:
                has_tag = request.to.tag is not None
            except SipParseError:
                has_tag = True  # leave a malformed To as it came
            if not has_tag:
                entry = (entry[0], entry[1], f"{entry[2]};tag={to_tag or secrets.token_hex(8)}")
        copied.append(entry)
    if status == 100:
        copied += [entries[i] for i in request._positions("timestamp")][:1]
    response = Response(status, reason, headers, body)
    response._entries[:0] = copied
    return response


def error_response(error: SipParseError) -> Response | None:
    """The response that answers a refused request, or None when none can be sent (see `can_respond`)."""
    if not error.can_respond or not isinstance(error.message, Request):
        return None
    return build_response(error.message, error.status, error.reason)
