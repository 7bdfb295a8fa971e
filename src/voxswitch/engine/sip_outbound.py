"""The leg of a call we place: we are the UAC of its INVITE (RFC 3261 §13.2).

Offer our codecs (the partner's first, so a bridge can relay without transcoding), answer a
401/407 with credentials (a trunk, §22.2), report 180/183 as ringing (a 183 or 180 with SDP carries
early media, which is applied at once), CANCEL when the ring time runs out or the caller gives up
(§9.1), ACK the 2xx end to end (§13.2.2.4, again for each retransmitted 2xx), and ACK-then-BYE any
further 2xx a forking proxy delivers (`on_forked_2xx`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from voxswitch.engine.leg import LegState
from voxswitch.engine.sip_leg import SipContext, SipLeg
from voxswitch.media.session import MediaSession
from voxswitch.media.srtp_policy import may_fall_back, offer_crypto
from voxswitch.sip import sdp
from voxswitch.sip.client import request_with_digest
from voxswitch.sip.dialog import Dialog, build_cancel
from voxswitch.sip.digest import DigestClient
from voxswitch.sip.message import Request, Response
from voxswitch.sip.stack import RequestFailed
from voxswitch.sip.transaction import Target

log = logging.getLogger(__name__)

NO_ANSWER = 0  # the status `call` returns when the ring time ran out


@dataclass(frozen=True)
class Destination:
    """Where and how to send one INVITE: a registered contact, a trunk number, a SIP URI."""

    target: Target  # the next hop (for a registered device: where its REGISTER came from)
    request_uri: str
    to_uri: str
    label: str  # who this is, for records: a device username, a number
    from_user: str = "voxswitch"
    from_host: str | None = None  # our domain as the peer knows it (a trunk's realm); else our address
    display_name: str | None = None
    credentials: DigestClient | None = None
    kind: str = "device"  # "device", "trunk", "uri"


def _weakly(method: Callable[[Response], None]) -> Callable[[Response], None]:
    """`method`, without keeping its leg alive: the client transaction holds its provisional
    callback until it terminates, 32 s after the final response (RFC 6026 Timer M), and an ended
    leg (its session, SDP, messages) must not stay in memory for that long."""
    ref = weakref.WeakMethod(method)

    def call(response: Response) -> None:
        bound = ref()
        if bound is not None:
            bound(response)

    return call


class OutboundSipLeg(SipLeg):
    def __init__(
        self,
        sip: SipContext,
        media: MediaSession,
        destination: Destination,
        *,
        prefer: tuple[sdp.Codec, ...] = (),
    ) -> None:
        super().__init__(sip, media, destination.target, peer=destination.label, direction="outbound")
        self.destination = destination
        self.party = {"device": "device", "trunk": "trunk"}.get(destination.kind, "peer")
        self.local_user = destination.from_user
        self.invite: Request | None = None
        self.ack: Request | None = None
        self.offer: sdp.SessionDescription | None = None
        self._prefer = prefer
        self._call_id = f"{secrets.token_hex(12)}@{sip.advertised_host}"
        self._from_tag = secrets.token_hex(6)
        self._cancelled = False

    @property
    def key(self) -> tuple[str, str]:
        return (self._call_id, self._from_tag)

    def _codecs(self) -> tuple[sdp.Codec, ...]:
        first = [c for c in self._prefer if any(c.same_format(o) for o in self.sip.codecs)]
        rest = [c for c in self.sip.codecs if not any(c.same_format(f) for f in first)]
        return (*first, *rest)

    def _build(self, offer: bytes):  # type: ignore[no-untyped-def]
        d = self.destination
        host = d.from_host or self.sip.advertised_host
        name = f'"{d.display_name}" ' if d.display_name else ""

        def build(cseq: int, via: str) -> Request:
            invite = Request(
                "INVITE",
                d.request_uri,
                [
                    ("Via", via),
                    ("Max-Forwards", "70"),
                    ("From", f"{name}<sip:{d.from_user}@{host}>;tag={self._from_tag}"),
                    ("To", f"<{d.to_uri}>"),
                    ("Call-ID", self._call_id),
                    ("CSeq", f"{cseq} INVITE"),
                    ("Contact", self.contact()),
                    ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY"),
                    ("User-Agent", self.stack.user_agent),
                    ("Content-Type", "application/sdp"),
                    ("Content-Length", str(len(offer))),
                ],
                offer,
            )
            self.invite = invite
            return invite

        return build

    async def call(self, ring_for: float = 30.0) -> int:
        """Ring the destination; the final status (`NO_ANSWER` when the ring time ran out, 487 when
        `cancel` was called, 408/503 when the request failed)."""
        self._move(LegState.CALLING)
        try:
            await self.media.open()
        except Exception as exc:
            self.finish(f"media: {exc}", 503)
            return 503
        srtp = self.sip.srtp
        crypto = offer_crypto(srtp.mode, srtp.suites)
        cseq = 1
        while True:
            status, response = await self._invite_once(crypto, cseq, ring_for)
            if response is None or response.status < 300:
                break
            if crypto and may_fall_back(srtp.mode, srtp.fallback, response.status):
                log.info("the peer refused SRTP (%s): offering plain RTP", response.status)
                crypto, cseq = (), response.cseq.seq + 1  # a new INVITE, same dialog attempt (§8.1.3.5)
                continue
            cancelled = self._cancelled and response.status == 487
            self.finish("cancelled" if cancelled else f"{response.status} {response.reason}", response.status)
            return response.status
        if response is None:
            return status
        return await self._on_2xx(response)

    async def _invite_once(
        self, crypto: tuple[sdp.Crypto, ...], cseq: int, ring_for: float
    ) -> tuple[int, Response | None]:
        """One INVITE exchange (with its digest retry); the final response, or the status a failure
        or timeout ended the leg with (and None)."""
        offer = self.offer = self.local_sdp = sdp.build_offer(
            sdp.LocalMedia(self.sip.advertised_host, self.media.local_port, self._codecs(), dtmf=True, crypto=crypto),
            session_id=secrets.randbelow(10**9),
        )
        exchange = asyncio.ensure_future(
            request_with_digest(
                self.stack,
                self._build(offer.to_bytes()),
                self.target,
                self.destination.credentials,
                first_cseq=cseq,
                on_provisional=_weakly(self._provisional),
            )
        )
        try:
            response, _ = await asyncio.wait_for(asyncio.shield(exchange), ring_for)
        except TimeoutError:
            await self._send_cancel()
            try:
                response, _ = await asyncio.wait_for(exchange, 5)
            except (TimeoutError, RequestFailed):
                self.finish("no answer", NO_ANSWER)
                return NO_ANSWER, None
            if response.status >= 300:
                self.finish("no answer", NO_ANSWER)
                return NO_ANSWER, None
        except RequestFailed as exc:
            status = 408 if exc.reason == "timeout" else 503
            self.finish(f"INVITE failed: {exc.reason}", status)
            return status, None
        except asyncio.CancelledError:
            exchange.cancel()
            raise
        return response.status, response

    def _provisional(self, response: Response) -> None:
        if response.status not in (180, 183) or self.state is LegState.ENDED:
            return
        early = False
        if response.body and self.offer is not None and response.to.tag is not None:
            try:
                negotiated = sdp.process_answer(self.offer, sdp.parse(response.body))
                self._secure(negotiated)
            except sdp.SdpError:
                negotiated = None
            if negotiated is not None:
                self.apply(negotiated)
                early = True
        self.on_ringing(early_media=early)

    async def _on_2xx(self, response: Response) -> int:
        assert self.invite is not None and self.offer is not None
        self.learn_allow(response)
        self.dialog = self.sip.dialogs.receive_response(self.invite, response)
        if self.dialog is not None:
            self.dialog.user_data = self
            self.ack = self.dialog.ack(self.invite, self.stack.via(self.target.transport))
            self.stack.send_stateless(self.ack, self.target)
        try:
            negotiated = sdp.process_answer(self.offer, sdp.parse(response.body))
            self._secure(negotiated)
        except sdp.SdpError as exc:
            self.on_answered()
            await self.hangup(f"bad SDP answer: {exc}")
            return 488
        if negotiated is not None:
            self.apply(negotiated)
        if self._cancelled:  # the 2xx crossed our CANCEL (§9.1): the call is up, so end it with BYE
            self.on_answered()
            await self.hangup("cancelled")
            return 487
        self.on_answered()
        return response.status

    async def _send_cancel(self) -> None:
        if self.invite is None:
            return
        self._cancelled = True
        try:
            await self.stack.request(build_cancel(self.invite), self.target)
        except RequestFailed:
            pass

    async def cancel(self) -> None:
        """Stop ringing (the caller gave up, another fork answered); `call` then returns 487."""
        if self.state in (LegState.CALLING, LegState.RINGING, LegState.EARLY):
            await self._send_cancel()

    def resend_ack(self) -> None:
        """A retransmitted 2xx means our ACK was lost: send it again (§13.2.2.4)."""
        if self.ack is not None:
            self.stack.send_stateless(self.ack, self.target)

    async def on_forked_2xx(self, response: Response) -> None:
        """§13.2.2.4: a 2xx from another fork after we kept one: ACK it, then BYE that dialog."""
        if self.invite is None:
            return
        if self.dialog is None and self.state is not LegState.ENDED:
            # A retransmission of our own 2xx can get here before `call` has made the dialog from
            # the first copy (the peer resent it because our ACK was slow): wait for that before
            # taking it for another fork's, or we would BYE the very dialog we are answering.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.answered.wait(), 2.0)
        if self.dialog is not None and response.to.tag == self.dialog.remote_tag:
            self.resend_ack()
            return
        extra = Dialog.uac(self.invite, response)
        self.stack.send_stateless(extra.ack(self.invite, self.stack.via(self.target.transport)), self.target)
        try:
            await self.stack.request(extra.bye(self.stack.via(self.target.transport)), self.target)
        except RequestFailed:
            pass

    async def hangup(self, cause: str = "normal clearing") -> None:
        if self.state is LegState.ENDED:
            return
        if self.dialog is not None and self.is_answered:
            await self.bye(cause)
            self.finish(cause)
        elif self.state in (LegState.CALLING, LegState.RINGING, LegState.EARLY):
            await self.cancel()  # `call` finishes the leg when the 487 comes
        else:
            self.finish(cause)

    async def answer(self) -> None:  # an outbound leg is answered by its peer
        await self.answered.wait()

    def reject(self, status: int = 480, reason: str | None = None, *, cause: str | None = None) -> None:
        self._spawn(self.hangup(cause or reason or str(status)))
