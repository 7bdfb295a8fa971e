"""Mid-call offer/answer for either kind of leg: answering a peer's re-INVITE, and sending our own
(RFC 3261 §14, RFC 3264 §8). Hold is a re-offer with sendonly/inactive (RFC 3264 §8.4); a B2BUA
passes the hold on to the other leg so both phones show it.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Protocol

from voxswitch.media.endpoint import RtpEndpoint
from voxswitch.sip import sdp
from voxswitch.sip.dialog import Dialog
from voxswitch.sip.message import Request, Response, build_response
from voxswitch.sip.stack import RequestFailed, SipStack
from voxswitch.sip.transaction import ServerTransaction, Target


class MediaLeg(Protocol):
    stack: SipStack
    dialog: Dialog | None
    endpoint: RtpEndpoint
    advertised_host: str
    local_sdp: sdp.SessionDescription | None
    sdp_codec: sdp.Codec
    awaiting_ack: asyncio.Event

    @property
    def peer_target(self) -> Target: ...

    def contact(self) -> str: ...


def _local(leg: MediaLeg, direction: sdp.Direction = sdp.Direction.SENDRECV) -> sdp.LocalMedia:
    return sdp.LocalMedia(leg.advertised_host, leg.endpoint.local_port, (leg.sdp_codec,), direction=direction)


async def retransmit_2xx(stack: SipStack, response: Response, target: Target, acked: asyncio.Event) -> bool:
    """§13.3.1.4: over UDP the UAS core repeats its 2xx (T1, doubling to T2) until the ACK; True if it came."""
    timers = stack.layer.timers
    interval, waited = timers.t1, 0.0
    while not acked.is_set() and waited < timers.b:
        step = interval if not target.reliable else timers.b
        try:
            await asyncio.wait_for(acked.wait(), step)
        except TimeoutError:
            waited += step
            if not target.reliable:
                stack.send_stateless(response, target)
                interval = min(interval * 2, timers.t2)
    return acked.is_set()


async def answer_reinvite(leg: MediaLeg, txn: ServerTransaction, request: Request) -> sdp.Negotiated | None:
    """Answer a peer's re-INVITE with an SDP answer; the new media terms (None without an offer)."""
    if not request.body:  # an offerless re-INVITE: offer our current terms (§14.2), answer in the ACK
        offer = sdp.build_offer(_local(leg), session_id=secrets.randbelow(10**9), previous=leg.local_sdp)
        body, negotiated = offer.to_bytes(), None
    else:
        try:
            answer, negotiated = sdp.answer(
                sdp.parse(request.body), _local(leg), session_id=secrets.randbelow(10**9), previous=leg.local_sdp
            )
        except sdp.SdpError:
            leg.stack.respond(txn, build_response(request, 488, "Not Acceptable Here"))
            return None
        body = answer.to_bytes()
        leg.local_sdp = answer
    response = build_response(
        request, 200, headers=[("Contact", leg.contact()), ("Content-Type", "application/sdp")], body=body
    )
    response.add("Content-Length", str(len(body)))
    leg.awaiting_ack = asyncio.Event()
    leg.stack.respond(txn, response)
    if leg.dialog is not None:
        leg.dialog.responded(request, response)
    asyncio.get_running_loop().create_task(retransmit_2xx(leg.stack, response, leg.peer_target, leg.awaiting_ack))
    return negotiated


async def reinvite(leg: MediaLeg, direction: sdp.Direction) -> sdp.Negotiated | None:
    """Re-offer our media with `direction` (hold: sendonly; resume: sendrecv); the peer's terms."""
    dialog = leg.dialog
    if dialog is None or dialog.terminated or dialog.invite_pending:
        return None
    offer = sdp.build_offer(_local(leg, direction), session_id=secrets.randbelow(10**9), previous=leg.local_sdp)
    request = dialog.reinvite(leg.stack.via(leg.peer_target.transport), offer.to_bytes())
    try:
        response = await leg.stack.request(request, leg.peer_target)
    except RequestFailed:
        dialog.request_timed_out(request)
        return None
    dialog.receive_response(request, response)
    if 200 <= response.status < 300:
        leg.stack.send_stateless(dialog.ack(request, leg.stack.via(leg.peer_target.transport)), leg.peer_target)
        leg.local_sdp = offer
        try:
            return sdp.process_answer(offer, sdp.parse(response.body))
        except sdp.SdpError:
            return None
    return None
