"""Calls as the SIP endpoint delivers them: an authenticated INVITE becomes a Call with a leg, and
either the app the dialled user names runs it, or, when the dialled user is a registered device, the
call is bridged to that device (B2BUA). Apps can also place calls (`originate`). In-dialog requests
(ACK, BYE, CANCEL, re-INVITE) reach their leg here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path

from voxswitch.engine.apps import APPS, App, CallContext, HungUp
from voxswitch.engine.call import Call, CallState
from voxswitch.engine.conference import Conference
from voxswitch.engine.registrar import BindingBook
from voxswitch.engine.reinvite import answer_reinvite, reinvite
from voxswitch.engine.sip_leg import OUR_CODECS, SipLeg
from voxswitch.engine.sip_out import OutboundLeg
from voxswitch.media.clock import MediaClock
from voxswitch.media.ports import PortRangeExhausted, RtpPortAllocator
from voxswitch.sip import sdp
from voxswitch.sip.dialog import DialogId, DialogSet
from voxswitch.sip.message import Request, Response, build_response
from voxswitch.sip.registrar import Binding
from voxswitch.sip.stack import SipStack
from voxswitch.sip.transaction import ServerTransaction, Target
from voxswitch.sip.uri import SipUri
from voxswitch.store.database import Database
from voxswitch.voice.tts import TtsEngine

log = logging.getLogger(__name__)


class CallManager:
    def __init__(
        self,
        db: Database,
        stack: SipStack,
        ports: RtpPortAllocator,
        tts: TtsEngine,
        advertised_host: str,
        *,
        bindings: BindingBook | None = None,
        media_timeout: float = 30.0,
        recordings_dir: Path,
    ) -> None:
        self.recordings_dir = recordings_dir
        self.rooms: dict[str, Conference] = {}  # conferences in progress, by name
        self.media_timeout = media_timeout
        self.bindings = bindings
        self.ring_timeout = 30.0
        self.db = db
        self.stack = stack
        self.ports = ports
        self.tts = tts
        self.advertised_host = advertised_host
        self.clock = MediaClock()
        self.dialogs = DialogSet()
        self.calls: dict[str, Call] = {}
        self._by_invite: dict[tuple[str, str], SipLeg] = {}  # (Call-ID, From tag) -> leg, before a dialog
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # requests the SIP endpoint hands over -----------------------------------------------------

    def on_invite(self, txn: ServerTransaction, invite: Request, source: Target, caller: str) -> None:
        uri = invite.uri
        dialled = uri.user if isinstance(uri, SipUri) and uri.user else ""
        app_fn = APPS.get(dialled)
        device = self.bindings.lookup(dialled) if self.bindings is not None and app_fn is None else []
        if app_fn is None and not device:
            self.stack.respond(txn, build_response(invite, 404, "Not Found"))
            return
        self.stack.respond(txn, build_response(invite, 100))
        leg = SipLeg(self.stack, self.dialogs, self.clock, self.ports, txn, invite, source, self.advertised_host)
        call = Call(self.db, direction="inbound" if app_fn else "internal", from_number=caller, to_number=dialled)
        self.calls[call.id] = call
        self._by_invite[(invite.call_id, invite.from_.tag or "")] = leg
        work = self._run(call, leg, app_fn, dialled) if app_fn else self._bridge(call, leg, dialled, device[0])
        self._spawn(work)

    def on_in_dialog(self, txn: ServerTransaction | None, request: Request) -> bool:
        """ACK, BYE, CANCEL, re-INVITE... for one of our calls. False when it is not ours."""
        method = request.method
        if method == "CANCEL":
            leg = self._by_invite.get((request.call_id, request.from_.tag or ""))
            if leg is None:
                return False
            assert txn is not None
            self.stack.respond(txn, build_response(request, 200))
            leg.reject(487, "Request Terminated")
            leg.on_cancel()
            return True
        dialog, verdict = self.dialogs.receive_request(request)
        if dialog is None:
            if method == "ACK":
                return True  # a stray ACK is dropped (§17.2.3)
            if txn is not None and verdict.status:
                response = verdict.response(request)
                if response is not None:
                    self.stack.respond(txn, response)
            return txn is not None
        leg = dialog.user_data
        if not isinstance(leg, SipLeg | OutboundLeg):
            return False
        if method == "ACK":
            leg.on_ack()
            return True
        assert txn is not None
        if not verdict.accepted:
            response = verdict.response(request)
            if response is not None:
                self.stack.respond(txn, response)
            return True
        if method == "BYE":
            leg.on_bye(txn, request)
        elif method == "INVITE":
            self._spawn(self._on_reinvite(leg, txn, request))
        elif method == "INFO" and (digit := info_dtmf(request)) is not None:
            self.stack.respond(txn, build_response(request, 200))
            leg.digits.put_nowait(digit)
        else:  # UPDATE and other INFO packages arrive with the rest of issue #4
            self.stack.respond(txn, build_response(request, 501, "Not Implemented"))
        return True

    # running a call ---------------------------------------------------------------------------

    async def _prepare(self, call: Call, leg: SipLeg) -> bool:
        """Open the callee leg's media; on failure refuse the INVITE and fail the call."""
        try:
            await leg.prepare_media()
        except (sdp.SdpError, PortRangeExhausted) as exc:
            leg.reject(488 if isinstance(exc, sdp.SdpError) else 503)
            await call.move(CallState.FAILED, f"media: {exc}")
            return False
        return True

    async def _app(self, call: Call, ctx: CallContext, app_fn: App, name: str) -> bool:
        """Run an app to its end; False (call failed, leg hung up) if it raised."""
        try:
            await app_fn(ctx)
        except HungUp:
            pass
        except Exception:
            log.exception("app %s failed", name, extra={"call_id": call.id})
            await ctx.leg.hangup("application error")
            await call.move(CallState.FAILED, "application error")
            return False
        return True

    def _leg_to(self, binding: Binding, caller: str, callee: str, codecs: tuple[sdp.Codec, ...]) -> OutboundLeg:
        """A caller leg toward a registered contact, sent where its REGISTER came from (NAT-safe)."""
        return OutboundLeg(
            self.stack,
            self.dialogs,
            self.ports,
            Target(binding.transport, binding.source_host, binding.source_port),
            binding.contact,
            caller=caller,
            callee=callee,
            advertised_host=self.advertised_host,
            codecs=codecs,
        )

    async def _run(self, call: Call, leg: SipLeg, app_fn: App, name: str) -> None:
        key = (leg.invite.call_id, leg.invite.from_.tag or "")
        watchdog: asyncio.Task[None] | None = None
        try:
            await call.save()
            if not await self._prepare(call, leg):
                return
            ctx = CallContext(call, leg, self.tts, self.recordings_dir, self.rooms)
            watchdog = asyncio.get_running_loop().create_task(self._watch_media(leg))
            if not await self._app(call, ctx, app_fn, name):
                return
            if not leg.ended.is_set():
                await leg.hangup("app finished")
            cause = leg.end_cause or "normal clearing"
            if cause == "media timeout":  # the far end vanished: not a normal end
                await call.move(CallState.FAILED, cause)
            elif call.state in (CallState.ANSWERED, CallState.IN_PROGRESS, CallState.ON_HOLD):
                await call.move(CallState.COMPLETED, cause)
            elif cause.startswith("cancelled"):
                await call.move(CallState.CANCELLED, cause)
            else:
                await call.move(CallState.FAILED, cause)
        finally:
            if watchdog is not None:
                watchdog.cancel()
            self._by_invite.pop(key, None)
            self.calls.pop(call.id, None)

    async def _watch_media(self, leg: SipLeg) -> None:
        """End an answered call whose far end has stopped sending RTP (it vanished, or its network did)."""
        loop = asyncio.get_running_loop()
        await leg.acked.wait()
        started = loop.time()
        while not leg.ended.is_set():
            await asyncio.sleep(min(1.0, self.media_timeout / 4))
            now = loop.time()
            silent = leg.endpoint.idle_for(now) if leg.endpoint.last_received is not None else now - started
            if silent >= self.media_timeout:
                log.warning("media timeout after %.1fs without RTP", silent)
                await leg.hangup("media timeout")
                return

    async def originate(self, to_user: str, app_name: str, *, caller: str = "voxswitch") -> Call:
        """Place a call to a registered device and run `app_name` once it answers (API, CLI, jobs)."""
        app_fn = APPS.get(app_name)
        if app_fn is None:
            raise KeyError(f"no app named {app_name!r}")
        live = self.bindings.lookup(to_user) if self.bindings is not None else []
        if not live:
            raise LookupError(f"{to_user} is not registered")
        binding = live[0]
        call = Call(self.db, direction="outbound", from_number=caller, to_number=to_user)
        self.calls[call.id] = call
        leg = self._leg_to(binding, caller, to_user, OUR_CODECS)
        leg.clock = self.clock
        self._spawn(self._run_outbound(call, leg, app_fn, app_name))
        return call

    async def _run_outbound(self, call: Call, leg: OutboundLeg, app_fn: App, name: str) -> None:
        try:
            await call.save()
            ringing = asyncio.get_running_loop().create_task(leg.ringing.wait())
            ringing.add_done_callback(
                lambda _: (
                    asyncio.ensure_future(call.move(CallState.RINGING)) if call.state is CallState.INITIATED else None
                )
            )
            status = await leg.call(ring_for=self.ring_timeout)
            ringing.cancel()
            if not 200 <= status < 300:
                state = {486: CallState.BUSY, 600: CallState.BUSY, 0: CallState.NO_ANSWER}.get(status, CallState.FAILED)
                await call.move(state, leg.end_cause or str(status))
                return
            await call.move(CallState.ANSWERED)
            await call.move(CallState.IN_PROGRESS)
            if not await self._app(
                call, CallContext(call, leg, self.tts, self.recordings_dir, self.rooms), app_fn, name
            ):  # type: ignore[arg-type]
                return
            await leg.hangup("app finished")
            await call.move(CallState.COMPLETED, leg.end_cause)
        finally:
            self.calls.pop(call.id, None)

    async def _on_reinvite(self, leg: SipLeg | OutboundLeg, txn: ServerTransaction, request: Request) -> None:
        """A peer re-offers (hold, resume, a new address): answer it, and pass hold on to the partner."""
        negotiated = await answer_reinvite(leg, txn, request)
        if negotiated is None:
            return
        leg.endpoint.remote = (negotiated.remote_address, negotiated.remote_port)
        partner, call = leg.partner, self._call_of(leg)
        if isinstance(partner, SipLeg | OutboundLeg):
            held = negotiated.remote_hold
            await reinvite(partner, sdp.Direction.SENDONLY if held else sdp.Direction.SENDRECV)
            if call is not None and call.state in (CallState.IN_PROGRESS, CallState.ON_HOLD):
                await call.move(CallState.ON_HOLD if held else CallState.IN_PROGRESS)

    def _call_of(self, leg: object) -> Call | None:
        return next((c for c in self.calls.values() if leg in c.data.get("legs", ())), None)

    def on_stray_response(self, response: Response) -> bool:
        """A 2xx retransmitted after our INVITE's transaction ended: our ACK was lost, send it again."""
        if response.status < 200 or response.status >= 300 or response.cseq.method != "INVITE":
            return False
        dialog = self.dialogs.get(DialogId.of_response(response))
        if dialog is not None and isinstance(dialog.user_data, OutboundLeg):
            dialog.user_data.resend_ack()
            return True
        return False

    async def _bridge(self, call: Call, inbound: SipLeg, dialled: str, binding: Binding) -> None:
        """Device to device through us (B2BUA): ring the callee's registered contact, answer the
        caller when it answers, relay RTP between the two legs untouched (same codec both sides)."""
        key = (inbound.invite.call_id, inbound.invite.from_.tag or "")
        out: OutboundLeg | None = None
        try:
            await call.save()
            if not await self._prepare(call, inbound):
                return
            assert inbound.plan is not None
            codec = inbound.plan.negotiated.codec
            out = self._leg_to(binding, call.from_number, dialled, (sdp.Codec(codec.name, codec.clock_rate),))

            async def relay_ringing() -> None:
                await out.ringing.wait()
                if call.state is CallState.INITIATED:
                    inbound.ring()
                    await call.move(CallState.RINGING)

            ringer = asyncio.get_running_loop().create_task(relay_ringing())
            placing = asyncio.ensure_future(out.call(ring_for=self.ring_timeout))
            caller_gone = asyncio.ensure_future(inbound.ended.wait())
            await asyncio.wait({placing, caller_gone}, return_when=asyncio.FIRST_COMPLETED)
            ringer.cancel()
            if not placing.done():  # the caller hung up (CANCEL) while the callee rang
                placing.cancel()
                await out.hangup("caller cancelled")
                await call.move(CallState.CANCELLED, inbound.end_cause or "cancelled")
                return
            caller_gone.cancel()
            status = placing.result()
            if not 200 <= status < 300:
                state, code = {
                    486: (CallState.BUSY, 486),
                    600: (CallState.BUSY, 486),
                    0: (CallState.NO_ANSWER, 480),
                }.get(status, (CallState.FAILED, status if 400 <= status < 700 else 480))
                inbound.reject(code)
                await call.move(state, out.end_cause or str(status))
                return
            await call.move(CallState.ANSWERED)
            answering = asyncio.get_running_loop().create_task(inbound.answer())
            inbound.endpoint.relay_to, out.endpoint.relay_to = out.endpoint, inbound.endpoint
            inbound.partner, out.partner = out, inbound
            _map_payload_types(inbound, out)
            call.data["legs"] = (inbound, out)
            await call.move(CallState.IN_PROGRESS)
            first = asyncio.ensure_future(inbound.ended.wait())
            second = asyncio.ensure_future(out.ended.wait())
            await asyncio.wait({first, second}, return_when=asyncio.FIRST_COMPLETED)
            for waiter in (first, second):
                waiter.cancel()
            answering.cancel()
            cause = inbound.end_cause if inbound.ended.is_set() else out.end_cause
            await inbound.hangup(cause or "normal clearing")
            await out.hangup(cause or "normal clearing")
            await call.move(CallState.COMPLETED, cause)
        finally:
            self._by_invite.pop(key, None)
            self.calls.pop(call.id, None)

    async def stop(self) -> None:
        """Cancel running calls and wait for them to unwind (their legs close their sockets)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.clock.stop()


def _map_payload_types(inbound: SipLeg, out: OutboundLeg) -> None:
    """Each side may have agreed its own number for telephone-event; renumber on the way through."""
    a = inbound.plan.negotiated if inbound.plan else None
    b = out.negotiated
    if a is None or b is None:
        return
    if a.local_telephone_event_pt is not None and b.telephone_event_pt is not None:
        if a.local_telephone_event_pt != b.telephone_event_pt:
            inbound.endpoint.relay_pt_map[a.local_telephone_event_pt] = b.telephone_event_pt
    if b.local_telephone_event_pt is not None and a.telephone_event_pt is not None:
        if b.local_telephone_event_pt != a.telephone_event_pt:
            out.endpoint.relay_pt_map[b.local_telephone_event_pt] = a.telephone_event_pt


_DTMF_KEYS = frozenset("0123456789*#ABCD")


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
                return key if key in _DTMF_KEYS else {"10": "*", "11": "#"}.get(key)
    elif content_type == "application/dtmf":
        key = text.strip().upper()
        if key in _DTMF_KEYS:
            return key
        return {"10": "*", "11": "#", "12": "A", "13": "B", "14": "C", "15": "D"}.get(key)
    return None
