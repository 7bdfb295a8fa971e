"""AWS Signature Version 4 for request headers: enough to call Polly without botocore.

Reference: AWS General Reference, "Create a signed AWS API request" (canonical request, string to
sign, derived signing key, Authorization header). Checked against the SigV4 test suite's
get-vanilla family and the IAM ListUsers example (tests/voice_tts/vectors/aws_sigv4.json).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class AwsCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _uri_encode(value: str, *, keep_slash: bool = False) -> str:
    # RFC 3986 unreserved characters stay; everything else is %XX (uppercase), spaces included.
    return quote(value, safe="-_.~" + ("/" if keep_slash else ""))


def canonical_query(query: str) -> str:
    pairs = [(_uri_encode(k), _uri_encode(v)) for k, v in parse_qsl(query, keep_blank_values=True)]
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """(canonical header block, signed header list), names lowercased, values trimmed, sorted."""
    norm = {k.lower().strip(): re.sub(r"\s+", " ", v.strip()) for k, v in headers.items()}
    names = sorted(norm)
    return "".join(f"{n}:{norm[n]}\n" for n in names), ";".join(names)


def canonical_request(method: str, url: str, headers: Mapping[str, str], payload_hash: str) -> tuple[str, str]:
    """(canonical request, signed headers). Path segments are encoded once (non-S3 services)."""
    parts = urlsplit(url)
    block, signed = canonical_headers(headers)
    path = _uri_encode(parts.path or "/", keep_slash=True)
    return "\n".join([method.upper(), path, canonical_query(parts.query), block, signed, payload_hash]), signed


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def sign_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    payload: bytes,
    credentials: AwsCredentials,
    *,
    region: str,
    service: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """Returns `headers` plus Host, X-Amz-Date, the session token if any, and Authorization.

    Every header passed in is signed, so pass only those that will be sent unchanged.
    """
    when = (now or datetime.now(UTC)).astimezone(UTC)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    out = dict(headers)
    lower = {k.lower() for k in out}
    if "host" not in lower:
        out["Host"] = urlsplit(url).netloc
    out["X-Amz-Date"] = amz_date
    if credentials.session_token:
        out["X-Amz-Security-Token"] = credentials.session_token
    creq, signed = canonical_request(method, url, out, hashlib.sha256(payload).hexdigest())
    scope = f"{date}/{region}/{service}/aws4_request"
    sts = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    signature = hmac.new(
        signing_key(credentials.secret_access_key, date, region, service), sts.encode(), hashlib.sha256
    ).hexdigest()
    out["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    return out
