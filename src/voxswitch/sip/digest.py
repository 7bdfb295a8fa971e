"""HTTP Digest authentication for SIP, sans-I/O.

Theory of operation
-------------------
A registrar or UAS that wants proof of identity answers 401/407 with one ``WWW-Authenticate`` /
``Proxy-Authenticate`` header per algorithm, strongest first (RFC 8760 §2.4). The client picks the
strongest algorithm it supports, hashes the password with the server's nonce and its own cnonce and
retries with ``Authorization`` / ``Proxy-Authorization``; the server recomputes the digest and compares.

The server remembers almost nothing. A nonce is ``base64(timestamp ‖ random ‖ MAC)`` where
``MAC = HMAC-SHA256(secret, realm ‖ timestamp ‖ random)``: any node holding the secret tells a forged
nonce (bad MAC) from an expired one (old timestamp, answered ``stale=true`` so the client retries
without asking its user, RFC 2617 §3.2.1). The only memory is a bounded LRU of the highest
nonce-count accepted per nonce, which refuses a replayed request (RFC 7616 §3.4 "nc").

Nothing here reads the clock or touches a socket: callers pass ``now`` (seconds on a clock every
node that shares the secret agrees on, e.g. ``time.time()``) and may pass an entropy source.

References: RFC 3261 §22 (Digest in SIP) and §25.1 (auth-param ABNF); RFC 2617 §3.2.1 (challenge),
§3.2.2 (credentials), §3.5 (example); RFC 7616 §3.3-§3.4 (parameters, A1/A2, algorithms), §3.9.1
(examples); RFC 8760 (SHA-256 for SIP). Not implemented: SHA-512-256, ``userhash`` and ``username*``.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
import re
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum

__all__ = [
    "HA1",
    "Algorithm",
    "AuthOutcome",
    "AuthResult",
    "Challenge",
    "Credentials",
    "DigestClient",
    "DigestError",
    "DigestServer",
    "Password",
    "SecretLookup",
    "UnsupportedAlgorithm",
    "answer_challenge",
    "compute_ha1",
    "compute_response",
    "select_challenge",
]


class DigestError(ValueError):
    """A Digest header that cannot be parsed or built; the message names the part at fault."""


class UnsupportedAlgorithm(DigestError):
    """A well-formed header naming an algorithm we do not implement (clients skip such challenges)."""


class Algorithm(StrEnum):
    """RFC 7616 §3.4.2 algorithms; ``-sess`` variants bind HA1 to the nonce and cnonce."""

    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA256 = "SHA-256"
    SHA256_SESS = "SHA-256-sess"

    @classmethod
    def parse(cls, text: str) -> Algorithm:
        alg = _BY_NAME.get(text.lower())
        if alg is None:
            raise UnsupportedAlgorithm(f"unsupported algorithm {text!r}")
        return alg

    @property
    def base(self) -> Algorithm:
        """The algorithm whose ``H(username:realm:password)`` a user store keeps."""
        return Algorithm.SHA256 if self in (Algorithm.SHA256, Algorithm.SHA256_SESS) else Algorithm.MD5

    @property
    def is_session(self) -> bool:
        return self in (Algorithm.MD5_SESS, Algorithm.SHA256_SESS)

    @property
    def strength(self) -> int:
        """Client ranking (RFC 8760 §2.4): SHA-256 beats MD5; ties keep the server's order."""
        return 2 if self.base is Algorithm.SHA256 else 1


_BY_NAME = {alg.value.lower(): alg for alg in Algorithm}
_HASH = {  # every request is hashed three times: no hashlib.new() name lookup each time
    alg: hashlib.sha256 if alg.base is Algorithm.SHA256 else hashlib.md5 for alg in Algorithm
}


# RFC 7230 §3.2.6 tchar; unquoted values are read more loosely (see _parse_params).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LOOSE_VALUE = re.compile(r'[^\s,"]+')
_HEX = re.compile(r"[0-9a-fA-F]+")
_NC = re.compile(r"[0-9a-fA-F]{8}")  # RFC 2617 §3.2.2: nc-value = 8LHEX
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _check_text(text: str, what: str) -> None:
    """Refuse control characters (header injection) and text that cannot become bytes again."""
    if _CTL.search(text):
        raise DigestError(f"control character in {what}")
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise DigestError(f"unencodable character in {what}") from None


# One auth-param after OWS and commas: a token, "=", a quoted-string (group 2) or a loose value
# (group 3), then OWS before a comma or the end (RFC 3261 §25.1 digest-cln / dig-resp). The
# possessive quantifiers leave the engine nothing to backtrack into on a hostile header. The quoted
# string is matched as runs of ordinary characters between escapes ("unrolled"), not one alternation
# per character, which halves the time of the whole match on a typical Authorization header.
_PARAM_TEXT = (
    r"[ \t,]*+([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)[ \t]*+=[ \t]*+"
    r'(?:"([^"\\]*+(?:\\.[^"\\]*+)*+)"|([^\s,"]++))[ \t]*+(?=,|\Z)'
)
_PARAM = re.compile(_PARAM_TEXT, re.DOTALL)
_SEPARATORS = re.compile(r"[ \t,]*")
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def _parse_params(value: str) -> dict[str, str]:
    """Parse ``Digest k=v, k="v"`` (RFC 3261 §25.1 challenge/credentials) into lower-cased names.

    Whitespace around ``=`` and ``,`` and empty list elements are tolerated; unquoted values may
    carry ``/`` and ``=`` (unquoted base64 nonces are common in the wild).
    """
    _check_text(value, "header")
    s = value.strip(" \t")
    m = _TOKEN.match(s)
    if m is None or m.group().lower() != "digest":
        raise DigestError("auth scheme is not Digest")
    pos = m.end()
    if pos < len(s) and s[pos] not in " \t":
        raise DigestError("expected whitespace after 'Digest'")
    params: dict[str, str] = {}
    for m in _PARAM.finditer(s, pos):  # one pass; each parameter must start where the last ended
        if m.start() != pos:
            break
        name, quoted, loose = m.groups()
        name = name.lower()
        if name in params:
            raise DigestError(f"duplicate parameter {name!r}")
        params[name] = loose if loose is not None else (_ESCAPED.sub(r"\1", quoted) if "\\" in quoted else quoted)
        pos = m.end()
    if _SEPARATORS.match(s, pos).end() != len(s):  # type: ignore[union-attr]  # always matches
        raise DigestError(f"malformed parameter at offset {pos}")
    if not params:
        raise DigestError("no parameters")
    return params


def _quote(value: str, what: str) -> str:
    _check_text(value, what)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _token(value: str, what: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise DigestError(f"{what} must be a token")
    return value


def _require(params: dict[str, str], *names: str) -> None:
    for name in names:
        if name not in params:
            raise DigestError(f"missing {name!r}")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``WWW-Authenticate`` / ``Proxy-Authenticate`` value (RFC 2617 §3.2.1, RFC 7616 §3.3)."""

    realm: str
    nonce: str
    algorithm: Algorithm = Algorithm.MD5
    qop: tuple[str, ...] = ()  # offered qop-options, lower-cased; () means RFC 2069 style
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None

    @classmethod
    def parse(cls, value: str) -> Challenge:
        p = _parse_params(value)
        _require(p, "realm", "nonce")
        qop = tuple(q.strip().lower() for q in p.get("qop", "").split(",") if q.strip())
        return cls(
            realm=p["realm"],
            nonce=p["nonce"],
            algorithm=Algorithm.parse(p.get("algorithm", "MD5")),
            qop=qop,
            opaque=p.get("opaque"),
            stale=p.get("stale", "").lower() == "true",
            domain=p.get("domain"),
        )

    def __str__(self) -> str:
        parts = [f"realm={_quote(self.realm, 'realm')}"]
        if self.domain is not None:
            parts.append(f"domain={_quote(self.domain, 'domain')}")
        parts.append(f"nonce={_quote(self.nonce, 'nonce')}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque, 'opaque')}")
        if self.stale:
            parts.append("stale=true")
        parts.append(f"algorithm={self.algorithm.value}")
        if self.qop:
            # RFC 3261 §25.1: qop-options is always a quoted list in a challenge.
            parts.append(f"qop={_quote(','.join(_token(q, 'qop') for q in self.qop), 'qop')}")
        return "Digest " + ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Credentials:
    """One ``Authorization`` / ``Proxy-Authorization`` value (RFC 2617 §3.2.2, RFC 7616 §3.4)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: Algorithm = Algorithm.MD5
    qop: str | None = None
    nc: str | None = None  # 8 hex digits, present with qop
    cnonce: str | None = None
    opaque: str | None = None

    @classmethod
    def parse(cls, value: str) -> Credentials:
        p = _parse_params(value)
        _require(p, "username", "realm", "nonce", "uri", "response")
        if not _HEX.fullmatch(p["response"]):
            raise DigestError("response is not hexadecimal")
        qop = p.get("qop")
        if qop is not None:
            # RFC 7616 §3.4: with qop, cnonce and nc MUST be sent.
            _require(p, "cnonce", "nc")
            if not _TOKEN.fullmatch(qop):
                raise DigestError("qop must be a single token")
            if not _NC.fullmatch(p["nc"]):
                raise DigestError("nc must be 8 hex digits")
        return cls(
            username=p["username"],
            realm=p["realm"],
            nonce=p["nonce"],
            uri=p["uri"],
            response=p["response"].lower(),
            algorithm=Algorithm.parse(p.get("algorithm", "MD5")),
            qop=qop.lower() if qop is not None else None,
            nc=p["nc"].lower() if qop is not None else None,
            cnonce=p.get("cnonce") if qop is not None else None,
            opaque=p.get("opaque"),
        )

    def __str__(self) -> str:
        parts = [
            f"username={_quote(self.username, 'username')}",
            f"realm={_quote(self.realm, 'realm')}",
            f"nonce={_quote(self.nonce, 'nonce')}",
            f"uri={_quote(self.uri, 'uri')}",
            f"response={_quote(self.response, 'response')}",
            f"algorithm={self.algorithm.value}",
        ]
        if self.cnonce is not None:
            parts.append(f"cnonce={_quote(self.cnonce, 'cnonce')}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque, 'opaque')}")
        if self.qop is not None:
            # RFC 7616 §3.4: qop and nc are unquoted in credentials.
            parts.append(f"qop={_token(self.qop, 'qop')}")
            parts.append(f"nc={_token(self.nc or '', 'nc')}")
        return "Digest " + ", ".join(parts)


def _h(algorithm: Algorithm, data: str | bytes) -> str:
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape")
    return _HASH[algorithm](raw, usedforsecurity=False).hexdigest()


def compute_ha1(username: str, realm: str, password: str, algorithm: Algorithm = Algorithm.MD5) -> str:
    """``H(username:realm:password)``: what a user store keeps instead of the password (RFC 7616 §3.4.2)."""
    return _h(algorithm.base, f"{username}:{realm}:{password}")


def compute_response(
    *,
    algorithm: Algorithm,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The request-digest of RFC 7616 §3.4.1 (or RFC 2069's when ``qop`` is None), from a base HA1."""
    if algorithm.is_session:
        # RFC 7616 §3.4.2: A1 = H(username:realm:passwd):nonce:cnonce for -sess.
        if cnonce is None:
            raise DigestError(f"{algorithm} needs a cnonce")
        ha1 = _h(algorithm, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        ha2 = _h(algorithm, f"{method}:{uri}:{_h(algorithm, body)}")  # RFC 7616 §3.4.3
    else:
        ha2 = _h(algorithm, f"{method}:{uri}")
    if qop is None:
        return _h(algorithm, f"{ha1}:{nonce}:{ha2}")  # RFC 2069 compatibility
    return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


# --------------------------------------------------------------------------------------------- server


@dataclass(frozen=True, slots=True)
class Password:
    """A plaintext password returned by a :data:`SecretLookup`."""

    value: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class HA1:
    """A stored ``H(username:realm:password)`` (hex) for the lookup's base algorithm."""

    value: str = field(repr=False)


# (username, realm, base algorithm: MD5 or SHA-256) -> secret, or None for an unknown user.
SecretLookup = Callable[[str, str, Algorithm], Password | HA1 | None]


class AuthOutcome(Enum):
    OK = "ok"
    STALE = "stale"  # right password, old or reused nonce: re-challenge with stale=true
    INVALID = "invalid"  # wrong password, unknown user, forged nonce, wrong realm: re-challenge
    MALFORMED = "malformed"  # unparseable header: 400


@dataclass(frozen=True, slots=True)
class AuthResult:
    outcome: AuthOutcome
    username: str | None = None  # set only when OK

    @property
    def ok(self) -> bool:
        return self.outcome is AuthOutcome.OK


_MALFORMED, _INVALID, _STALE = (AuthResult(o) for o in (AuthOutcome.MALFORMED, AuthOutcome.INVALID, AuthOutcome.STALE))
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = str.maketrans("-_", "+/")
_NONCE_STRUCT = struct.Struct(">d16s")  # timestamp, random
_MAC_LEN = 16
_NONCE_LEN = _NONCE_STRUCT.size + _MAC_LEN


class DigestServer:
    """Issue challenges and verify credentials for one realm; see the module docstring."""

    def __init__(
        self,
        realm: str,
        secret: bytes,
        *,
        algorithms: Sequence[Algorithm] = (Algorithm.SHA256, Algorithm.MD5),
        nonce_lifetime: float = 300.0,
        allow_rfc2069: bool = False,
        allow_auth_int: bool = False,
        max_tracked_nonces: int = 100_000,
        entropy: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("secret must be at least 16 bytes")
        if not algorithms:
            raise ValueError("at least one algorithm is required")
        _check_text(realm, "realm")
        self.realm = realm
        self.algorithms = tuple(algorithms)  # offered in this order: strongest first (RFC 8760 §2.4)
        self.nonce_lifetime = nonce_lifetime
        self.allow_rfc2069 = allow_rfc2069
        self.qop = ("auth", "auth-int") if allow_auth_int else ("auth",)
        self._secret = secret
        self._entropy = entropy
        self._pool = b""
        self._max = max_tracked_nonces
        self._nc: OrderedDict[str, int] = OrderedDict()  # nonce -> highest nc accepted
        self._forgotten_upto = float("-inf")  # newest issue time of any nonce evicted from _nc
        self._keyed = hmac.new(secret, realm.encode("utf-8", "surrogateescape") + b"\0", hashlib.sha256)
        # Every challenge is the same text around a fresh nonce: cut once, per algorithm and stale flag.
        marker = "n" * 43  # as long as a real nonce; quoted realms cannot contain `nonce="` unescaped
        self._templates: dict[bool, list[tuple[str, str]]] = {}
        for stale in (False, True):
            parts = []
            for alg in self.algorithms:
                text = str(Challenge(realm=realm, nonce=marker, algorithm=alg, qop=self.qop, stale=stale))
                head, _, tail = text.partition(f'nonce="{marker}"')
                parts.append((head + 'nonce="', '"' + tail))
            self._templates[stale] = parts

    # RFC 2617 §3.2.1: the nonce is opaque to the client; ours is self-authenticating.
    def _mac(self, body: bytes) -> bytes:
        mac = self._keyed.copy()  # the key schedule and the realm prefix are done once
        mac.update(body)
        return mac.digest()[:_MAC_LEN]

    def _random16(self) -> bytes:
        # One entropy call per 64 nonces: os.urandom is a system call, and every REGISTER needs one.
        if not self._pool:
            self._pool = self._entropy(16 * 64)
        chunk, self._pool = self._pool[:16], self._pool[16:]
        return chunk

    def make_nonce(self, now: float) -> str:
        body = _NONCE_STRUCT.pack(now, self._random16())
        encoded = binascii.b2a_base64(body + self._mac(body), newline=False)  # base64url, unpadded
        return encoded.translate(_TO_URLSAFE).rstrip(b"=").decode("ascii")

    def _nonce_issued(self, nonce: str) -> float | None:
        """The issue time of a nonce we made, or None if it is not ours."""
        if not nonce.isascii() or len(nonce) > 64:
            return None
        try:
            padded = (nonce + "=" * (-len(nonce) % 4)).translate(_FROM_URLSAFE)
            raw = binascii.a2b_base64(padded, strict_mode=True)  # what b64decode(validate=True) does
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _NONCE_LEN:
            return None
        body, mac = raw[: _NONCE_STRUCT.size], raw[_NONCE_STRUCT.size :]
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        issued: float = _NONCE_STRUCT.unpack(body)[0]
        return issued

    def challenge(self, now: float, *, stale: bool = False) -> list[str]:
        """Header values for a 401/407: one per algorithm, strongest first (RFC 8760 §2.4)."""
        nonce = self.make_nonce(now)
        return [head + nonce + tail for head, tail in self._templates[stale]]

    def verify(
        self,
        method: str,
        credentials: str | Credentials,
        lookup: SecretLookup,
        now: float,
        *,
        body: bytes = b"",
        request_uri: str | None = None,
    ) -> AuthResult:
        """Check one request's credentials; never raises on bad input.

        An unknown user and a wrong password give the same INVALID result after the same amount
        of hashing, so neither the result nor its timing tells a caller which usernames exist.
        ``request_uri``, when given, must equal the credentials' uri (RFC 2617 §3.2.2.5); leave it
        None where a proxy may have rewritten the Request-URI.
        """
        if isinstance(credentials, str):
            try:
                credentials = Credentials.parse(credentials)
            except DigestError:
                return _MALFORMED
        c = credentials
        invalid = _INVALID
        if c.realm != self.realm or c.algorithm not in self.algorithms:
            return invalid
        if request_uri is not None and c.uri != request_uri:
            return invalid
        if c.qop is None:
            if not self.allow_rfc2069 or c.algorithm.is_session:
                return invalid
        elif c.qop not in self.qop or c.nc is None or not _NC.fullmatch(c.nc) or c.cnonce is None:
            return invalid
        issued = self._nonce_issued(c.nonce)
        if issued is None:
            return invalid  # forged, or minted for another realm or secret
        try:
            secret = lookup(c.username, self.realm, c.algorithm.base)
            if isinstance(secret, HA1):
                ha1 = secret.value.lower()
            else:
                # Unknown users are hashed too, against a password nobody has.
                password = secret.value if isinstance(secret, Password) else self._entropy(16).hex()
                ha1 = compute_ha1(c.username, self.realm, password, c.algorithm)
            expected = compute_response(
                algorithm=c.algorithm,
                ha1=ha1,
                nonce=c.nonce,
                method=method,
                uri=c.uri,
                qop=c.qop,
                nc=c.nc,
                cnonce=c.cnonce,
                body=body,
            )
        except (DigestError, UnicodeEncodeError):
            return invalid
        given = c.response.lower().encode("utf-8", "replace")
        if not hmac.compare_digest(expected.encode("ascii"), given) or secret is None:
            return invalid
        # Only a right answer earns stale=true (RFC 2617 §3.2.1), so it never helps a guesser.
        if not 0.0 <= now - issued <= self.nonce_lifetime:
            return _STALE
        # RFC 7616 §3.4: nc must grow per nonce. Without qop there is no nc: the nonce is single use.
        # A reused nc is refused as STALE: an eavesdropper gains nothing from a fresh nonce, and a
        # client that raced itself on one nonce recovers without prompting its user.
        nc = int(c.nc, 16) if c.nc is not None else 1
        last = self._nc.get(c.nonce)
        if last is None and issued <= self._forgotten_upto:
            return _STALE  # evicted: we can no longer vouch for its nc
        if last is not None and nc <= last:
            return _STALE
        self._remember(c.nonce, nc, issued)
        return AuthResult(AuthOutcome.OK, c.username)

    def _remember(self, nonce: str, nc: int, issued: float) -> None:
        self._nc[nonce] = nc
        self._nc.move_to_end(nonce)
        while len(self._nc) > self._max:
            old, _ = self._nc.popitem(last=False)
            old_issued = self._nonce_issued(old)
            if old_issued is not None:
                self._forgotten_upto = max(self._forgotten_upto, old_issued)


# --------------------------------------------------------------------------------------------- client

_ALL_ALGORITHMS = tuple(Algorithm)


def select_challenge(challenges: str | Iterable[str], algorithms: Sequence[Algorithm] = _ALL_ALGORITHMS) -> Challenge:
    """The strongest challenge we can answer; ties keep the server's order (RFC 8760 §2.4).

    Challenges that do not parse or name an algorithm outside ``algorithms`` are skipped, as
    RFC 7616 §3.7 asks of clients.
    """
    values = [challenges] if isinstance(challenges, str) else list(challenges)
    best: Challenge | None = None
    for value in values:
        try:
            ch = Challenge.parse(value)
        except DigestError:
            continue
        if ch.algorithm in algorithms and (best is None or ch.algorithm.strength > best.algorithm.strength):
            best = ch
    if best is None:
        raise DigestError("no usable Digest challenge")
    return best


def _choose_qop(ch: Challenge) -> str | None:
    if not ch.qop:
        return None
    for qop in ("auth", "auth-int"):
        if qop in ch.qop:
            return qop
    raise DigestError(f"no supported qop in {ch.qop!r}")


def answer_challenge(
    challenges: str | Iterable[str] | Challenge,
    method: str,
    uri: str,
    username: str,
    password: str,
    *,
    cnonce: str,
    nc: int = 1,
    body: bytes = b"",
    algorithms: Sequence[Algorithm] = _ALL_ALGORITHMS,
) -> str:
    """The ``Authorization`` value answering the strongest usable challenge (RFC 7616 §3.4)."""
    ch = challenges if isinstance(challenges, Challenge) else select_challenge(challenges, algorithms)
    qop = _choose_qop(ch)
    if not 0 < nc <= 0xFFFFFFFF:
        raise DigestError("nc out of range")
    nc_text = f"{nc:08x}" if qop else None
    used_cnonce = cnonce if qop else None
    ha1 = compute_ha1(username, ch.realm, password, ch.algorithm)
    response = compute_response(
        algorithm=ch.algorithm,
        ha1=ha1,
        nonce=ch.nonce,
        method=method,
        uri=uri,
        qop=qop,
        nc=nc_text,
        cnonce=used_cnonce,
        body=body,
    )
    creds = Credentials(
        username=username,
        realm=ch.realm,
        nonce=ch.nonce,
        uri=uri,
        response=response,
        algorithm=ch.algorithm,
        qop=qop,
        nc=nc_text,
        cnonce=used_cnonce,
        opaque=ch.opaque,
    )
    return str(creds)


class DigestClient:
    """A UAC's credentials plus the nonce-counts it has used, so a nonce can be reused with nc+1."""

    def __init__(
        self,
        username: str,
        password: str,
        *,
        algorithms: Sequence[Algorithm] = _ALL_ALGORITHMS,
        cnonce_source: Callable[[], str] = lambda: os.urandom(12).hex(),
        max_nonces: int = 64,
    ) -> None:
        self.username = username
        self._password = password
        self.algorithms = tuple(algorithms)
        self._cnonce = cnonce_source
        self._max = max_nonces
        self._nc: OrderedDict[str, int] = OrderedDict()  # nonce -> last nc sent
        self._last: Challenge | None = None

    def authorize(self, challenges: str | Iterable[str], method: str, uri: str, *, body: bytes = b"") -> str:
        """Answer the challenge header values of a 401/407."""
        self._last = select_challenge(challenges, self.algorithms)
        return self._answer(self._last, method, uri, body)

    def reauthorize(self, method: str, uri: str, *, body: bytes = b"") -> str | None:
        """Credentials for a new request on the last nonce (e.g. a re-REGISTER), or None."""
        return None if self._last is None else self._answer(self._last, method, uri, body)

    def _answer(self, ch: Challenge, method: str, uri: str, body: bytes) -> str:
        nc = self._nc.get(ch.nonce, 0) + 1
        self._nc[ch.nonce] = nc
        self._nc.move_to_end(ch.nonce)
        while len(self._nc) > self._max:
            self._nc.popitem(last=False)
        return answer_challenge(ch, method, uri, self.username, self._password, cnonce=self._cnonce(), nc=nc, body=body)
