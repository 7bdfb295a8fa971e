"""What every SIP leg does once a dialog exists, whichever side sent the INVITE (RFC 3261 §12-15).

BYE both ways (§15), re-INVITE both ways for hold and resume and new addresses (§14, RFC 3264 §8),
INFO DTMF, the 2xx retransmission a UAS owes until the ACK (§13.3.1.4), and turning an SDP
negotiation into the media session's `StreamTerms`. The INVITE itself is the subclasses' business:
`sip_inbound.InboundSipLeg` (we are the UAS) and `sip_outbound.OutboundSipLeg` (we are the UAC).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field, replace

from voxswitch.engine.leg import Leg, LegState
from voxswitch.media.codecs import CodecRegistry
from voxswitch.media.session import MediaSession, StreamTerms
from voxswitch.media.srtp import SrtpError, context_for
from voxswitch.media.srtp_policy import plan_answer
from voxswitch.sip import sdp
from voxswitch.sip.dialog import Dialog, DialogSet
from voxswitch.sip.errors import SipParseError
from voxswitch.sip.message import Request, Response, build_response
from voxswitch.sip.stack import RequestFailed, SipStack
from voxswitch.sip.subscription import parse_sipfrag
from voxswitch.sip.transaction import ServerTransaction, Target

log = logging.getLogger(__name__)

_PREFERENCE = (("PCMU", 8000), ("PCMA", 8000), ("G722", 8000), ("opus", 48000))


def offer_codecs(registry: CodecRegistry) -> tuple[sdp.Codec, ...]:
    """The codecs we offer and accept, best first: G.711 (what trunks and the relay path want), then
    the wideband ones whose libraries are present."""
    out = []
    for name, rate in _PREFERENCE:
        if (name, rate) in registry and registry.get(name, rate).available:
            spec = registry.get(name, rate)
            out.append(sdp.Codec(spec.name, spec.clock_rate, spec.sdp_channels, spec.payload_type))
    return tuple(out)


@dataclass(frozen=True)
class SrtpSettings:
    """VOXSWITCH_SRTP and friends (media/srtp_policy.py says what each mode does)."""

    mode: str = "off"  # off | offer | require
    fallback: bool = False  # after a 488/606 to an RTP/SAVP offer, offer plain RTP again
    suites: tuple[str, ...] = ()


@dataclass
class SipContext:
    """The SIP side every leg of one engine shares."""

    stack: SipStack
    dialogs: DialogSet
    advertised_host: str
    codecs: tuple[sdp.Codec, ...] = field(default_factory=tuple)
    srtp: SrtpSettings = field(default_factory=SrtpSettings)
    background: set[asyncio.Future[Response]] = field(default_factory=set)  # BYEs in flight

    def keep(self, task: asyncio.Future[Response]) -> None:
        """Hold a fire-and-forget request until it settles (the loop only keeps weak references)."""
        self.background.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Future[Response]) -> None:
        self.background.discard(task)
        if not task.cancelled():
            task.exception()  # RequestFailed (no answer): nothing more to do for a dialog that is over

    async def cancel_background(self) -> None:
        """At shutdown: stop waiting for BYE answers (the transactions go with the stack)."""
        tasks = list(self.background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def terms_of(negotiated: sdp.Negotiated) -> StreamTerms:
    codec = negotiated.codec
    assert codec.payload_type is not None
    return StreamTerms(
        codec=codec.name,
        clock_rate=codec.clock_rate,
        send_pt=codec.payload_type,
        recv_pt=negotiated.local_payload_type,
        remote=(negotiated.remote_address, negotiated.remote_port),
        remote_rtcp=(negotiated.remote_address, negotiated.remote_rtcp_port),
        dtmf_send_pt=negotiated.telephone_event_pt,
        dtmf_recv_pt=negotiated.local_telephone_event_pt,
        sends=negotiated.direction.sends,
        receives=negotiated.direction.receives,
    )


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


class SipLeg(Leg):
    kind = "sip"

    def __init__(self, sip: SipContext, media: MediaSession, target: Target, *, peer: str, direction: str) -> None:
        super().__init__(media, peer=peer, direction=direction)
        self.sip = sip
        self.stack = sip.stack
        self.target = target  # where the peer's requests come from and ours go (NAT-safe)
        self.dialog: Dialog | None = None
        self.local_sdp: sdp.SessionDescription | None = None
        self.negotiated: sdp.Negotiated | None = None
        self.awaiting_ack = asyncio.Event()
        self.local_user = "voxswitch"  # the user part of our Contact
        self.peer_allows: frozenset[str] = frozenset()  # methods the peer's INVITE or 2xx said it takes
        self.refer_outcome: asyncio.Future[tuple[int, str]] | None = None  # our REFER's final sipfrag
        self.local_crypto: sdp.Crypto | None = None  # our SDES key while the stream is SRTP
        self._tasks: set[asyncio.Task[object]] = set()

    # helpers ------------------------------------------------------------------------------------

    def contact(self) -> str:
        transport = self.target.transport.upper()
        host, port = self.stack.transport.listen.get(transport, (self.sip.advertised_host, 5060))
        host = self.sip.advertised_host if host in ("0.0.0.0", "::") else host
        param = "" if transport == "UDP" else f";transport={transport.lower()}"
        return f"<sip:{self.local_user}@{host}:{port}{param}>"

    def local_media(
        self,
        direction: sdp.Direction = sdp.Direction.SENDRECV,
        *,
        current_only: bool = False,
        crypto: tuple[sdp.Crypto, ...] = (),
        require_crypto: bool = False,
    ) -> sdp.LocalMedia:
        """Our side of an offer or answer. A re-offer names only the codec in use (and our SRTP key),
        so hold and resume never change the codec or the keys under a bridge."""
        codecs = self.sip.codecs
        if current_only and self.negotiated is not None:
            c = self.negotiated.codec
            codecs = (sdp.Codec(c.name, c.clock_rate, c.channels, self.negotiated.local_payload_type, c.fmtp),)
            if self.local_crypto is not None and not crypto:
                crypto = (self.local_crypto,)
        return sdp.LocalMedia(
            self.sip.advertised_host,
            self.media.local_port,
            codecs,
            dtmf=True,
            direction=direction,
            crypto=crypto,
            require_crypto=require_crypto,
        )

    def answer_offer(
        self,
        offer: sdp.SessionDescription,
        *,
        current_only: bool = False,
        previous: sdp.SessionDescription | None = None,
    ) -> tuple[sdp.SessionDescription, sdp.Negotiated | None]:
        """Answer an offer (RFC 3264 §6) under the SRTP policy (RFC 4568); raises sdp.SdpError
        (NegotiationError for a refusal the policy makes, answered 488)."""
        plan = plan_answer(self.sip.srtp.mode, offer, self.sip.srtp.suites, keep=self.local_crypto)
        if plan.refusal:
            raise sdp.NegotiationError(plan.refusal)
        local = self.local_media(current_only=current_only, crypto=plan.crypto, require_crypto=plan.require_crypto)
        answer, negotiated = sdp.answer(offer, local, session_id=secrets.randbelow(10**9), previous=previous)
        self._secure(negotiated)
        return answer, negotiated

    def _secure(self, negotiated: sdp.Negotiated | None) -> None:
        """Install (or keep) the SRTP context the agreed crypto lines call for; SrtpError -> SdpError."""
        try:
            self.media.endpoint.srtp = context_for(negotiated, self.media.endpoint.srtp)
        except SrtpError as exc:
            raise sdp.NegotiationError(f"SRTP: {exc}") from None
        self.local_crypto = negotiated.local_crypto if negotiated is not None else None

    def apply(self, negotiated: sdp.Negotiated) -> None:
        """Point the media at what the peer agreed; a hold (c=0.0.0.0 or sendonly) keeps the address."""
        self.negotiated = negotiated
        terms = terms_of(negotiated)
        if negotiated.remote_address in ("0.0.0.0", "::") and self.media.terms is not None:
            terms = replace(terms, remote=self.media.terms.remote, remote_rtcp=self.media.terms.remote_rtcp)
        self.media.configure(terms)

    def _spawn(self, work: asyncio.Future[object] | object) -> None:
        task = asyncio.ensure_future(work)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # requests inside the dialog, from the peer ----------------------------------------------------

    def on_ack(self, request: Request) -> None:
        self.awaiting_ack.set()

    def on_bye(self, txn: ServerTransaction, request: Request) -> None:
        self.stack.respond(txn, build_response(request, 200))
        self.finish("remote hangup")

    def on_info(self, txn: ServerTransaction, request: Request) -> None:
        digit = info_dtmf(request)
        if digit is None:
            self.stack.respond(txn, build_response(request, 415, "Unsupported Media Type"))
            return
        self.stack.respond(txn, build_response(request, 200))
        self.on_digit(digit, "info")

    def on_notify(self, txn: ServerTransaction, request: Request) -> None:
        """RFC 3515 §2.4.5: the progress of our REFER, as a sipfrag; a final status settles it."""
        self.stack.respond(txn, build_response(request, 200))
        event = (request.get("event") or "").split(";")[0].strip().lower()
        outcome = self.refer_outcome
        if event != "refer" or outcome is None or outcome.done():
            return
        try:
            status, reason = parse_sipfrag(request.body)
        except SipParseError:
            return
        terminated = (request.get("subscription-state") or "").lower().startswith("terminated")
        if status >= 200 or terminated:
            outcome.set_result((status, reason))

    async def on_reinvite(self, txn: ServerTransaction, request: Request) -> None:
        """Answer a re-offer (§14.2): hold, resume, a new address. An offerless re-INVITE gets our
        offer in the 200 and its answer in the ACK."""
        if not request.body:
            offer = sdp.build_offer(
                self.local_media(current_only=True), session_id=secrets.randbelow(10**9), previous=self.local_sdp
            )
            body, negotiated = offer.to_bytes(), None
        else:
            try:
                answer, negotiated = self.answer_offer(
                    sdp.parse(request.body), current_only=True, previous=self.local_sdp
                )
            except sdp.SdpError:
                self.stack.respond(txn, build_response(request, 488, "Not Acceptable Here"))
                return
            body = answer.to_bytes()
            self.local_sdp = answer
        response = build_response(
            request, 200, headers=[("Contact", self.contact()), ("Content-Type", "application/sdp")], body=body
        )
        response.add("Content-Length", str(len(body)))
        self.awaiting_ack = asyncio.Event()
        self.stack.respond(txn, response)
        if self.dialog is not None:
            self.dialog.responded(request, response)
        self._spawn(retransmit_2xx(self.stack, response, self.target, self.awaiting_ack))
        if negotiated is not None:
            self.apply(negotiated)
            self.on_hold_changed(negotiated.remote_hold)

    # requests inside the dialog, from us ----------------------------------------------------------

    async def reoffer(self, direction: sdp.Direction) -> sdp.Negotiated | None:
        """Send a re-INVITE with our media at `direction`; the peer's new terms, None if refused."""
        dialog = self.dialog
        if dialog is None or dialog.terminated or dialog.invite_pending or self.state is LegState.ENDED:
            return None
        offer = sdp.build_offer(
            self.local_media(direction, current_only=True), session_id=secrets.randbelow(10**9), previous=self.local_sdp
        )
        request = dialog.reinvite(self.stack.via(self.target.transport), offer.to_bytes())
        try:
            response = await self.stack.request(request, self.target)
        except RequestFailed:
            dialog.request_timed_out(request)
            return None
        dialog.receive_response(request, response)
        if not 200 <= response.status < 300:
            return None
        self.stack.send_stateless(dialog.ack(request, self.stack.via(self.target.transport)), self.target)
        self.local_sdp = offer
        try:
            negotiated = sdp.process_answer(offer, sdp.parse(response.body))
            self._secure(negotiated)
        except sdp.SdpError:
            return None
        if negotiated is not None:
            self.apply(negotiated)
        return negotiated

    async def hold(self) -> bool:
        """RFC 3264 §8.4: we offer sendonly; the peer answers recvonly and stops sending to us."""
        if await self.reoffer(sdp.Direction.SENDONLY) is None:
            return False
        self.local_hold = True
        return True

    async def resume(self) -> bool:
        if await self.reoffer(sdp.Direction.SENDRECV) is None:
            return False
        self.local_hold = False
        return True

    async def send_digits(self, digits: str) -> None:
        """RFC 4733 when agreed, else SIP INFO (application/dtmf-relay), the fallback phones accept."""
        if self.media.terms is not None and self.media.terms.dtmf_send_pt is not None:
            await self.media.send_digits(digits)
            return
        dialog = self.dialog
        if dialog is None or dialog.terminated:
            return
        for digit in digits:
            body = f"Signal={digit}\r\nDuration=100\r\n".encode()
            info = dialog.info(self.stack.via(self.target.transport), body, "application/dtmf-relay")
            try:
                await self.stack.request(info, self.target)
            except RequestFailed:
                return

    def learn_allow(self, message: Request | Response) -> None:
        methods = {m.strip().upper() for value in message.get_all("allow") for m in value.split(",")}
        if methods:
            self.peer_allows = frozenset(methods)

    async def refer(self, target: str) -> bool:
        """Ask the peer to call `target` itself (RFC 3515 blind transfer); True when it accepted (202).
        Its progress comes back as NOTIFYs; `refer_outcome` resolves with the new call's final status."""
        dialog = self.dialog
        if dialog is None or dialog.terminated:
            return False
        self.refer_outcome = asyncio.get_running_loop().create_future()
        request = dialog.refer(self.stack.via(self.target.transport), target, referred_by=self.contact())
        try:
            response = await self.stack.request(request, self.target)
        except RequestFailed:
            return False
        dialog.receive_response(request, response)
        return 200 <= response.status < 300

    async def bye(self, cause: str) -> None:
        """Send BYE (§15.1.1) with a Reason (RFC 3326). The dialog ends as it is sent, so the leg ends at
        once: the transaction retransmits and completes on its own, and a peer that vanished cannot
        hold a call (and its record) open for Timer F's 32 s."""
        dialog = self.dialog
        if dialog is None or dialog.terminated:
            return
        request = dialog.bye(
            self.stack.via(self.target.transport), headers=[("Reason", f'SIP;cause=200;text="{cause}"')]
        )
        self.sip.keep(asyncio.ensure_future(self.stack.request(request, self.target)))

    def finish(self, cause: str, status: int | None = None) -> None:
        if self.dialog is not None:
            self.dialog.terminate()
            self.sip.dialogs.discard(self.dialog)
            self.dialog.user_data = None  # out of the dialog set: nothing looks us up through it
        for task in list(self._tasks):
            task.cancel()
        super().finish(cause, status)


_DTMF_KEYS = frozenset("0123456789*#ABCD")
_EVENT_KEYS = {"10": "*", "11": "#", "12": "A", "13": "B", "14": "C", "15": "D"}


def info_dtmf(request: Request) -> str | None:
    """The key in a SIP INFO carrying DTMF: `application/dtmf-relay` (`Signal=5`), the de facto
    format phones send, or `application/dtmf` (a bare key or event number, as in RFC 4733's table)."""
    content_type = (request.content_type or "").split(";")[0].strip().lower()
    text = request.body.decode("utf-8", "replace")
    if content_type == "application/dtmf-relay":
        for line in text.splitlines():
            name, _, value = line.partition("=")
            if name.strip().lower() == "signal":
                key = value.strip().upper()
                return key if key in _DTMF_KEYS else _EVENT_KEYS.get(key)
    elif content_type == "application/dtmf":
        key = text.strip().upper()
        return key if key in _DTMF_KEYS else _EVENT_KEYS.get(key)
    return None
