"""Registrar rules of RFC 3261 §10.3, sans-I/O: a REGISTER plus the AOR's bindings in, changes out.

`process_register` takes the request (already authenticated as the AOR's owner), the bindings the
store holds, and `now`; it returns the bindings to write and to delete, and the response to send,
or a `RegistrarError` with the status the RFC asks for (423 with Min-Expires, 400 for a bad `*`,
500 for an out-of-order CSeq). Storage and caching are the caller's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voxswitch.sip.headers import NameAddr
from voxswitch.sip.message import Request, Response, build_response


@dataclass(frozen=True, slots=True)
class Binding:
    contact: str  # the Contact URI, as registered
    expires_at: float
    call_id: str
    cseq: int
    q: float | None = None
    source_host: str = ""
    source_port: int = 0
    transport: str = "UDP"
    user_agent: str = ""
    instance_id: str | None = None

    def remaining(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))


@dataclass(frozen=True, slots=True)
class RegistrarPolicy:
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts: int = 10


@dataclass
class RegistrarError(Exception):
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class RegisterOutcome:
    keep: list[Binding]  # every live binding after the request, written or unchanged
    upserts: list[Binding]
    removals: list[str]  # contact URIs
    response: Response


def _contact_key(addr: NameAddr) -> str:
    # §10.3 step 7 compares Contact URIs with §19.1.4 URI equality; parameters of the header
    # (expires, q, +sip.instance) are not part of the URI.
    return str(addr.uri)


def process_register(
    request: Request,
    bindings: list[Binding],
    now: float,
    *,
    source_host: str,
    source_port: int,
    transport: str,
    policy: RegistrarPolicy | None = None,
    to_tag: str | None = None,
) -> RegisterOutcome:
    p = policy or RegistrarPolicy()
    live = {b.contact: b for b in bindings if b.expires_at > now}
    call_id, cseq = request.call_id, request.cseq.seq
    upserts: list[Binding] = []
    removals: list[str] = []

    if request.contact_is_wildcard:  # §10.3 step 6: `*` with Expires 0 removes every binding
        for b in live.values():
            if b.call_id == call_id and b.cseq >= cseq:
                raise RegistrarError(500, "Server Internal Error - Out of Order CSeq")
        removals = list(live)
        live = {}
    else:
        header_expires = request.expires
        user_agent = (request.get("user-agent") or "")[:255]
        for addr in request.contact:
            expires = addr.expires if addr.expires is not None else header_expires
            if expires is None:
                expires = p.default_expires
            if 0 < expires < p.min_expires:  # §10.3 step 7 / §21.4.17: 423 names the minimum
                raise RegistrarError(423, "Interval Too Brief", [("Min-Expires", str(p.min_expires))])
            expires = min(expires, p.max_expires)
            key = _contact_key(addr)
            existing = live.get(key)
            if existing is not None and existing.call_id == call_id and existing.cseq >= cseq:
                raise RegistrarError(500, "Server Internal Error - Out of Order CSeq")
            if expires == 0:
                if existing is not None:
                    removals.append(key)
                    del live[key]
                continue
            binding = Binding(
                contact=key,
                expires_at=now + expires,
                call_id=call_id,
                cseq=cseq,
                q=addr.q,
                source_host=source_host,
                source_port=source_port,
                transport=transport,
                user_agent=user_agent,
                instance_id=addr.params.get("+sip.instance") if addr.params else None,
            )
            live[key] = binding
            upserts.append(binding)
        if len(live) > p.max_contacts:
            raise RegistrarError(403, "Forbidden - Too Many Contacts")

    keep = sorted(live.values(), key=lambda b: -(b.q or 0.0))
    response = build_response(request, 200, to_tag=to_tag)
    for b in keep:  # §10.3 step 8: the 200 lists every current binding with its expiry
        q = f";q={b.q}" if b.q is not None else ""
        response.add("Contact", f"<{b.contact}>;expires={b.remaining(now)}{q}")
    return RegisterOutcome(keep=keep, upserts=upserts, removals=removals, response=response)
