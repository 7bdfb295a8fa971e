"""Helpers for the dialog tests: RFC vectors from files, and the wire round trip every built request survives."""

from __future__ import annotations

import itertools
from pathlib import Path

from voxswitch.sip.message import Request, Response, SipMessage, parse_message, validate

VECTORS = Path(__file__).parent / "vectors"
RFC3261 = Path(__file__).parent.parent / "sip" / "corpus" / "rfc3261"

_branches = itertools.count(1)


def load(name: str) -> SipMessage:
    """A vector from this folder, or an RFC 3261 §24 message (``24.2-...``) from the byte-checked corpus."""
    folder = RFC3261 if name.startswith("24.") else VECTORS
    msg = parse_message((folder / name).read_bytes())
    validate(msg)
    return msg


def load_request(name: str) -> Request:
    msg = load(name)
    assert isinstance(msg, Request)
    return msg


def load_response(name: str) -> Response:
    msg = load(name)
    assert isinstance(msg, Response)
    return msg


def wire(msg: SipMessage) -> SipMessage:
    """Serialise, parse and validate: proof that a built message is well-formed on the wire."""
    parsed = parse_message(msg.to_bytes())
    validate(parsed)
    assert parsed.to_bytes() == msg.to_bytes()
    return parsed


def wire_request(req: Request) -> Request:
    parsed = wire(req)
    assert isinstance(parsed, Request)
    assert parsed.method == req.method
    return parsed


def via(host: str = "client.atlanta.example.com:5060", transport: str = "UDP") -> str:
    """A Via value with a fresh branch, as the transport shell would supply it."""
    return f"SIP/2.0/{transport} {host};branch=z9hG4bKtest{next(_branches)}"
