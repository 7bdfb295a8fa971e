"""The leg of a call a peer places to us: we are the UAS of its INVITE (RFC 3261 §13.3).

The INVITE's offer is answered when the media opens (`prepare`), before anyone decides anything, so
an answer, early media or a bridge can follow at once. 180 and 183 (with our SDP, for early media)
go out on request; the 200 carries the answer and is repeated until the ACK (§13.3.1.4); a CANCEL
or a reject ends the leg with 487 or the status given. Late offers (an INVITE without SDP) are
refused with 488 for now.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from voxswitch.engine.leg import LegState
from voxswitch.engine.sip_leg import SipContext, SipLeg, retransmit_2xx
from voxswitch.media.session import MediaSession
from voxswitch.sip import sdp
from voxswitch.sip.message import Request, Response, build_response
from voxswitch.sip.transaction import ServerTransaction, Target
from voxswitch.sip.uri import SipUri

log = logging.getLogger(__name__)


class InboundSipLeg(SipLeg):
    def __init__(
        self,
        sip: SipContext,
        media: MediaSession,
        txn: ServerTransaction,
        invite: Request,
        source: Target,
        *,
        peer: str,
    ) -> None:
        super().__init__(sip, media, source, peer=peer, direction="inbound")
        self.txn, self.invite = txn, invite
        self.to_tag = f"vx{secrets.token_hex(6)}"
        self.acked = asyncio.Event()  # the ACK for our 200 came
        self.plan_answer: sdp.SessionDescription | None = None
        uri = invite.uri
        self.local_user = uri.user if isinstance(uri, SipUri) and uri.user else "voxswitch"
        self.learn_allow(invite)
        self._move(LegState.OFFERED)

    @property
    def key(self) -> tuple[str, str]:
        """How a CANCEL finds this leg before a dialog exists: (Call-ID, From tag)."""
        return (self.invite.call_id, self.invite.from_.tag or "")

    async def prepare(self) -> None:
        """Open an RTP port and answer the INVITE's offer (RFC 3264 §6); raises sdp.SdpError."""
        if not self.invite.body:
            raise sdp.NegotiationError("no SDP offer in the INVITE")
        offer = sdp.parse(self.invite.body)
        await self.media.open()
        answer, negotiated = self.answer_offer(offer)
        if negotiated is None:
            raise sdp.NegotiationError("no audio stream in the offer")
        self.plan_answer = self.local_sdp = answer
        self.apply(negotiated)

    def _respond(self, status: int, reason: str | None = None, *, with_sdp: bool = False) -> Response:
        headers = [("Contact", self.contact())]
        body = b""
        if with_sdp and self.plan_answer is not None:
            body = self.plan_answer.to_bytes()
            headers.append(("Content-Type", "application/sdp"))
        response = build_response(self.invite, status, reason, to_tag=self.to_tag, headers=headers, body=body)
        if body:
            response.add("Content-Length", str(len(body)))
        return response

    @property
    def _can_respond(self) -> bool:
        last = self.txn.last_response
        return not self.txn.terminated and (last is None or last.status < 200)

    def ring(self) -> None:
        if self._can_respond and self.state in (LegState.OFFERED, LegState.RINGING):
            self.stack.respond(self.txn, self._respond(180))
            self.on_ringing()

    def early_media(self) -> None:
        """183 Session Progress with our answer: the caller hears what we play before the answer."""
        if self._can_respond and self.state in (LegState.OFFERED, LegState.RINGING):
            self.stack.respond(self.txn, self._respond(183, with_sdp=True))
            self.on_ringing(early_media=True)

    async def answer(self) -> None:
        """200 OK with our SDP, repeated until the ACK (§13.3.1.4); no ACK in 64*T1 ends the leg."""
        if self.state in (LegState.ANSWERED, LegState.ENDED) or not self._can_respond:
            return
        response = self._respond(200, with_sdp=True)
        self.stack.respond(self.txn, response)
        self.dialog = self.sip.dialogs.respond(self.invite, response)
        if self.dialog is not None:
            self.dialog.user_data = self
        self.on_answered()
        self.awaiting_ack = self.acked
        if not await retransmit_2xx(self.stack, response, self.target, self.acked):
            await self.hangup("no ACK for 200 OK")

    def on_ack(self, request: Request) -> None:
        self.acked.set()
        super().on_ack(request)

    def reject(self, status: int = 480, reason: str | None = None, *, cause: str | None = None) -> None:
        if self._can_respond:
            self.stack.respond(self.txn, self._respond(status, reason))
        self.finish(cause or reason or f"rejected {status}", status)

    def on_cancel(self) -> None:
        """§9.2: the INVITE is answered 487 and the leg ends."""
        if self._can_respond:
            self.stack.respond(self.txn, self._respond(487, "Request Terminated"))
        self.finish("cancelled by caller", 487)

    async def hangup(self, cause: str = "normal clearing") -> None:
        if self.state is LegState.ENDED:
            return
        if self.dialog is not None:
            await self.bye(cause)
            self.finish(cause)
        else:
            self.reject(480, "Temporarily Unavailable", cause=cause)
