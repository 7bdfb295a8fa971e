"""Client-side digest over the stack: send a request and, when challenged, answer with credentials.

RFC 3261 §22.2/§22.3: on a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate) the UAC resends the
request with the same Call-ID, a higher CSeq, a new branch and an Authorization (or
Proxy-Authorization) header answering the challenge. A second challenge after credentials means the
credentials are wrong, unless it says `stale=true` (RFC 2617 §3.2.1), which earns one more try.
"""

from __future__ import annotations

from collections.abc import Callable

from voxswitch.sip.digest import DigestClient, DigestError
from voxswitch.sip.message import Request, Response
from voxswitch.sip.stack import SipStack
from voxswitch.sip.transaction import Target

BuildRequest = Callable[[int, str], Request]  # (cseq, via) -> a request without credentials


async def request_with_digest(
    stack: SipStack,
    build: BuildRequest,
    target: Target,
    credentials: DigestClient | None,
    *,
    first_cseq: int = 1,
    transport: str | None = None,
    on_provisional: Callable[[Response], None] | None = None,
) -> tuple[Response, int]:
    """The final response and the CSeq it answered. Challenges are answered at most twice."""
    cseq = first_cseq
    request = build(cseq, stack.via(transport or target.transport))
    response = await stack.request(request, target, on_provisional=on_provisional)
    for _ in range(2):
        if response.status not in (401, 407) or credentials is None:
            break
        header, answer = (
            ("www-authenticate", "Authorization")
            if response.status == 401
            else ("proxy-authenticate", "Proxy-Authorization")
        )
        challenges = response.get_all(header)
        stale = any("stale=true" in c.replace(" ", "").lower() for c in challenges)
        if cseq != first_cseq and not stale:
            break  # our credentials were refused
        try:
            authorization = credentials.authorize(challenges, request.method, str(request.uri), body=request.body)
        except DigestError:
            break  # no challenge we can answer (e.g. an algorithm we lack)
        cseq += 1
        request = build(cseq, stack.via(transport or target.transport))
        request.add(answer, authorization)
        response = await stack.request(request, target, on_provisional=on_provisional)
    return response, cseq
