"""SDP parse/build and the offer/answer model, sans-I/O.

Theory of operation
-------------------
:func:`parse` turns a body into a :class:`SessionDescription`: a session part and a list of
:class:`Media` sections, each keeping its ``a=`` lines as an ordered list of generic
:class:`Attribute` so anything we do not understand goes back out untouched. The attributes the
media layer needs (rtpmap, fmtp, ptime, direction, rtcp, rtcp-mux, crypto) are checked when parsed
and read through typed accessors. ``str(sdp)`` writes CRLF lines in RFC 8866 §5 order.

Offer/answer (RFC 3264) is a pure function of two descriptions and our :class:`LocalMedia`.
:func:`answer` accepts the first audio stream it can do, keeps the offerer's payload type numbers,
mirrors the direction (§6.1), and rejects every other stream with port 0 while keeping the offer's
m-line count and order (§6). :func:`process_answer` is the offerer's side. Both return a
:class:`Negotiated`: where to send, with which codec and payload types, in which direction.
:func:`build_offer` and :func:`answer` take the previous description we sent in the session so
the o= line stays put and its version grows by one exactly when something changed (§8).

References: RFC 8866 (SDP; obsoletes RFC 4566, example §5), RFC 3264 (offer/answer; §5 offer,
§6 answer, §8 modification, §8.4 hold, §10 examples), RFC 4317 (examples), RFC 3551 §6 (static
payload types), RFC 4733 §7.1.1 (telephone-event), RFC 3605 (a=rtcp), RFC 5761 (rtcp-mux),
RFC 4568 §9.1 (a=crypto).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property

__all__ = [
    "PCMA",
    "PCMU",
    "STATIC_PAYLOAD_TYPES",
    "TELEPHONE_EVENT",
    "Attribute",
    "Bandwidth",
    "Codec",
    "Connection",
    "Crypto",
    "Direction",
    "KeyParam",
    "LocalMedia",
    "Media",
    "Negotiated",
    "NegotiationError",
    "Origin",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "Timing",
    "answer",
    "build_offer",
    "parse",
    "process_answer",
]


class SdpError(ValueError):
    """Malformed SDP; names the line when it came from :func:`parse`."""

    def __init__(self, message: str, line_no: int | None = None, line: str | None = None) -> None:
        self.reason, self.line_no, self.line = message, line_no, line
        super().__init__(f"line {line_no} {line!r}: {message}" if line_no is not None else message)


class NegotiationError(SdpError):
    """Offer and answer share no usable stream: answer the INVITE with 488."""


_DIGITS = re.compile(r"[0-9]+")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+")  # RFC 8866 §9 token-char


def _int(text: str, what: str, lo: int = 0, hi: int | None = None) -> int:
    """An ASCII decimal in [lo, hi]; ``int()`` alone would take '٣' and ' 3'."""
    if not _DIGITS.fullmatch(text):
        raise SdpError(f"{what} is not a number: {text!r}")
    value = int(text)
    if value < lo or (hi is not None and value > hi):
        raise SdpError(f"{what} out of range: {value}")
    return value


def _fields(value: str, what: str, n: int) -> list[str]:
    parts = value.split()
    if len(parts) != n:
        raise SdpError(f"{what} needs {n} fields, got {len(parts)}")
    return parts


class Direction(StrEnum):
    """RFC 3264 §5.1 stream direction, from the point of view of the description's author."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @classmethod
    def of(cls, sends: bool, receives: bool) -> Direction:
        return _DIRECTIONS[(sends, receives)]

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    def held(self) -> Direction:
        """The direction to offer when putting the peer on hold (RFC 3264 §8.4)."""
        return Direction.of(self.sends, False)


_DIRECTION_NAMES = frozenset(d.value for d in Direction)
_DIRECTIONS = {
    (True, True): Direction.SENDRECV,
    (True, False): Direction.SENDONLY,
    (False, True): Direction.RECVONLY,
    (False, False): Direction.INACTIVE,
}


# --------------------------------------------------------------------------------------- line types


@dataclass(frozen=True)
class Origin:
    """o= (RFC 8866 §5.2)."""

    username: str
    session_id: int
    version: int
    nettype: str
    addrtype: str
    address: str

    @classmethod
    def parse(cls, value: str) -> Origin:
        user, sid, ver, net, addrtype, addr = _fields(value, "o=", 6)
        return cls(user, _int(sid, "sess-id"), _int(ver, "sess-version"), net, addrtype, addr)

    def __str__(self) -> str:
        return f"{self.username} {self.session_id} {self.version} {self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True)
class Connection:
    """c= (RFC 8866 §5.7); ``ttl`` only for IP4 multicast, ``count`` for multicast groups."""

    nettype: str
    addrtype: str
    address: str
    ttl: int | None = None
    count: int | None = None

    @classmethod
    def parse(cls, value: str) -> Connection:
        net, addrtype, addr = _fields(value, "c=", 3)
        if addrtype not in ("IP4", "IP6") or "/" not in addr:
            return cls(net, addrtype, addr)
        host, *suffix = addr.split("/")
        if addrtype == "IP4" and len(suffix) <= 2:
            nums = [_int(s, "c= multicast suffix") for s in suffix]
            return cls(net, addrtype, host, nums[0], nums[1] if len(nums) > 1 else None)
        if addrtype == "IP6" and len(suffix) == 1:
            return cls(net, addrtype, host, None, _int(suffix[0], "c= address count"))
        raise SdpError(f"bad connection address {addr!r}")

    def __str__(self) -> str:
        suffix = "".join(f"/{n}" for n in (self.ttl, self.count) if n is not None)
        return f"{self.nettype} {self.addrtype} {self.address}{suffix}"

    @property
    def is_hold(self) -> bool:
        """RFC 2543 hold: c=0.0.0.0 (RFC 3264 §8.4 says answerers must still understand it)."""
        return self.address == "0.0.0.0"


@dataclass(frozen=True)
class Bandwidth:
    """b= (RFC 8866 §5.8), e.g. ``AS:64``."""

    type: str
    value: int

    @classmethod
    def parse(cls, value: str) -> Bandwidth:
        kind, sep, amount = value.partition(":")
        if not sep or not _TOKEN.fullmatch(kind):
            raise SdpError("b= must be <bwtype>:<bandwidth>")
        return cls(kind, _int(amount, "bandwidth"))

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


@dataclass
class Timing:
    """t= with its r= lines kept verbatim (RFC 8866 §5.9, §5.10)."""

    start: int = 0
    stop: int = 0
    repeats: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Attribute:
    """a=name or a=name:value (RFC 8866 §5.13); unknown ones round-trip as they came."""

    name: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Attribute:
        name, sep, value = text.partition(":")
        if not _TOKEN.fullmatch(name):
            raise SdpError(f"bad attribute name {name!r}")
        attr = cls(name, value if sep else None)
        check = _ATTRIBUTE_CHECKS.get(name)
        if check is not None:
            check(attr.value or "")
        return attr

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True)
class RtpMap:
    """a=rtpmap:<pt> <encoding>/<clock>[/<channels>] (RFC 8866 §6.6)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse(cls, value: str) -> RtpMap:
        pt, sep, rest = value.partition(" ")
        parts = rest.strip().split("/")
        if not sep or len(parts) not in (2, 3) or not parts[0]:
            raise SdpError("rtpmap must be <pt> <encoding>/<clock rate>[/<channels>]")
        channels = _int(parts[2], "rtpmap channels", 1) if len(parts) == 3 else None
        return cls(_int(pt, "payload type", 0, 127), parts[0], _int(parts[1], "clock rate", 1), channels)

    def __str__(self) -> str:
        tail = f"/{self.channels}" if self.channels is not None else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}"


@dataclass(frozen=True)
class KeyParam:
    """One RFC 4568 §9.1 key-param; for ``inline`` the key is base64 key‖salt."""

    method: str
    key: str
    lifetime: str | None = None  # "2^20" or a decimal
    mki: str | None = None  # "<value>:<length>"

    @classmethod
    def parse(cls, text: str) -> KeyParam:
        method, sep, info = text.partition(":")
        if not sep or not method or not info:
            raise SdpError(f"bad crypto key-param {text!r}")
        if method != "inline":
            return cls(method, info)
        key, *rest = info.split("|")
        lifetime = mki = None
        for part in rest:
            if ":" in part:
                mki = part
            else:
                lifetime = part
        if not key or len(rest) > 2:
            raise SdpError(f"bad inline key {info!r}")
        return cls(method, key, lifetime, mki)

    def __str__(self) -> str:
        extra = "".join(f"|{p}" for p in (self.lifetime, self.mki) if p is not None)
        return f"{self.method}:{self.key}{extra}"


@dataclass(frozen=True)
class Crypto:
    """a=crypto:<tag> <suite> <key-params> [<session-params>] (RFC 4568 §9.1), for the SRTP layer."""

    tag: int
    suite: str
    key_params: tuple[KeyParam, ...]
    session_params: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str) -> Crypto:
        parts = value.split()
        if len(parts) < 3:
            raise SdpError("crypto must be <tag> <suite> <key-params> [<session-params>]")
        keys = tuple(KeyParam.parse(k) for k in parts[2].split(";"))
        return cls(_int(parts[0], "crypto tag", 0, 999_999_999), parts[1], keys, tuple(parts[3:]))

    def __str__(self) -> str:
        text = f"{self.tag} {self.suite} {';'.join(map(str, self.key_params))}"
        return " ".join([text, *self.session_params])


def _check_fmtp(value: str) -> None:
    fmt, sep, _ = value.partition(" ")
    if not sep or not fmt:
        raise SdpError("fmtp must be <format> <parameters>")


def _check_rtcp(value: str) -> None:
    parts = value.split()
    if len(parts) not in (1, 4):
        raise SdpError("rtcp must be <port> [<nettype> <addrtype> <address>]")
    _int(parts[0], "rtcp port", 0, 65535)


_ATTRIBUTE_CHECKS: dict[str, Callable[[str], object]] = {
    "rtpmap": RtpMap.parse,
    "fmtp": _check_fmtp,
    "ptime": lambda v: _int(v, "ptime", 1),
    "maxptime": lambda v: _int(v, "maxptime", 1),
    "rtcp": _check_rtcp,
    "crypto": Crypto.parse,
}


# --------------------------------------------------------------------------------------------- codecs


@dataclass(frozen=True)
class Codec:
    """An RTP payload format: what we can do (no ``payload_type``) or what was agreed (with one)."""

    name: str
    clock_rate: int
    channels: int = 1
    payload_type: int | None = None
    fmtp: str | None = None

    @cached_property
    def format_key(self) -> tuple[str, int, int]:
        """Encoding (any case), clock and channels: what RFC 3264 §6.1 matches on, never the number."""
        return (self.name.lower(), self.clock_rate, self.channels)

    def same_format(self, other: Codec) -> bool:
        return self.format_key == other.format_key

    @property
    def is_telephone_event(self) -> bool:
        return self.format_key[0] == "telephone-event"

    def with_number(self, payload_type: int | None) -> Codec:
        """This codec under another payload type (`dataclasses.replace` is ten times slower, and an
        offer/answer makes dozens of these per call)."""
        return Codec(self.name, self.clock_rate, self.channels, payload_type, self.fmtp)

    def with_fmtp(self, fmtp: str | None) -> Codec:
        return Codec(self.name, self.clock_rate, self.channels, self.payload_type, fmtp)


# RFC 3551 §6 static audio payload types. G722's RTP clock is 8000 though it samples at 16 kHz.
STATIC_PAYLOAD_TYPES: dict[int, Codec] = {
    pt: Codec(name, 8000, payload_type=pt)
    for pt, name in ((0, "PCMU"), (3, "GSM"), (4, "G723"), (8, "PCMA"), (9, "G722"), (13, "CN"), (18, "G729"))
}
_STATIC_BY_FORMAT = {c.format_key: pt for pt, c in reversed(STATIC_PAYLOAD_TYPES.items())}
PCMU = Codec("PCMU", 8000)
PCMA = Codec("PCMA", 8000)
TELEPHONE_EVENT = "telephone-event"
_DTMF_EVENTS = "0-16"  # RFC 4733 §7.1.1: DTMF digits 0-9, *, #, A-D and flash


# --------------------------------------------------------------------------------------------- model


@dataclass
class Media:
    """One m= section (RFC 8866 §5.14) with its own i=, c=, b=, k= and a= lines."""

    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    information: str | None = None
    connections: list[Connection] = field(default_factory=list)
    bandwidths: list[Bandwidth] = field(default_factory=list)
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)

    @classmethod
    def parse(cls, value: str) -> Media:
        parts = value.split()
        if len(parts) < 4:
            raise SdpError("m= must be <media> <port>[/<count>] <proto> <fmt> ...")
        port_text, _, count = parts[1].partition("/")
        media = cls(parts[0], _int(port_text, "port", 0, 65535), parts[2], parts[3:])
        if count:
            media.port_count = _int(count, "port count", 1)
        if media.is_rtp:
            for fmt in media.formats:
                _int(fmt, "RTP payload type", 0, 127)
        return media

    def __str__(self) -> str:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        return " ".join([self.media, port, self.proto, *self.formats])

    @property
    def is_rtp(self) -> bool:
        return self.proto.startswith("RTP/") or "/RTP/" in self.proto

    def values(self, name: str) -> list[str]:
        return [a.value or "" for a in self.attributes if a.name == name]

    def value(self, name: str) -> str | None:
        found = self.values(name)
        return found[0] if found else None

    def has(self, name: str) -> bool:
        return any(a.name == name for a in self.attributes)

    @property
    def connection(self) -> Connection | None:
        return self.connections[0] if self.connections else None

    @property
    def direction(self) -> Direction | None:
        """The media-level direction attribute, if any (RFC 3264 §5.1)."""
        return _direction_of(self.attributes)

    @property
    def ptime(self) -> int | None:
        ptime = self.value("ptime")
        return int(ptime) if ptime is not None else None

    @property
    def rtpmaps(self) -> dict[int, RtpMap]:
        maps = (RtpMap.parse(v) for v in self.values("rtpmap"))
        return {m.payload_type: m for m in maps}

    @property
    def fmtps(self) -> dict[str, str]:
        pairs = (v.partition(" ") for v in self.values("fmtp"))
        return {fmt: params for fmt, _, params in pairs}

    @property
    def crypto(self) -> list[Crypto]:
        return [Crypto.parse(v) for v in self.values("crypto")]

    @property
    def rtcp_port(self) -> int:
        """RFC 3605 a=rtcp, else RTP port + 1 (RFC 3550 §11)."""
        rtcp = self.value("rtcp")
        return int(rtcp.split()[0]) if rtcp else self.port + 1

    def codecs(self) -> list[Codec]:
        """The m= line's payload formats in preference order; dynamic ones without rtpmap skipped."""
        if not self.is_rtp:
            return []
        maps, fmtps, out = self.rtpmaps, self.fmtps, []
        for fmt in self.formats:
            pt = int(fmt)
            if pt in maps:
                m = maps[pt]
                codec = Codec(m.encoding, m.clock_rate, m.channels or 1, pt)
            elif pt in STATIC_PAYLOAD_TYPES:
                codec = STATIC_PAYLOAD_TYPES[pt]
            else:
                continue
            out.append(codec.with_fmtp(fmtps.get(fmt)))
        return out


def _direction_of(attributes: list[Attribute]) -> Direction | None:
    for a in attributes:
        if a.name in _DIRECTION_NAMES:
            return Direction(a.name)
    return None


@dataclass
class SessionDescription:
    """A whole SDP body (RFC 8866 §5). ``str()`` gives the CRLF wire form."""

    origin: Origin
    session_name: str = "-"
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=lambda: [Timing()])
    time_zones: str | None = None
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    media: list[Media] = field(default_factory=list)

    @property
    def direction(self) -> Direction | None:
        """The session-level direction attribute, if any."""
        return _direction_of(self.attributes)

    def media_direction(self, media: Media) -> Direction:
        """A stream's direction: media level, else session level, else sendrecv (RFC 3264 §5.1)."""
        return media.direction or self.direction or Direction.SENDRECV

    def media_connection(self, media: Media) -> Connection | None:
        return media.connection or self.connection

    def __str__(self) -> str:
        lines = ["v=0", f"o={self.origin}", f"s={self.session_name}"]
        lines += _optional("i", self.information) + _optional("u", self.uri)
        lines += [f"e={e}" for e in self.emails] + [f"p={p}" for p in self.phones]
        lines += _optional("c", self.connection) + [f"b={b}" for b in self.bandwidths]
        for t in self.timings:
            lines += [f"t={t.start} {t.stop}", *(f"r={r}" for r in t.repeats)]
        lines += _optional("z", self.time_zones) + _optional("k", self.key)
        lines += [f"a={a}" for a in self.attributes]
        for m in self.media:
            lines += [f"m={m}", *_optional("i", m.information), *(f"c={c}" for c in m.connections)]
            lines += [f"b={b}" for b in m.bandwidths] + _optional("k", m.key)
            lines += [f"a={a}" for a in m.attributes]
        return "\r\n".join(lines) + "\r\n"

    def to_bytes(self) -> bytes:
        return str(self).encode("utf-8")


def _optional(kind: str, value: object | None) -> list[str]:
    return [] if value is None else [f"{kind}={value}"]


# --------------------------------------------------------------------------------------------- parse


def parse(body: str | bytes) -> SessionDescription:
    """Parse an SDP body (LF or CRLF line ends); raise :class:`SdpError` naming the bad line."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpError(f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    sdp: SessionDescription | None = None
    session_name: str | None = None
    media: Media | None = None
    media_lines: list[tuple[int, str, Media]] = []
    seen_v = False
    for no, raw in enumerate(body.split("\n"), 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line:
            continue
        try:
            if len(line) < 2 or line[1] != "=" or not "a" <= line[0] <= "z":
                raise SdpError("expected <type>=<value>")
            kind, value = line[0], line[2:]
            if "\r" in value or "\0" in value:
                raise SdpError("stray CR or NUL")
            # RFC 8866 §5: v=, o=, s= open the description in that order.
            if not seen_v:
                if kind != "v" or value != "0":
                    raise SdpError("description must start with v=0")
                seen_v = True
            elif sdp is None:
                if kind != "o":
                    raise SdpError("o= must follow v=")
                sdp = SessionDescription(origin=Origin.parse(value), timings=[])
            elif session_name is None:
                if kind != "s":
                    raise SdpError("s= must follow o=")
                session_name = sdp.session_name = value
            elif kind == "m":
                media = Media.parse(value)
                sdp.media.append(media)
                media_lines.append((no, line, media))
            elif media is not None:
                _media_line(media, kind, value)
            else:
                _session_line(sdp, kind, value)
        except SdpError as exc:
            raise SdpError(exc.reason, no, line) from None
    if sdp is None or session_name is None:
        raise SdpError("missing " + ("v=" if not seen_v else "o=" if sdp is None else "s="))
    if not sdp.timings:
        raise SdpError("missing t=")
    for no, line, m in media_lines:
        if not m.connections and sdp.connection is None:
            raise SdpError("no c= for this stream at media or session level", no, line)
    return sdp


def _set_once(obj: object, attr: str, value: object, kind: str) -> None:
    if getattr(obj, attr) is not None:
        raise SdpError(f"more than one {kind}= line")
    setattr(obj, attr, value)


def _session_line(sdp: SessionDescription, kind: str, value: str) -> None:
    match kind:
        case "i":
            _set_once(sdp, "information", value, kind)
        case "u":
            _set_once(sdp, "uri", value, kind)
        case "e":
            sdp.emails.append(value)
        case "p":
            sdp.phones.append(value)
        case "c":
            _set_once(sdp, "connection", Connection.parse(value), kind)
        case "b":
            sdp.bandwidths.append(Bandwidth.parse(value))
        case "t":
            start, stop = _fields(value, "t=", 2)
            sdp.timings.append(Timing(_int(start, "start time"), _int(stop, "stop time")))
        case "r":
            if not sdp.timings:
                raise SdpError("r= before any t=")
            sdp.timings[-1].repeats.append(value)
        case "z":
            _set_once(sdp, "time_zones", value, kind)
        case "k":
            _set_once(sdp, "key", value, kind)
        case "a":
            sdp.attributes.append(Attribute.parse(value))
        case _:
            # RFC 8866 §5: a description with a type letter we do not know must not be used.
            raise SdpError(f"unexpected {kind}= line at session level")


def _media_line(media: Media, kind: str, value: str) -> None:
    match kind:
        case "i":
            _set_once(media, "information", value, kind)
        case "c":
            media.connections.append(Connection.parse(value))
        case "b":
            media.bandwidths.append(Bandwidth.parse(value))
        case "k":
            _set_once(media, "key", value, kind)
        case "a":
            media.attributes.append(Attribute.parse(value))
        case _:
            raise SdpError(f"unexpected {kind}= line in a media section")


# ----------------------------------------------------------------------------------- offer / answer


@dataclass(frozen=True)
class LocalMedia:
    """What we can do and where we listen; the input to both offering and answering."""

    address: str
    port: int
    codecs: tuple[Codec, ...]  # in our order of preference; telephone-event is added by ``dtmf``
    dtmf: bool = True
    direction: Direction = Direction.SENDRECV
    ptime: int | None = 20
    rtcp_mux: bool = False
    crypto: tuple[Crypto, ...] = ()  # our SDES keys: offer RTP/SAVP, and accept it when answering
    require_crypto: bool = False  # answering: never accept an RTP/AVP stream, only RTP/SAVP will do
    single_codec: bool = True  # answer one codec (+ telephone-event) so no re-offer is needed
    prefer_remote: bool = False  # pick by the offerer's order instead of ours

    @property
    def addrtype(self) -> str:
        return "IP6" if ":" in self.address else "IP4"


@dataclass(frozen=True)
class Negotiated:
    """The outcome of one offer/answer for the call's audio stream, as the media layer needs it."""

    media_index: int  # which m= line
    remote_address: str
    remote_port: int
    remote_rtcp_port: int
    rtcp_mux: bool
    codec: Codec  # payload_type: the number the peer asked us to send with
    local_payload_type: int  # the number we asked the peer to send with (equal when we answered)
    telephone_event_pt: int | None  # to send DTMF with; None when not agreed
    local_telephone_event_pt: int | None
    direction: Direction  # what *we* may do: sendonly means we send and the peer does not
    ptime: int | None  # the peer's a=ptime: how it wants to receive
    remote_hold: bool  # the peer does not want our media (sendonly/inactive or c=0.0.0.0)
    remote_crypto: Crypto | None  # the peer's SDES line for the agreed tag
    local_crypto: Crypto | None


def _remote_direction(sdp: SessionDescription, media: Media) -> Direction:
    direction = sdp.media_direction(media)
    conn = sdp.media_connection(media)
    if conn is not None and conn.is_hold:  # RFC 3264 §8.4: legacy hold means "do not send to me"
        direction = Direction.of(direction.sends, False)
    return direction


def _usable(media: Media) -> bool:
    return media.media == "audio" and media.port != 0 and media.proto in ("RTP/AVP", "RTP/SAVP")


def _rejected(media: Media) -> Media:
    """RFC 3264 §6: a refused stream keeps its media type, proto and formats, with port 0."""
    return Media(media.media, 0, media.proto, list(media.formats))


def _audio_media(
    local: LocalMedia,
    proto: str,
    codecs: Sequence[Codec],
    direction: Direction,
    *,
    rtcp_mux: bool,
    crypto: Sequence[Crypto],
) -> Media:
    attrs: list[Attribute] = []
    for c in codecs:
        channels = f"/{c.channels}" if c.channels != 1 else ""
        attrs.append(Attribute("rtpmap", f"{c.payload_type} {c.name}/{c.clock_rate}{channels}"))
        if c.fmtp is not None:
            attrs.append(Attribute("fmtp", f"{c.payload_type} {c.fmtp}"))
    if local.ptime is not None:
        attrs.append(Attribute("ptime", str(local.ptime)))
    if rtcp_mux:
        attrs.append(Attribute("rtcp-mux"))
    attrs += [Attribute("crypto", str(c)) for c in crypto]
    attrs.append(Attribute(direction.value))
    return Media("audio", local.port, proto, [str(c.payload_type) for c in codecs], attributes=attrs)


def _description(local: LocalMedia, session_id: int, timings: list[Timing], media: list[Media]) -> SessionDescription:
    return SessionDescription(
        origin=Origin("-", session_id, session_id, "IN", local.addrtype, local.address),
        connection=Connection("IN", local.addrtype, local.address),
        timings=timings,
        media=media,
    )


def _versioned(sdp: SessionDescription, previous: SessionDescription | None) -> SessionDescription:
    """RFC 3264 §8: keep the previous o= line; bump its version only if the body changed."""
    if previous is None:
        return sdp
    sdp.origin = previous.origin
    if str(sdp) != str(previous):
        sdp.origin = replace(previous.origin, version=previous.origin.version + 1)
    return sdp


def build_offer(
    local: LocalMedia, *, session_id: int, previous: SessionDescription | None = None
) -> SessionDescription:
    """An offer with one audio stream (RFC 3264 §5).

    With ``previous`` (the last description we sent in this session) it is a re-offer (§8): the
    o= line is kept, the audio stream stays at its m= index and every other stream stays as a
    port-0 line, since a new offer may not drop m= lines. Hold is ``direction=Direction.SENDONLY``.
    """
    if not local.codecs:
        raise ValueError("LocalMedia.codecs is empty")
    used: set[int] = set()
    codecs: list[Codec] = []
    for c in local.codecs:
        codecs.append(c.with_number(_pick_pt(c, used)))
    if local.dtmf:
        rates = dict.fromkeys(c.clock_rate for c in codecs if not c.is_telephone_event)
        for rate in rates:
            te = Codec(TELEPHONE_EVENT, rate, fmtp=_DTMF_EVENTS)
            codecs.append(te.with_number(_pick_pt(te, used)))
    proto = "RTP/SAVP" if local.crypto else "RTP/AVP"
    audio = _audio_media(local, proto, codecs, local.direction, rtcp_mux=local.rtcp_mux, crypto=local.crypto)
    media = [audio]
    if previous is not None:
        media = [_rejected(m) for m in previous.media]
        live = [i for i, m in enumerate(previous.media) if m.media == "audio" and m.port != 0]
        if live:
            media[live[0]] = audio
        else:
            media.append(audio)
    return _versioned(_description(local, session_id, [Timing()], media), previous)


def _pick_pt(codec: Codec, used: set[int]) -> int:
    """Keep a codec's own or static number, else the first free dynamic one (101 for DTMF, by habit)."""
    pt = codec.payload_type
    if pt is None:
        pt = _STATIC_BY_FORMAT.get(codec.format_key)
    if pt is None:
        if codec.is_telephone_event and 101 not in used:
            pt = 101
        else:
            pt = next((p for p in range(96, 128) if p not in used), None)
        if pt is None:
            raise ValueError("out of dynamic payload types")
    if pt in used or not 0 <= pt <= 127:
        raise ValueError(f"payload type {pt} is taken or out of range")
    used.add(pt)
    return pt


def _common(offered: list[Codec], local: LocalMedia) -> list[Codec]:
    """Offered codecs we also do, in the chosen preference order, with the offer's numbers (§6.1)."""
    mine = [c for c in local.codecs if not c.is_telephone_event]
    theirs = [c for c in offered if not c.is_telephone_event]
    picked: list[tuple[Codec, Codec]] = []  # (offered, ours)
    if local.prefer_remote:
        for o in theirs:
            ours = next((c for c in mine if c.same_format(o)), None)
            if ours is not None:
                picked.append((o, ours))
    else:
        for ours in mine:
            match = next((c for c in theirs if c.same_format(ours)), None)
            if match is not None:
                picked.append((match, ours))
    return [o.with_fmtp(ours.fmtp) if ours.fmtp is not None else o for o, ours in picked]


def answer(
    offer: SessionDescription,
    local: LocalMedia,
    *,
    session_id: int,
    previous: SessionDescription | None = None,
) -> tuple[SessionDescription, Negotiated | None]:
    """Answer ``offer`` (RFC 3264 §6): accept the first audio stream we can do, refuse the rest.

    Raises :class:`NegotiationError` when the offer has streams but none is acceptable; the
    result's :class:`Negotiated` is None only when the offer has no m= lines (RFC 4317 §5.1).
    """
    out: list[Media] = []
    chosen: Negotiated | None = None
    for index, m in enumerate(offer.media):
        accepted = _accept(offer, index, m, local) if chosen is None and _usable(m) else None
        if accepted is None:
            out.append(_rejected(m))
        else:
            out.append(accepted[0])
            chosen = accepted[1]
    if offer.media and chosen is None:
        raise NegotiationError("no acceptable media stream in the offer")
    # RFC 3264 §6: the answer's t= equals the offer's.
    sdp = _description(local, session_id, copy.deepcopy(offer.timings), out)
    return _versioned(sdp, previous), chosen


def _accept(offer: SessionDescription, index: int, m: Media, local: LocalMedia) -> tuple[Media, Negotiated] | None:
    remote_crypto = local_crypto = None
    if m.proto == "RTP/AVP" and local.require_crypto:
        return None
    if m.proto == "RTP/SAVP":
        pairs = [(theirs, mine) for theirs in m.crypto for mine in local.crypto if theirs.suite == mine.suite]
        if not pairs:
            return None
        remote_crypto, mine = pairs[0]
        local_crypto = replace(mine, tag=remote_crypto.tag)  # RFC 4568 §7.1.2: answer with the offer's tag
    offered = m.codecs()
    common = _common(offered, local)
    if not common:
        return None
    if local.single_codec:
        common = common[:1]
    primary = common[0]
    te = None
    if local.dtmf:  # RFC 4733 §7.1.1: telephone-event at the same clock rate as the voice codec
        te = next((c for c in offered if c.is_telephone_event and c.clock_rate == primary.clock_rate), None)
    if te is not None:
        te = te.with_fmtp(_DTMF_EVENTS)
    remote_dir = _remote_direction(offer, m)
    # RFC 3264 §6.1: we may send only what the offerer receives, and receive only what it sends.
    ours = Direction.of(remote_dir.receives and local.direction.sends, remote_dir.sends and local.direction.receives)
    mux = local.rtcp_mux and m.has("rtcp-mux")
    codecs = [*common, *([te] if te else [])]
    media = _audio_media(local, m.proto, codecs, ours, rtcp_mux=mux, crypto=[local_crypto] if local_crypto else [])
    conn = offer.media_connection(m)
    assert conn is not None and primary.payload_type is not None  # parse() guarantees both
    te_pt = te.payload_type if te else None
    negotiated = Negotiated(
        media_index=index,
        remote_address=conn.address,
        remote_port=m.port,
        remote_rtcp_port=m.port if mux else m.rtcp_port,
        rtcp_mux=mux,
        codec=primary,
        local_payload_type=primary.payload_type,
        telephone_event_pt=te_pt,
        local_telephone_event_pt=te_pt,
        direction=ours,
        ptime=m.ptime or _session_ptime(offer),
        remote_hold=not remote_dir.receives,
        remote_crypto=remote_crypto,
        local_crypto=local_crypto,
    )
    return media, negotiated


def _session_ptime(sdp: SessionDescription) -> int | None:
    ptime = next((a.value for a in sdp.attributes if a.name == "ptime" and a.value), None)
    return int(ptime) if ptime is not None else None


def process_answer(offer: SessionDescription, answer_sdp: SessionDescription) -> Negotiated | None:
    """The offerer's view of an answer to ``offer`` (RFC 3264 §7).

    Raises :class:`NegotiationError` if the answer breaks §6's shape rules or accepts nothing;
    returns None only for an exchange without m= lines.
    """
    if len(answer_sdp.media) != len(offer.media):
        raise NegotiationError(f"answer has {len(answer_sdp.media)} m= lines, offer had {len(offer.media)}")
    for i, (o, a) in enumerate(zip(offer.media, answer_sdp.media, strict=True)):
        if o.media != a.media:
            raise NegotiationError(f"m= line {i + 1} is {a.media} in the answer but {o.media} in the offer")
    for index, (o, a) in enumerate(zip(offer.media, answer_sdp.media, strict=True)):
        if not (_usable(o) and _usable(a)) or o.proto != a.proto:
            continue
        offered, answered = o.codecs(), a.codecs()
        # The answer lists what the answerer wants to receive, best first; RFC 4317 §2.3 shows
        # it may renumber a dynamic type, so match by format and keep both numbers.
        pairs = [
            (a_codec, o_codec)
            for a_codec in answered
            if not a_codec.is_telephone_event
            for o_codec in offered
            if o_codec.same_format(a_codec)
        ]
        if not pairs:
            continue
        send, recv = pairs[0]
        te = next((c for c in answered if c.is_telephone_event and c.clock_rate == send.clock_rate), None)
        our_te = next((c for c in offered if c.is_telephone_event and c.clock_rate == send.clock_rate), None)
        remote_crypto = local_crypto = None
        if a.proto == "RTP/SAVP":
            remote_crypto = next(iter(a.crypto), None)
            if remote_crypto is not None:
                local_crypto = next((c for c in o.crypto if c.tag == remote_crypto.tag), None)
            if local_crypto is None:
                raise NegotiationError("SRTP answer without a crypto line matching the offer's tags")
        remote_dir = _remote_direction(answer_sdp, a)
        mine = offer.media_direction(o)
        conn = answer_sdp.media_connection(a)
        assert conn is not None and send.payload_type is not None and recv.payload_type is not None
        mux = o.has("rtcp-mux") and a.has("rtcp-mux")
        return Negotiated(
            media_index=index,
            remote_address=conn.address,
            remote_port=a.port,
            remote_rtcp_port=a.port if mux else a.rtcp_port,
            rtcp_mux=mux,
            codec=send,
            local_payload_type=recv.payload_type,
            telephone_event_pt=te.payload_type if te and our_te else None,
            local_telephone_event_pt=our_te.payload_type if te and our_te else None,
            direction=Direction.of(mine.sends and remote_dir.receives, mine.receives and remote_dir.sends),
            ptime=a.ptime or _session_ptime(answer_sdp),
            remote_hold=not remote_dir.receives,
            remote_crypto=remote_crypto,
            local_crypto=local_crypto,
        )
    if offer.media:
        raise NegotiationError("the answer accepts no stream we can use")
    return None
