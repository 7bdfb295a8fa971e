"""The caller side of a leg: Voxswitch places an INVITE (to a registered device, later a trunk).

Offer, wait for the answer (ringing reported, CANCEL on timeout), ACK the 2xx end to end
(§13.2.2.4, and again for each retransmitted 2xx), BYE both ways. Media is the same
`RtpEndpoint` as the callee leg, so two legs with one codec can relay to each other untouched.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator

import numpy as np

from voxswitch.engine.sip_leg import Player
from voxswitch.media.clock import MediaClock
from voxswitch.media.codecs import G711Codec
from voxswitch.media.endpoint import RtpEndpoint
from voxswitch.media.ports import RtpPortAllocator
from voxswitch.sip import sdp
from voxswitch.sip.dialog import Dialog, DialogSet, build_cancel
from voxswitch.sip.message import Request, Response, build_response
from voxswitch.sip.stack import RequestFailed, SipStack
from voxswitch.sip.transaction import ServerTransaction, Target

log = logging.getLogger(__name__)


class OutboundLeg:
    def __init__(
        self,
        stack: SipStack,
        dialogs: DialogSet,
        ports: RtpPortAllocator,
        target: Target,
        request_uri: str,
        *,
        caller: str,
        callee: str,
        advertised_host: str,
        codecs: tuple[sdp.Codec, ...],
    ) -> None:
        self.stack, self.dialogs, self.ports, self.target = stack, dialogs, ports, target
        self.request_uri, self.caller, self.callee = request_uri, caller, callee
        self.advertised_host = advertised_host
        self.codecs = codecs
        self.endpoint = RtpEndpoint(payload_type=0)
        self.dialog: Dialog | None = None
        self.invite: Request | None = None
        self.ack: Request | None = None
        self.ringing = asyncio.Event()
        self.ended = asyncio.Event()
        self.end_cause: str | None = None
        self.local_sdp: sdp.SessionDescription | None = None
        self.sdp_codec = codecs[0]
        self.awaiting_ack = asyncio.Event()
        self.partner: object | None = None
        self.negotiated: sdp.Negotiated | None = None
        # what an app needs to speak and listen on this leg (see engine/apps.py)
        self.clock: MediaClock | None = None
        self.codec = G711Codec("PCMU")
        self.digits: asyncio.Queue[str] = asyncio.Queue()

    @property
    def peer_target(self) -> Target:
        return self.target

    def contact(self) -> str:
        host, port = self.stack.transport.listen.get(self.target.transport.upper(), (self.advertised_host, 5060))
        host = self.advertised_host if host in ("0.0.0.0", "::") else host
        return f"<sip:{self.caller}@{host}:{port}>"

    def _invite(self, offer: bytes) -> Request:
        host, port = self.stack.transport.listen.get(self.target.transport.upper(), (self.advertised_host, 5060))
        host = self.advertised_host if host in ("0.0.0.0", "::") else host
        return Request(
            "INVITE",
            self.request_uri,
            [
                ("Via", self.stack.via(self.target.transport)),
                ("Max-Forwards", "70"),
                ("From", f"<sip:{self.caller}@{host}>;tag={secrets.token_hex(6)}"),
                ("To", f"<sip:{self.callee}@{host}>"),
                ("Call-ID", f"{secrets.token_hex(12)}@{host}"),
                ("CSeq", "1 INVITE"),
                ("Contact", f"<sip:{self.caller}@{host}:{port}>"),
                ("User-Agent", self.stack.user_agent),
                ("Content-Type", "application/sdp"),
                ("Content-Length", str(len(offer))),
            ],
            offer,
        )

    async def call(self, ring_for: float = 30.0) -> int:
        """Ring the callee; the final status (0 when nobody answered within `ring_for` seconds)."""
        rtp_sock, rtcp_sock = self.ports.allocate()
        await self.endpoint.open(rtp_sock, rtcp_sock)
        local = sdp.LocalMedia(self.advertised_host, self.endpoint.local_port, self.codecs, dtmf=True)
        offer = self.local_sdp = sdp.build_offer(local, session_id=secrets.randbelow(10**9))
        invite = self.invite = self._invite(offer.to_bytes())

        def provisional(response: Response) -> None:
            if response.status in (180, 183):
                self.ringing.set()

        request = asyncio.ensure_future(self.stack.request(invite, self.target, on_provisional=provisional))
        try:
            response = await asyncio.wait_for(asyncio.shield(request), ring_for)
        except TimeoutError:
            await self._cancel(invite)
            try:
                response = await asyncio.wait_for(request, 5)
            except (TimeoutError, RequestFailed):
                self._finish("no answer")
                return 0
            if response.status >= 300:
                self._finish("no answer")
                return 0
        except RequestFailed as exc:
            self._finish(f"INVITE failed: {exc.reason}")
            return 408 if exc.reason == "timeout" else 503
        if response.status >= 300:
            self._finish(f"{response.status} {response.reason}")
            return response.status
        self.dialog = self.dialogs.receive_response(invite, response)
        if self.dialog is not None:
            self.dialog.user_data = self
            self.ack = self.dialog.ack(invite, self.stack.via(self.target.transport))
            self.stack.send_stateless(self.ack, self.target)
        try:
            negotiated = sdp.process_answer(offer, sdp.parse(response.body))
        except sdp.SdpError as exc:
            await self.hangup(f"bad SDP answer: {exc}")
            return 488
        self.negotiated = negotiated
        if negotiated is not None:
            self.endpoint.remote = (negotiated.remote_address, negotiated.remote_port)
            self.endpoint.payload_type = self.endpoint.sender.payload_type = negotiated.codec.payload_type or 0
            if negotiated.codec.name.upper() in ("PCMU", "PCMA"):
                self.codec = G711Codec(negotiated.codec.name.upper())
        return response.status

    def play(self, frames: AsyncIterator[np.ndarray]) -> Player:
        """Speak on this leg (an app placed the call); paced by the shared media clock."""
        assert self.clock is not None, "an app leg needs the media clock"
        return Player(self, frames)  # type: ignore[arg-type]

    async def _cancel(self, invite: Request) -> None:
        cancel = build_cancel(invite)
        try:
            await self.stack.request(cancel, self.target)
        except RequestFailed:
            pass

    def resend_ack(self) -> None:
        """A retransmitted 2xx means our ACK was lost: send it again (§13.2.2.4)."""
        if self.ack is not None:
            self.stack.send_stateless(self.ack, self.target)

    async def hangup(self, cause: str = "normal clearing") -> None:
        if self.ended.is_set():
            return
        if self.dialog is not None and not self.dialog.terminated:
            bye = self.dialog.bye(self.stack.via(self.target.transport))
            try:
                await self.stack.request(bye, self.target)
            except RequestFailed:
                pass
        self._finish(cause)

    def on_ack(self) -> None:  # the ACK for our 2xx to the peer's re-INVITE
        self.awaiting_ack.set()

    def on_bye(self, txn: ServerTransaction, request: Request) -> None:
        self.stack.respond(txn, build_response(request, 200))
        self._finish("remote hangup")

    def _finish(self, cause: str) -> None:
        if self.ended.is_set():
            return
        self.end_cause = cause
        self.endpoint.close()
        if self.endpoint.local_port:
            self.ports.release(self.endpoint.local_port)
        if self.dialog is not None:
            self.dialog.terminate()
            self.dialogs.discard(self.dialog)
        self.ended.set()
