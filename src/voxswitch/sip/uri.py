"""SIP, SIPS and tel URIs (and any other absolute URI), parsed and serialised, sans-I/O.

Theory of operation
-------------------
`parse_uri` looks at the scheme and hands the rest to one of three parsers:

- ``sip:`` / ``sips:`` -> `SipUri`. One compiled regular expression splits userinfo, host, port,
  parameters and headers (RFC 3261 §19.1.1, ABNF §25.1); a second pass checks the host (IPv4,
  bracketed IPv6 per RFC 5118, hostname) and the ``%`` escapes. Components are stored *decoded*
  (``sip:%75ser@h`` has user ``"user"``): RFC 3261 §19.1.4 compares URIs on decoded values and
  RFC 4475 §3.1.1.3 asks applications to treat ``%HH`` as the character. Decoding happens once,
  never recursively (``%2541`` is ``%41``, not ``A``; RFC 3986 §2.4).
- ``tel:`` -> `TelUri` (RFC 3966 §3): a global (``+``) or local number, visual separators kept as
  written, and its parameters; a local number needs ``phone-context`` (§5.1.5).
- anything else -> `AbsoluteUri`: scheme and opaque part, checked only for legal characters. The
  message layer refuses such a Request-URI with 416 (RFC 3261 §8.2.2.1) but carries them in headers
  (RFC 4475 §3.3.4).

URIs are immutable. A parsed URI remembers its text, so ``str(uri)`` gives back exactly what was
received; a URI built in code, or changed with `dataclasses.replace` / ``with_param``, is serialised
afresh, escaping only what the grammar requires. `SipUri.equivalent` implements the comparison
rules of RFC 3261 §19.1.4 (with RFC 5954 §4 for IPv6 hosts).

Tolerance, on purpose: RFC 5118 §4.10 asks parsers to accept the three-colon IPv6 form
(``[2001:db8:::192.0.2.1]``) that RFC 3261's ABNF allowed by mistake; it is read as the two-colon
address. Everything else outside the grammar is a `SipParseError`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from urllib.parse import quote, unquote

from voxswitch.sip.errors import SipParseError

__all__ = [
    "NO_PARAMS",
    "AbsoluteUri",
    "Params",
    "Scheme",
    "SipUri",
    "TelUri",
    "Uri",
    "bounded_int",
    "is_valid_host",
    "parse_uri",
]


class Scheme(StrEnum):
    """The URI schemes this stack understands (RFC 3261 §19.1, RFC 3966)."""

    SIP = "sip"
    SIPS = "sips"
    TEL = "tel"


@dataclass(frozen=True, slots=True)
class Params:
    """Ordered ``;name[=value]`` parameters. Names compare case-insensitively (§7.3.1, §19.1.4).

    A parameter without a value (``;lr``) is stored with value ``None`` and read back as ``""``.
    """

    items: tuple[tuple[str, str | None], ...] = ()

    def get(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        for key, value in self.items:
            if key == lname or key.lower() == lname:  # parameters are usually written in lowercase
                return "" if value is None else value
        return default

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        lname = name.lower()
        for key, _ in self.items:
            if key.lower() == lname:
                return True
        return False

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def with_param(self, name: str, value: str | None = None) -> Params:
        """These parameters with `name` set (replacing the first of that name, else appended)."""
        lname = name.lower()
        items = list(self.items)
        for i, (key, _) in enumerate(items):
            if key.lower() == lname:
                items[i] = (key, value)
                return Params(tuple(items))
        return Params((*items, (name, value)))

    def without(self, name: str) -> Params:
        lname = name.lower()
        return Params(tuple(item for item in self.items if item[0].lower() != lname))

    def __str__(self) -> str:
        """Header-parameter form: values are written as stored (quoted strings keep their quotes)."""
        return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.items)


NO_PARAMS = Params()


# --- RFC 3261 §25.1 character classes --------------------------------------------------------------

_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
_USER_CHARS = _UNRESERVED + r"&=+$,;?/%"  # user = 1*( unreserved / escaped / user-unreserved )
_PASSWORD_CHARS = _UNRESERVED + r"&=+$,%"  # password = *( unreserved / escaped / "&=+$," )
_PARAM_CHARS = _UNRESERVED + r"\[\]/:&+$%"  # paramchar = param-unreserved / unreserved / escaped
_HEADER_CHARS = _UNRESERVED + r"\[\]/?:+$%"  # hnv-unreserved / unreserved / escaped

_SIP_URI = re.compile(
    rf"(?:(?P<user>[{_USER_CHARS}]+)(?::(?P<password>[{_PASSWORD_CHARS}]*))?@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9_.\-]*)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    rf"(?P<params>(?:;[{_PARAM_CHARS}]+(?:=[{_PARAM_CHARS}]+)?)*)"
    rf"(?:\?(?P<headers>[{_HEADER_CHARS}=&]*))?"
)
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_IPV4 = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_DIGITS_AND_DOTS = re.compile(r"[0-9.]+")
_ASCII_DIGITS = re.compile(r"[0-9]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
# RFC 2396 absoluteURI = scheme ":" ( hier_part / opaque_part ); uric = reserved / unreserved / escaped
_OPAQUE = re.compile(r"[A-Za-z0-9\-_.!~*'();/?:@&=+$,%\[\]]+")
# RFC 3966 §3
_TEL_GLOBAL = re.compile(r"\+[0-9\-.()]*[0-9][0-9\-.()]*")
_TEL_LOCAL = re.compile(r"[0-9A-Fa-f*#\-.()]*[0-9A-Fa-f*#][0-9A-Fa-f*#\-.()]*")
_TEL_PNAME = re.compile(r"[A-Za-z0-9\-]+")
_TEL_PVALUE = re.compile(rf"[{_PARAM_CHARS}]+")
_VISUAL_SEPARATORS = str.maketrans("", "", "-.()")

# Characters left as they are when serialising a component (quote() also keeps alphanumerics and _.-~).
_SAFE_USER = "!*'()&=+$,;?/"
_SAFE_PASSWORD = "!*'()&=+$,"
_SAFE_PARAM = "!*'()[]/:&+$"
_SAFE_HEADER = "!*'()[]/?:+$"


def bounded_int(text: str | None, maximum: int) -> int | None:
    """`text` as an int if it is ASCII digits worth at most `maximum`, else None (never raises)."""
    if not text or len(text) > 20 or _ASCII_DIGITS.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value <= maximum else None


def _fail(text: str, what: str = "URI") -> SipParseError:
    return SipParseError(400, f"Bad Request - Malformed {what}", detail=text[:120])


def _unescape(text: str) -> str:
    return unquote(text, errors="surrogateescape") if "%" in text else text


def _escape(text: str, safe: str) -> str:
    return quote(text, safe=safe, errors="surrogateescape")


def _valid_ipv6(inner: str) -> bool:
    try:
        ipaddress.IPv6Address(inner)
        return True
    except ValueError:
        pass
    # RFC 5118 §4.10: tolerate RFC 3261's ABNF bug, one ":::" read as "::".
    if inner.count(":::") == 1 and "::::" not in inner:
        try:
            ipaddress.IPv6Address(inner.replace(":::", "::"))
            return True
        except ValueError:
            return False
    return False


@lru_cache(maxsize=4096)  # a server sees the same few hosts over and over
def is_valid_host(host: str) -> bool:
    """RFC 3261 §25.1 host: hostname, IPv4address or IPv6reference (brackets required)."""
    if not host:
        return False
    if host[0] == "[":
        return host[-1] == "]" and _valid_ipv6(host[1:-1])
    if _DIGITS_AND_DOTS.fullmatch(host):
        return _IPV4.fullmatch(host) is not None and all(int(part) <= 255 for part in host.split("."))
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    return all(label and label[0] != "-" and label[-1] != "-" for label in labels) and not labels[-1].isdigit()


def _host_key(host: str) -> str | ipaddress.IPv6Address:
    """What two hosts are compared on: the address for IPv6 (RFC 5954 §4), else the lowercase text."""
    if host.startswith("["):
        inner = host[1:-1]
        try:
            return ipaddress.IPv6Address(inner if ":::" not in inner else inner.replace(":::", "::"))
        except ValueError:
            return host.lower()
    return host.lower()


@dataclass(frozen=True, slots=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 §19.1.1). Components are stored unescaped."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = NO_PARAMS
    headers: tuple[tuple[str, str], ...] = ()
    scheme: Scheme = Scheme.SIP
    _text: str | None = field(default=None, init=False, compare=False, repr=False)

    # §19.1.1 parameters with a meaning of their own
    @property
    def transport(self) -> str | None:
        return self.params.get("transport")

    @property
    def lr(self) -> bool:
        return "lr" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def user_param(self) -> str | None:
        """The ``user=`` parameter (``phone`` or ``ip``), not the user part."""
        return self.params.get("user")

    @property
    def method(self) -> str | None:
        return self.params.get("method")

    @property
    def ttl(self) -> int | None:
        return bounded_int(self.params.get("ttl"), 255)

    @property
    def secure(self) -> bool:
        return self.scheme is Scheme.SIPS

    @property
    def is_ipv6(self) -> bool:
        return self.host.startswith("[")

    @property
    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def aor(self) -> str:
        """The address-of-record form: scheme, user and host, nothing else (RFC 3261 §10.3)."""
        user = "" if self.user is None else _escape(self.user, _SAFE_USER) + "@"
        return f"{self.scheme.value}:{user}{self.host.lower()}"

    def with_param(self, name: str, value: str | None = None) -> SipUri:
        return replace(self, params=self.params.with_param(name, value))

    def without_param(self, name: str) -> SipUri:
        return replace(self, params=self.params.without(name))

    def equivalent(self, other: object) -> bool:
        """RFC 3261 §19.1.4 URI comparison (userinfo case-sensitive, the rest not)."""
        if not isinstance(other, SipUri):
            return False
        if (
            self.scheme is not other.scheme
            or self.user != other.user
            or self.password != other.password
            or self.port != other.port
            or _host_key(self.host) != _host_key(other.host)
        ):
            return False
        mine = {k.lower(): (v or "").lower() for k, v in self.params.items}
        theirs = {k.lower(): (v or "").lower() for k, v in other.params.items}
        for name in ("user", "ttl", "method", "maddr", "transport"):
            if mine.get(name) != theirs.get(name):
                return False
        if any(theirs[name] != value for name, value in mine.items() if name in theirs):
            return False
        return {(k.lower(), v) for k, v in self.headers} == {(k.lower(), v) for k, v in other.headers}

    def __str__(self) -> str:
        if self._text is not None:
            return self._text
        out = [self.scheme.value, ":"]
        if self.user is not None:
            out.append(_escape(self.user, _SAFE_USER))
            if self.password is not None:
                out += [":", _escape(self.password, _SAFE_PASSWORD)]
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out += [":", str(self.port)]
        for key, value in self.params.items:
            out += [";", _escape(key, _SAFE_PARAM)]
            if value is not None:
                out += ["=", _escape(value, _SAFE_PARAM)]
        if self.headers:
            out.append("?")
            out.append("&".join(f"{_escape(k, _SAFE_HEADER)}={_escape(v, _SAFE_HEADER)}" for k, v in self.headers))
        return "".join(out)


@dataclass(frozen=True, slots=True)
class TelUri:
    """A ``tel:`` URI (RFC 3966 §3): the number as written (visual separators kept) and parameters."""

    number: str
    params: Params = NO_PARAMS
    _text: str | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def scheme(self) -> Scheme:
        return Scheme.TEL

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators, as RFC 3966 §4 compares it."""
        return self.number.translate(_VISUAL_SEPARATORS)

    @property
    def phone_context(self) -> str | None:
        return self.params.get("phone-context")

    @property
    def extension(self) -> str | None:
        return self.params.get("ext")

    def equivalent(self, other: object) -> bool:
        """RFC 3966 §4: same digits, same parameters in any order, names and values case-insensitive."""
        if not isinstance(other, TelUri):
            return False
        mine = {(k.lower(), (v or "").lower()) for k, v in self.params.items}
        theirs = {(k.lower(), (v or "").lower()) for k, v in other.params.items}
        return self.digits.lower() == other.digits.lower() and mine == theirs

    def __str__(self) -> str:
        if self._text is not None:
            return self._text
        params = "".join(f";{k}" if v is None else f";{k}={_escape(v, _SAFE_PARAM)}" for k, v in self.params.items)
        return f"tel:{self.number}{params}"


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """A URI of a scheme this stack does not interpret (RFC 3261 §19.1.6, e.g. ``http:``, ``isbn:``)."""

    scheme: str  # lowercase
    opaque: str
    _text: str | None = field(default=None, init=False, compare=False, repr=False)

    def equivalent(self, other: object) -> bool:
        return isinstance(other, AbsoluteUri) and self.scheme == other.scheme and self.opaque == other.opaque

    def __str__(self) -> str:
        return self._text if self._text is not None else f"{self.scheme}:{self.opaque}"


Uri = SipUri | TelUri | AbsoluteUri


# URIs are immutable, and a server meets the same ones over and over: its own address in every
# Request-URI, each device's AOR in To and its Contact on every refresh. Malformed ones are not kept.
@lru_cache(maxsize=4096)
def parse_uri(text: str) -> Uri:
    """Parse a URI as it appears in a Request-URI or inside ``<>``; raise `SipParseError` if malformed."""
    colon = text.find(":")
    if colon <= 0:
        raise _fail(text)
    scheme = text[:colon].lower()
    rest = text[colon + 1 :]
    if scheme == "sip" or scheme == "sips":
        return _parse_sip(text, Scheme(scheme), rest)
    if scheme == "tel":
        return _parse_tel(text, rest)
    if not _SCHEME.fullmatch(scheme) or not _OPAQUE.fullmatch(rest) or _BAD_ESCAPE.search(rest):
        raise _fail(text)
    uri = AbsoluteUri(scheme, rest)
    object.__setattr__(uri, "_text", text)
    return uri


def _parse_sip(text: str, scheme: Scheme, rest: str) -> SipUri:
    m = _SIP_URI.fullmatch(rest)
    if m is None or ("%" in rest and _BAD_ESCAPE.search(rest)):
        raise _fail(text)
    user, password, host, port, params, headers = m.group("user", "password", "host", "port", "params", "headers")
    if not is_valid_host(host):
        raise _fail(text)
    port_number = None
    if port is not None:
        port_number = int(port)
        if port_number > 65535:
            raise _fail(text)
    param_items: tuple[tuple[str, str | None], ...] = ()
    if params:
        items: list[tuple[str, str | None]] = []
        for piece in params[1:].split(";"):
            name, eq, value = piece.partition("=")
            items.append((_unescape(name), _unescape(value) if eq else None))
        param_items = tuple(items)
    header_items: tuple[tuple[str, str], ...] = ()
    if headers is not None:
        pairs: list[tuple[str, str]] = []
        for piece in headers.split("&"):
            name, eq, value = piece.partition("=")
            if not name or not eq:
                raise _fail(text)
            pairs.append((_unescape(name), _unescape(value)))
        header_items = tuple(pairs)
    uri = SipUri(
        host=host,
        user=None if user is None else _unescape(user),
        password=None if password is None else _unescape(password),
        port=port_number,
        params=Params(param_items) if param_items else NO_PARAMS,
        headers=header_items,
        scheme=scheme,
    )
    object.__setattr__(uri, "_text", text)
    return uri


def _parse_tel(text: str, rest: str) -> TelUri:
    number, _, params = rest.partition(";")
    if "%" in rest and _BAD_ESCAPE.search(rest):
        raise _fail(text)
    items: list[tuple[str, str | None]] = []
    if params:
        for piece in params.split(";"):
            name, eq, value = piece.partition("=")
            if not _TEL_PNAME.fullmatch(name) or (eq and not _TEL_PVALUE.fullmatch(value)):
                raise _fail(text)
            items.append((name, _unescape(value) if eq else None))
    uri = TelUri(number, Params(tuple(items)) if items else NO_PARAMS)
    if number.startswith("+"):
        if not _TEL_GLOBAL.fullmatch(number):
            raise _fail(text)
    elif not _TEL_LOCAL.fullmatch(number) or uri.phone_context is None:
        raise _fail(text)  # RFC 3966 §5.1.5: a local number MUST carry phone-context
    object.__setattr__(uri, "_text", text)
    return uri
