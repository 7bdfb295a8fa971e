"""Check an HTTP Digest ``Authorization`` as a SIP registrar would (RFC 2617, RFC 7616, RFC 8760).

SIPp 3.6 can only verify MD5 (``<verifyauth>``); tests that challenge a peer with SHA-256 or
SHA-512-256 let the peer answer a SIPp scenario, take the ``Authorization`` header from SIPp's
message log and check it here. Written from the RFCs, independent of ``voxswitch.sip``.
"""

from __future__ import annotations

import hashlib
import re

_ALGORITHMS = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]+)\s*,?')


def parse_digest(value: str) -> dict[str, str]:
    """The parameters of a ``Digest ...`` header value, names lower-cased, quotes removed."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise ValueError(f"not a Digest credential/challenge: {value!r}")
    params: dict[str, str] = {}
    for name, raw in _PARAM.findall(rest):
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[name.lower()] = raw
    return params


def _hash(algorithm: str, data: str) -> str:
    return hashlib.new(algorithm, data.encode()).hexdigest()


def expected_response(params: dict[str, str], method: str, password: str, body: str = "") -> str:
    """The ``response`` a client knowing ``password`` computes for these Authorization params."""
    name = params.get("algorithm", "MD5").upper()
    sess = name.endswith("-SESS")
    base = name.removesuffix("-SESS")
    if base not in _ALGORITHMS:
        raise ValueError(f"unsupported digest algorithm {name}")
    h = _ALGORITHMS[base]
    ha1 = _hash(h, f"{params['username']}:{params['realm']}:{password}")
    if sess:
        ha1 = _hash(h, f"{ha1}:{params['nonce']}:{params['cnonce']}")
    qop = params.get("qop", "")
    a2 = f"{method}:{params['uri']}"
    if qop == "auth-int":
        a2 += ":" + _hash(h, body)
    ha2 = _hash(h, a2)
    if qop:
        return _hash(h, f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:{qop}:{ha2}")
    return _hash(h, f"{ha1}:{params['nonce']}:{ha2}")


def verify_authorization(
    value: str,
    method: str,
    password: str,
    *,
    username: str | None = None,
    realm: str | None = None,
    algorithm: str | None = None,
    body: str = "",
) -> bool:
    """True when Authorization ``value`` proves ``password`` (and matches the optional fields)."""
    params = parse_digest(value)
    if username is not None and params.get("username") != username:
        return False
    if realm is not None and params.get("realm") != realm:
        return False
    if algorithm is not None and params.get("algorithm", "MD5").upper() != algorithm.upper():
        return False
    return params.get("response", "").lower() == expected_response(params, method, password, body)
