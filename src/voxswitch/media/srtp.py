"""SRTP with SDES keys (RFC 3711, RFC 4568), sans-I/O: bytes in, bytes out, failures counted.

Theory of operation
-------------------
SDES (RFC 4568) puts each side's *sending* key in its SDP: the ``a=crypto`` line we offer or
answer carries the key we protect with, the peer's line the key we unprotect with (§6.1). So one
leg's :class:`SrtpContext` holds two libsrtp sessions (via ``pylibsrtp``): an outbound one from
our key and an inbound one from the peer's, each accepting any SSRC (a relay forwards the other
leg's SSRC, and a peer may change its own).

* :func:`make_crypto` / :func:`local_crypto` make our key material: a fresh master key and salt
  per line from :mod:`secrets`, as ``inline:`` base64 of key‖salt (§6.1, §9.1).
* :func:`parse_key` turns a peer's :class:`~voxswitch.sip.sdp.Crypto` into an :class:`SdesKey`,
  or raises :class:`SrtpError` naming what we cannot honour: an unknown suite, a key of the wrong
  length, several master keys, a key derivation rate, unencrypted or unauthenticated SRTP (§6.3).
  A lifetime is honoured (the key is refused once that many packets came under it, §6.1) and so
  is one MKI (checked and removed before libsrtp sees the packet, RFC 3711 §3.1).
* :class:`SrtpContext` protects and unprotects RTP and RTCP. The hot path never raises: a packet
  that fails authentication or the replay check, or cannot be processed at all, comes back as
  ``None`` and is counted in :class:`SrtpStats`.

pylibsrtp 1.0 exposes libsrtp's AES_CM_128_HMAC_SHA1_80/_32 and AEAD_AES_128_GCM/_256_GCM
(RFC 7714) profiles; AES_192/256_CM (RFC 6188) and F8 are not reachable through it, so
:func:`parse_key` refuses them like any unknown suite.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import InitVar, asdict, dataclass, field

import pylibsrtp

from voxswitch.sip import sdp

__all__ = [
    "DEFAULT_SUITES",
    "SUITES",
    "SdesKey",
    "SrtpContext",
    "SrtpError",
    "SrtpStats",
    "Suite",
    "context_for",
    "local_crypto",
    "make_crypto",
    "parse_key",
]


class SrtpError(ValueError):
    """A crypto line we cannot honour (the answer to such an offer is 488, RFC 4568 §7.1.2)."""


@dataclass(frozen=True, slots=True)
class Suite:
    """An RFC 4568 §6.2 / RFC 7714 §14.1 crypto suite and the libsrtp profile that implements it."""

    name: str
    profile: int
    key_length: int  # master key, bytes
    salt_length: int  # master salt, bytes
    rtp_tag: int  # authentication tag on SRTP packets, bytes
    max_lifetime: int  # packets one master key may protect (RFC 3711 §9.2: 2^48 SRTP)

    @property
    def master_length(self) -> int:
        return self.key_length + self.salt_length


_P = pylibsrtp.Policy
SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite("AES_CM_128_HMAC_SHA1_80", _P.SRTP_PROFILE_AES128_CM_SHA1_80, 16, 14, 10, 2**48),
        Suite("AES_CM_128_HMAC_SHA1_32", _P.SRTP_PROFILE_AES128_CM_SHA1_32, 16, 14, 4, 2**48),
        Suite("AEAD_AES_128_GCM", _P.SRTP_PROFILE_AEAD_AES_128_GCM, 16, 12, 16, 2**48),
        Suite("AEAD_AES_256_GCM", _P.SRTP_PROFILE_AEAD_AES_256_GCM, 32, 12, 16, 2**48),
    )
}
# What we offer, best first. AES_CM_128_HMAC_SHA1_80 leads: every SDES peer must implement it
# (RFC 4568 §6.2.1), and an answerer takes the first line it supports.
DEFAULT_SUITES: tuple[str, ...] = (
    "AES_CM_128_HMAC_SHA1_80",
    "AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM",
    "AES_CM_128_HMAC_SHA1_32",
)

_LIFETIME = re.compile(r"(2\^)?([0-9]{1,20})")
_MKI = re.compile(r"([0-9]{1,39}):([0-9]{1,3})")
_WSH = re.compile(r"WSH=([0-9]{1,9})")
_KDR = re.compile(r"KDR=([0-9]{1,2})")
_MIN_WINDOW, _MAX_WINDOW = 64, 0x7FFF  # libsrtp's replay window bounds


@dataclass(frozen=True, slots=True)
class SdesKey:
    """One side's sending key, as the context needs it."""

    suite: Suite
    master: bytes  # key ‖ salt (RFC 4568 §6.1)
    lifetime: int | None = None  # packets, when the line limits it below the suite's maximum
    mki: bytes | None = None  # the MKI as it appears in each packet
    window: int | None = None  # replay window from WSH=


def make_crypto(suite: str, tag: int) -> sdp.Crypto:
    """A fresh key for ``suite`` as our ``a=crypto`` line; no lifetime or MKI, so none to honour."""
    spec = SUITES.get(suite)
    if spec is None:
        raise SrtpError(f"crypto suite {suite} is not supported (have {', '.join(SUITES)})")
    key = base64.b64encode(secrets.token_bytes(spec.master_length)).decode("ascii")
    return sdp.Crypto(tag, spec.name, (sdp.KeyParam("inline", key),))


def local_crypto(suites: tuple[str, ...] | list[str] = DEFAULT_SUITES) -> tuple[sdp.Crypto, ...]:
    """Our SDES lines for an offer, tags 1..n in preference order (RFC 4568 §5.1.1)."""
    return tuple(make_crypto(s, tag) for tag, s in enumerate(suites, start=1))


def _decode_key(text: str, suite: Suite) -> bytes:
    padded = text + "=" * (-len(text) % 4)  # some peers drop base64 padding
    try:
        raw = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise SrtpError(f"inline key is not base64: {text!r}") from None
    if len(raw) != suite.master_length:
        raise SrtpError(
            f"{suite.name} needs {suite.master_length} bytes of key and salt, the inline key has {len(raw)}"
        )
    return raw


def _lifetime(text: str, suite: Suite) -> int | None:
    m = _LIFETIME.fullmatch(text)
    if m is None:
        raise SrtpError(f"bad key lifetime {text!r}")
    power = int(m.group(2))
    if m.group(1) and power > 64:
        raise SrtpError(f"bad key lifetime {text!r}")
    value = 2**power if m.group(1) else power
    if value == 0:
        raise SrtpError("key lifetime 0")
    return value if value < suite.max_lifetime else None  # the suite's own limit, libsrtp enforces it


def _mki(text: str) -> bytes:
    m = _MKI.fullmatch(text)
    if m is None:
        raise SrtpError(f"bad MKI {text!r}")
    value, length = int(m.group(1)), int(m.group(2))
    if not 1 <= length <= 128 or value >= 256**length:  # RFC 4568 §6.1: 1 to 128 bytes
        raise SrtpError(f"MKI {text!r} does not fit its length")
    return value.to_bytes(length, "big")


def parse_key(crypto: sdp.Crypto) -> SdesKey:
    """The peer's line as a key we can use, or :class:`SrtpError` saying what we cannot honour."""
    suite = SUITES.get(crypto.suite)
    if suite is None:
        raise SrtpError(f"crypto suite {crypto.suite} is not supported (have {', '.join(SUITES)})")
    if len(crypto.key_params) != 1:
        # RFC 4568 §6.1: several keys are told apart by MKI; libsrtp through pylibsrtp holds one.
        raise SrtpError(f"{len(crypto.key_params)} master keys in one line; one is supported")
    param = crypto.key_params[0]
    if param.method != "inline":
        raise SrtpError(f"key method {param.method!r} is not supported (only inline, RFC 4568 §6.1)")
    master = _decode_key(param.key, suite)
    lifetime = _lifetime(param.lifetime, suite) if param.lifetime is not None else None
    mki = None
    if param.mki is not None:
        if suite.name.startswith("AEAD_"):
            raise SrtpError("an MKI with an AEAD suite is not supported")
        mki = _mki(param.mki)
    window = None
    for p in crypto.session_params:  # RFC 4568 §6.3
        if (m := _WSH.fullmatch(p)) is not None:
            # §6.3.6 window size hint: at least 64; libsrtp's window tops out at 0x7fff.
            window = min(max(int(m.group(1)), _MIN_WINDOW), _MAX_WINDOW)
        elif (m := _KDR.fullmatch(p)) is not None:
            if int(m.group(1)) != 0:  # §6.3.1; libsrtp derives session keys once only
                raise SrtpError(f"{p}: a key derivation rate is not supported")
        elif p in ("FEC_ORDER=FEC_SRTP", "FEC_ORDER=SRTP_FEC"):
            pass  # §6.3.4: we send and take no FEC, so its order relative to SRTP is moot
        elif p in ("UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP", "UNAUTHENTICATED_SRTP"):
            raise SrtpError(f"{p} is not supported: media is always encrypted and authenticated here")
        else:
            raise SrtpError(f"session parameter {p!r} is not supported")
    return SdesKey(suite, master, lifetime, mki, window)


@dataclass(slots=True)
class SrtpStats:
    """What the context refused, by reason; ``unprotected`` counts what it let through."""

    protected: int = 0
    unprotected: int = 0
    auth_failures: int = 0
    replays: int = 0
    expired: int = 0  # past the peer key's lifetime, or libsrtp's key usage limit
    errors: int = 0  # anything else: too short, too long, wrong MKI, no key yet
    send_failures: int = 0  # packets we could not protect (e.g. a repeated sequence number)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


_AUTH_FAIL = pylibsrtp.ERRORS[7]
_REPLAY = frozenset({pylibsrtp.ERRORS[9], pylibsrtp.ERRORS[10]})
_EXPIRED = pylibsrtp.ERRORS[15]


def _session(key: SdesKey, ssrc_type: int) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(key=key.master, ssrc_type=ssrc_type, srtp_profile=key.suite.profile)
    if key.window is not None:
        policy.window_size = key.window
    return pylibsrtp.Session(policy)


@dataclass(eq=False)
class SrtpContext:
    """One leg's SRTP state: ``local`` is our line (we protect with it), ``remote`` the peer's.

    Build it with :func:`context_for` from the offer/answer outcome; give it to the leg's
    ``RtpEndpoint.srtp`` before the first packet can arrive. With ``previous`` (the leg's context
    before a re-INVITE), a direction whose key did not change keeps its libsrtp session: its
    rollover counter and replay window go on (RFC 3711 §3.3.1), and our sender never starts a
    key's packet index over, which would repeat keystream.
    """

    local: sdp.Crypto
    remote: sdp.Crypto
    stats: SrtpStats = field(default_factory=SrtpStats)
    previous: InitVar[SrtpContext | None] = None

    def __post_init__(self, previous: SrtpContext | None) -> None:
        mine, theirs = parse_key(self.local), parse_key(self.remote)
        if mine.suite is not theirs.suite:
            raise SrtpError(f"our key is {mine.suite.name} but the peer's is {theirs.suite.name}")
        if mine.mki is not None or mine.lifetime is not None:
            raise SrtpError("our own keys carry no MKI or lifetime")
        self.suite = mine.suite
        self._tx_key = (mine.suite.name, mine.master)
        self._rx_key = (theirs.suite.name, theirs.master, theirs.mki, theirs.window)
        if previous is not None and previous._tx_key == self._tx_key:
            self._tx = previous._tx
        else:
            self._tx = _session(mine, pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        self._mki = theirs.mki
        if previous is not None and previous._rx_key == self._rx_key:
            self._rx = previous._rx
            self._budget, self._rtcp_budget = previous._budget, previous._rtcp_budget
        else:
            self._rx = _session(theirs, pylibsrtp.Policy.SSRC_ANY_INBOUND)
            self._budget = theirs.lifetime  # RFC 4568 §6.1: packets the peer's key may still protect
            self._rtcp_budget = theirs.lifetime
        if previous is not None:
            self.stats = previous.stats

    def same_keys(self, local: sdp.Crypto | None, remote: sdp.Crypto | None) -> bool:
        """Whether a new offer/answer kept both keys, so this context (and its ROC) stays (§7.1.4)."""
        if local is None or remote is None:
            return False
        try:
            mine, theirs = parse_key(local), parse_key(remote)
        except SrtpError:
            return False
        return (mine.suite.name, mine.master) == self._tx_key and (
            theirs.suite.name,
            theirs.master,
            theirs.mki,
            theirs.window,
        ) == self._rx_key

    # sending -------------------------------------------------------------------------------------

    def protect_rtp(self, packet: bytes) -> bytes | None:
        try:
            out = self._tx.protect(packet)
        except (pylibsrtp.Error, ValueError, TypeError):
            self.stats.send_failures += 1
            return None
        self.stats.protected += 1
        return out

    def protect_rtcp(self, packet: bytes) -> bytes | None:
        try:
            out = self._tx.protect_rtcp(packet)
        except (pylibsrtp.Error, ValueError, TypeError):
            self.stats.send_failures += 1
            return None
        self.stats.protected += 1
        return out

    # receiving -----------------------------------------------------------------------------------

    def _strip_mki(self, packet: bytes, tag: int) -> bytes | None:
        """RFC 3711 §3.1: the MKI sits between the encrypted part and the authentication tag."""
        mki = self._mki
        assert mki is not None
        end = len(packet) - tag
        start = end - len(mki)
        if start < 12 or packet[start:end] != mki:
            return None
        return packet[:start] + packet[end:]

    def _refused(self, exc: Exception) -> None:
        reason = str(exc)
        if reason == _AUTH_FAIL:
            self.stats.auth_failures += 1
        elif reason in _REPLAY:
            self.stats.replays += 1
        elif reason == _EXPIRED:
            self.stats.expired += 1
        else:
            self.stats.errors += 1

    def unprotect_rtp(self, packet: bytes) -> bytes | None:
        """The plain RTP packet, or None (counted) when it must be dropped."""
        if self._mki is not None:
            stripped = self._strip_mki(packet, self.suite.rtp_tag)
            if stripped is None:
                self.stats.errors += 1
                return None
            packet = stripped
        if self._budget is not None:
            if self._budget <= 0:
                self.stats.expired += 1
                return None
        try:
            out = self._rx.unprotect(packet)
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            self._refused(exc)
            return None
        if self._budget is not None:
            self._budget -= 1
        self.stats.unprotected += 1
        return out

    def unprotect_rtcp(self, packet: bytes) -> bytes | None:
        if self._mki is not None:
            # SRTCP: E flag and index, then the MKI, then the 80-bit tag of every AES_CM suite
            # (RFC 3711 §3.4, RFC 4568 §6.2.2); parse_key refuses an MKI with AEAD suites.
            stripped = self._strip_mki(packet, 10)
            if stripped is None:
                self.stats.errors += 1
                return None
            packet = stripped
        if self._rtcp_budget is not None:
            if self._rtcp_budget <= 0:
                self.stats.expired += 1
                return None
        try:
            out = self._rx.unprotect_rtcp(packet)
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            self._refused(exc)
            return None
        if self._rtcp_budget is not None:
            self._rtcp_budget -= 1
        self.stats.unprotected += 1
        return out


def context_for(negotiated: sdp.Negotiated | None, current: SrtpContext | None = None) -> SrtpContext | None:
    """The context an offer/answer outcome calls for: None for plain RTP, ``current`` when the
    keys did not change (RFC 4568 §7.1.4: a re-INVITE may keep them), else a new one that keeps
    ``current``'s session for a direction whose key stayed. Raises :class:`SrtpError` if the
    agreed lines cannot be honoured.
    """
    if negotiated is None or negotiated.remote_crypto is None or negotiated.local_crypto is None:
        return None
    if current is not None and current.same_keys(negotiated.local_crypto, negotiated.remote_crypto):
        return current
    return SrtpContext(negotiated.local_crypto, negotiated.remote_crypto, previous=current)
