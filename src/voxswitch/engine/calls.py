"""The call engine's front door: INVITEs become Calls whose app runs them; apps and the API place
calls (`originate`); in-dialog requests reach their leg.

An inbound INVITE that passed authentication gets 100 Trying at once, then the router picks an app
(a named app, a device to put through to, a number to send out via the trunk) or refuses it. The
call's first leg answers the SDP offer before the app starts, so every verb can act immediately.
When the app returns the call ends, in exactly one final state, with its cause, the SIP status
that ended it and the worst leg's MOS on the record. One task sweeps every answered leg once a
second and hangs up those whose RTP stopped (a media timeout), instead of one timer per call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from voxswitch.engine.apps import APPS, App, CallContext
from voxswitch.engine.bridge import Bridge, MusicSource
from voxswitch.engine.call import Call, CallState
from voxswitch.engine.conference import Conference, RoomSeat
from voxswitch.engine.control import CallControl
from voxswitch.engine.dial import ring
from voxswitch.engine.leg import Ended, HoldChanged, HungUp, Leg, LegEvent, Ringing
from voxswitch.engine.routing import DefaultRouter, Incoming, Refusal, Router
from voxswitch.engine.sip_inbound import InboundSipLeg
from voxswitch.engine.sip_leg import SipContext, SipLeg
from voxswitch.engine.sip_outbound import Destination, OutboundSipLeg
from voxswitch.engine.targets import CallerId, Targets
from voxswitch.media.ports import PortRangeExhausted
from voxswitch.media.session import MediaResources, MediaSession
from voxswitch.media.tones import frames_of, hold_music
from voxswitch.sip import sdp
from voxswitch.sip.dialog import DialogId
from voxswitch.sip.message import Request, Response, build_response
from voxswitch.sip.transaction import ServerTransaction, Target
from voxswitch.sip.uri import SipUri
from voxswitch.store.database import Database
from voxswitch.voice.tts import TtsEngine

log = logging.getLogger(__name__)

_FAILED_STATES = {"busy": CallState.BUSY, "no-answer": CallState.NO_ANSWER, "failed": CallState.FAILED}


def default_music() -> MusicSource:
    samples = hold_music()
    return lambda: frames_of(samples, loop=True)


def music_from_file(path: Path) -> MusicSource:
    """Music on hold from a WAV file (any rate, resampled once at start)."""
    from voxswitch.media.resample import load_wav

    samples = load_wav(path, 8000)
    return lambda: frames_of(samples, loop=True)


class CallManager:
    def __init__(
        self,
        db: Database,
        sip: SipContext,
        media: MediaResources,
        tts: TtsEngine,
        targets: Targets,
        *,
        recordings_dir: Path,
        router: Router | None = None,
        media_timeout: float = 30.0,
        ring_timeout: float = 30.0,
        music: MusicSource | None = None,
    ) -> None:
        self.db = db
        self.sip = sip
        self.stack = sip.stack
        self.media = media
        self.tts = tts
        self.targets = targets
        self.recordings_dir = recordings_dir
        self.router: Router = router or DefaultRouter(targets)
        self.media_timeout = media_timeout
        self.ring_timeout = ring_timeout
        self.music = music if music is not None else default_music()
        self.calls: dict[str, Call] = {}
        self.rooms: dict[str, Conference] = {}
        # call id -> how its legs are connected now: a bridge, or a seat in a conference room
        self.bridges: dict[str, Bridge | RoomSeat] = {}
        self._inbound: dict[tuple[str, str], InboundSipLeg] = {}  # (Call-ID, From tag), for CANCEL
        self._outbound: dict[tuple[str, str], OutboundSipLeg] = {}  # for forked 2xx
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.control = CallControl(self)

    # plumbing -----------------------------------------------------------------------------------

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="media-timeout")
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed", exc_info=task.exception())

    def new_session(self) -> MediaSession:
        return MediaSession(self.media)

    def outbound_leg(self, destination: Destination, prefer: Leg | None = None) -> OutboundSipLeg:
        """A leg toward `destination`, offering `prefer`'s codec first so a bridge can relay."""
        codecs: tuple[sdp.Codec, ...] = ()
        if isinstance(prefer, SipLeg) and prefer.negotiated is not None:
            c = prefer.negotiated.codec
            codecs = (sdp.Codec(c.name, c.clock_rate, c.channels),)
        leg = OutboundSipLeg(self.sip, self.new_session(), destination, prefer=codecs)
        self._outbound[leg.key] = leg
        leg.listeners.append(self._forget_outbound)
        return leg

    def _forget_outbound(self, leg: Leg, event: LegEvent) -> None:
        if isinstance(event, Ended) and isinstance(leg, OutboundSipLeg):
            self._outbound.pop(leg.key, None)

    def adopt(self, call: Call, leg: Leg) -> None:
        """`leg` is now part of `call`: its hold changes move the call's state."""
        if leg not in call.legs:
            call.legs.append(leg)
            leg.call_id = call.id

            def on_event(leg: Leg, event: LegEvent) -> None:
                if isinstance(event, HoldChanged):
                    if event.held and call.state is CallState.IN_PROGRESS:
                        self.spawn(call.move(CallState.ON_HOLD))
                    elif not event.held and call.state is CallState.ON_HOLD:
                        self.spawn(call.move(CallState.IN_PROGRESS))

            leg.listeners.append(on_event)

    def bridged(self, call: Call, bridge: Bridge) -> None:
        self.bridges[call.id] = bridge
        self.spawn(self._unlist_bridge(call.id, bridge))

    async def _unlist_bridge(self, call_id: str, bridge: Bridge | RoomSeat) -> None:
        await bridge.done.wait()
        if self.bridges.get(call_id) is bridge:
            del self.bridges[call_id]

    # requests the SIP endpoint hands over -------------------------------------------------------

    def on_invite(
        self, txn: ServerTransaction, invite: Request, source: Target, *, device: str | None, trusted: bool
    ) -> None:
        self.stack.respond(txn, build_response(invite, 100))
        uri = invite.uri
        dialled = uri.user if isinstance(uri, SipUri) and uri.user else ""
        from_uri = invite.from_.uri
        caller = device or (from_uri.user if isinstance(from_uri, SipUri) and from_uri.user else "anonymous")
        incoming = Incoming(dialled, caller, device, trusted, invite, (source.host, source.port))
        self.spawn(self._inbound_call(txn, incoming, source))

    async def _inbound_call(self, txn: ServerTransaction, incoming: Incoming, source: Target) -> None:
        invite = incoming.invite
        route = await self.router.route(incoming)
        if txn.terminated or (txn.last_response is not None and txn.last_response.status >= 200):
            return  # cancelled while we were routing
        if isinstance(route, Refusal):
            self.stack.respond(txn, build_response(invite, route.status, route.reason))
            return
        leg = InboundSipLeg(self.sip, self.new_session(), txn, invite, source, peer=incoming.caller)
        leg.party = "device" if incoming.device is not None else "trunk" if incoming.trusted else "peer"
        call = Call(self.db, direction=route.direction, from_number=incoming.caller, to_number=incoming.dialled)
        call.app, call.did, call.route_id = route.name, route.did, route.route_id
        if incoming.device is not None:
            account = self.targets.accounts.get(incoming.device)
            call.user_id = account.user_id if account is not None else None
        self.calls[call.id] = call
        self._inbound[leg.key] = leg
        self.adopt(call, leg)
        try:
            call.record()  # not waited for here: the answer waits for it (engine/call.py)
            try:
                await leg.prepare()
            except (sdp.SdpError, PortRangeExhausted, OSError) as exc:
                status = 488 if isinstance(exc, sdp.SdpError) else 503
                leg.reject(status, cause=f"media: {exc}")
                await call.move(CallState.FAILED, f"media: {exc}", status)
                return
            ctx = await self._run_app(call, leg, route.app, route.name, route.params)
            await self._finish(call, leg, ctx)
        finally:
            self._inbound.pop(leg.key, None)
            self.calls.pop(call.id, None)

    def on_in_dialog(self, txn: ServerTransaction | None, request: Request) -> bool:
        """ACK, BYE, CANCEL, re-INVITE, INFO, UPDATE... for one of our calls. False when not ours."""
        method = request.method
        if method == "CANCEL":
            leg = self._inbound.get((request.call_id, request.from_.tag or ""))
            if leg is None or txn is None:
                return False
            self.stack.respond(txn, build_response(request, 200))
            leg.on_cancel()
            return True
        dialog, verdict = self.sip.dialogs.receive_request(request)
        if dialog is None:
            if method == "ACK":
                return True  # a stray ACK is dropped (§17.2.3)
            if txn is not None and verdict.status:
                response = verdict.response(request)
                if response is not None:
                    self.stack.respond(txn, response)
            return txn is not None
        leg = dialog.user_data
        if not isinstance(leg, SipLeg):
            return False
        if method == "ACK":
            leg.on_ack(request)
            return True
        assert txn is not None
        if not verdict.accepted:
            response = verdict.response(request)
            if response is not None:
                self.stack.respond(txn, response)
            return True
        if method == "BYE":
            leg.on_bye(txn, request)
        elif method in ("INVITE", "UPDATE"):
            self.spawn(leg.on_reinvite(txn, request))
        elif method == "INFO":
            leg.on_info(txn, request)
        elif method == "NOTIFY":
            leg.on_notify(txn, request)
        elif method == "OPTIONS":
            self.stack.respond(txn, build_response(request, 200))
        elif method == "REFER":  # a phone transfers its call (engine/control.py, PhoneTransfers)
            self.spawn(self.control.phones.on_refer(leg, txn, request))
        else:
            self.stack.respond(txn, build_response(request, 501, "Not Implemented"))
        return True

    def on_stray_response(self, response: Response) -> bool:
        """A 2xx after our INVITE's first final response: a retransmission (our ACK was lost, send it
        again) or another fork's answer (ACK it, then BYE it, §13.2.2.4)."""
        if not 200 <= response.status < 300 or response.cseq.method != "INVITE":
            return False
        dialog = self.sip.dialogs.get(DialogId.of_response(response))
        if dialog is not None and isinstance(dialog.user_data, OutboundSipLeg):
            dialog.user_data.resend_ack()
            return True
        leg = self._outbound.get((response.call_id, response.from_.tag or ""))
        if leg is not None:
            self.spawn(leg.on_forked_2xx(response))
            return True
        return False

    # running a call -----------------------------------------------------------------------------

    async def _run_app(self, call: Call, leg: Leg, app_fn: App, name: str, params: dict[str, Any]) -> CallContext:
        ctx = CallContext(self, call, leg, params)
        try:
            await app_fn(ctx)
        except HungUp:
            pass
        except Exception:
            log.exception("app %s failed", name, extra={"call_id": call.id})
            ctx.outcome.cause = "application error"
            ctx.outcome.hints["error"] = True
            ctx.outcome.status = 500
        finally:
            for recorder in list(ctx.recorders):
                try:
                    await recorder.stop(self.db)
                except Exception:
                    log.exception("could not store a recording", extra={"call_id": call.id})
        return ctx

    async def _finish(self, call: Call, leg: Leg, ctx: CallContext) -> None:
        """End the call's first leg if the app left it up, then take the call to its final state."""
        failed = bool(ctx.outcome.hints.get("error"))
        if not leg.ended.is_set() and leg.call_id == call.id:  # not when a transfer moved it to another call
            if leg.is_answered:
                await leg.hangup("application error" if failed else "app finished")
            else:
                leg.reject(ctx.outcome.status, cause=ctx.outcome.cause)
        for other in call.legs:
            if other is not leg and not other.ended.is_set() and other.call_id == call.id:
                await other.hangup(leg.end_cause or "normal clearing")
        cause = leg.end_cause or "normal clearing"
        status = leg.end_status
        if "ended_by" in call.data:  # a bridged call: the side that hung up first says why
            _, cause, status = call.data["ended_by"]
            cause = cause or "normal clearing"
        mos = [m for m in (other.media.stats().mos for other in call.legs) if m is not None]
        call.mos = min(mos) if mos else None
        if failed:
            state, cause = CallState.FAILED, "application error"
        elif cause == "media timeout":  # the far end vanished: not a normal end
            state = CallState.FAILED
        elif call.state in (CallState.ANSWERED, CallState.IN_PROGRESS, CallState.ON_HOLD):
            state = CallState.COMPLETED
        elif status == 487 or cause.startswith("cancelled"):
            state = CallState.CANCELLED
        else:
            state = ctx.outcome.state
        await call.move(state, cause, status)

    async def originate(
        self,
        target: str | list[str],
        app: str | App,
        *,
        caller_id: str | None = None,
        params: dict[str, Any] | None = None,
        ring_for: float | None = None,
        call: Call | None = None,
    ) -> Call:
        """Place a call to `target` (a device, a number through the trunk, a URI; a list rings them all)
        and run `app` once it answers. Returns at once with the call; raises `TargetError` when
        the target cannot be called at all."""
        app_fn = APPS.get(app) if isinstance(app, str) else app
        if app_fn is None:
            raise KeyError(f"no app named {app!r}")
        targets = [target] if isinstance(target, str) else target
        caller = CallerId(caller_id or "voxswitch")
        destinations = [d for t in targets for d in await self.targets.resolve(t, caller)]
        label = targets[0] if len(targets) == 1 else ",".join(targets)
        if call is None:
            call = Call(self.db, direction="outbound", from_number=caller.user, to_number=label)
        call.app = app if isinstance(app, str) else getattr(app, "__name__", "app")
        self.calls[call.id] = call
        legs = [self.outbound_leg(d) for d in destinations]
        self.spawn(self._outbound_call(call, legs, app_fn, call.app, params or {}, ring_for or self.ring_timeout))
        return call

    async def _outbound_call(
        self, call: Call, legs: list[OutboundSipLeg], app_fn: App, name: str, params: dict[str, Any], ring_for: float
    ) -> None:
        try:
            call.record()  # the answer waits for it (engine/call.py)

            def progress(leg: Leg, event: LegEvent) -> None:
                if isinstance(event, Ringing) and call.state is CallState.INITIATED:
                    self.spawn(call.move(CallState.RINGING))

            attempt = await ring(legs, ring_for, on_event=progress)
            if attempt.leg is None:
                state = _FAILED_STATES[attempt.outcome]
                await call.move(state, attempt.cause, attempt.status or None)
                return
            leg = attempt.leg
            self.adopt(call, leg)
            call.answered_by = leg.peer
            await call.move(CallState.ANSWERED)
            await call.move(CallState.IN_PROGRESS)
            ctx = await self._run_app(call, leg, app_fn, name, params)
            await self._finish(call, leg, ctx)
        finally:
            self.calls.pop(call.id, None)

    async def hangup(self, call_id: str, cause: str = "hung up by API") -> bool:
        """End a live call from outside (API, CLI); False when it is not live here."""
        call = self.calls.get(call_id)
        if call is None:
            return False
        for leg in list(call.legs):
            if not leg.ended.is_set():
                await leg.hangup(cause)
        return True

    async def _sweep(self) -> None:
        """End answered legs whose far end stopped sending RTP (it vanished, or its network did)."""
        loop = asyncio.get_running_loop()
        while self._tasks:
            await asyncio.sleep(min(1.0, self.media_timeout / 4))
            now = loop.time()
            for call in list(self.calls.values()):
                for leg in call.legs:
                    if not leg.is_answered or leg.answered_at is None or leg.remote_hold or leg.local_hold:
                        continue
                    last = leg.media.endpoint.last_received
                    silent = now - max(last, leg.answered_at) if last is not None else now - leg.answered_at
                    if silent >= self.media_timeout:
                        log.warning("media timeout after %.1fs without RTP", silent, extra={"call_id": call.id})
                        self.spawn(leg.hangup("media timeout"))

    async def stop(self) -> None:
        """Cancel running calls and wait for them to unwind (their legs close their sockets)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._sweeper is not None:
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await self.sip.cancel_background()
        await self.media.stop()
