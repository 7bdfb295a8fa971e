"""Apps: async functions that drive a call with a small set of verbs, and the registry routes pick from.

The verbs follow TwiML's (Say, Play, Gather, Record, Dial, Pause, Reject, Hangup) so a TwiML
interpreter maps onto them one to one, plus what the other documents need (conference, stereo call
recording, sending digits, bridging an existing leg). An app sees a `CallContext` and legs, never
SIP or RTP. When an app returns, the call ends: the leg is hung up if it was answered, or refused
with the status the app's last `dial` or `reject` earned (486 busy, 480 no answer...).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voxswitch.engine.bridge import Bridge
from voxswitch.engine.call import Call, CallState
from voxswitch.engine.conference import Conference, RoomSeat
from voxswitch.engine.dial import failure_word, ring
from voxswitch.engine.leg import HungUp, Leg, LegEvent, Ringing
from voxswitch.engine.recording import CallRecorder
from voxswitch.engine.sip_outbound import Destination
from voxswitch.engine.targets import CallerId, TargetError
from voxswitch.media.bridge import MediaBridge
from voxswitch.media.frames import Frame
from voxswitch.media.player import Player
from voxswitch.media.tones import beep, frames_of, ringback
from voxswitch.store.models import Recording
from voxswitch.voice.tts import TtsEngine

if TYPE_CHECKING:
    from voxswitch.engine.calls import CallManager

log = logging.getLogger(__name__)

App = Callable[["CallContext"], Awaitable[None]]
APPS: dict[str, App] = {}


def app(name: str) -> Callable[[App], App]:
    """Register an app under `name` (what a route, the API or a dialled user part names)."""

    def register(fn: App) -> App:
        APPS[name] = fn
        return fn

    return register


@dataclass
class DialResult:
    """What `dial` did, in Twilio's DialCallStatus words."""

    status: str  # "completed", "answered" (still up: bridge=False), "busy", "no-answer", "failed", "canceled"
    sip_status: int | None = None
    answered_by: str | None = None  # the destination that answered
    duration: float = 0.0  # seconds the two were connected
    leg: Leg | None = None
    cause: str = ""


@dataclass
class Outcome:
    """How an unanswered inbound call is refused when its app ends (set by `dial` and `reject`)."""

    state: CallState = CallState.FAILED
    status: int = 480
    cause: str = "not answered"
    hints: dict[str, Any] = field(default_factory=dict)


_OUTCOMES = {
    "busy": (CallState.BUSY, 486),
    "no-answer": (CallState.NO_ANSWER, 480),
    "canceled": (CallState.CANCELLED, 487),
}


class CallContext:
    def __init__(self, engine: CallManager, call: Call, leg: Leg, params: dict[str, Any] | None = None) -> None:
        self.engine = engine
        self.call = call
        self.leg = leg
        self.params = params or {}
        self.outcome = Outcome()
        self.recorders: list[CallRecorder] = []
        self.bridge_in_use: Bridge | None = None

    @property
    def tts(self) -> TtsEngine:
        return self.engine.tts

    def _check(self) -> None:
        if self.leg.ended.is_set():
            raise HungUp(self.leg.end_cause or "hung up")

    async def _until_ended(self, aw: Awaitable[object]) -> None:
        """Wait for `aw`, or stop waiting (HungUp) the moment the leg ends."""
        task = asyncio.ensure_future(aw)
        ended = asyncio.ensure_future(self.leg.ended.wait())
        try:
            await asyncio.wait({task, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            self._check()

    # answering --------------------------------------------------------------------------------

    async def answer(self) -> None:
        self._check()
        if not self.leg.is_answered:
            if self.call.state in (CallState.INITIATED, CallState.RINGING):
                await self.call.move(CallState.ANSWERED)
            await self.leg.answer()
            self._check()
            if self.call.state is CallState.ANSWERED:
                await self.call.move(CallState.IN_PROGRESS)

    async def ring(self) -> None:
        self._check()
        self.leg.ring()
        if self.call.state is CallState.INITIATED:
            await self.call.move(CallState.RINGING)

    async def reject(self, reason: str = "rejected", status: int | None = None, *, cause: str | None = None) -> None:
        """Refuse the call without answering (TwiML <Reject reason="busy|rejected">); `cause` is
        what the call record says (default: the reason)."""
        busy = reason == "busy"
        code = status or (486 if busy else 603)
        self.outcome = Outcome(CallState.BUSY if code in (486, 600) else CallState.FAILED, code, cause or reason)
        if not self.leg.is_answered:
            self.leg.reject(code, "Busy Here" if code == 486 else "Decline", cause=self.outcome.cause)

    # speaking and playing -----------------------------------------------------------------------

    async def say(self, text: str, voice: str | None = None, language: str | None = None, loop: int = 1) -> None:
        """Speak `text`; returns when the last frame has been sent."""
        await self.answer()
        for _ in range(max(1, loop)):
            await self._play(self._speech(text, voice, language))

    def _speech(self, text: str, voice: str | None, language: str | None) -> AsyncIterator[Frame]:
        return _as_8k(self.tts.synthesize(text, voice=voice, language=language), self.tts.sample_rate)

    async def _play(self, frames: AsyncIterator[Frame]) -> Player:
        player = self.leg.media.play(frames)
        await self._until_ended(player.done)
        return player

    async def play(self, source: str | Path, loop: int = 1) -> None:
        """Play a WAV file (any rate; resampled to the call's) `loop` times (0: until hung up)."""
        from voxswitch.media.resample import load_wav

        await self.answer()
        samples = await asyncio.to_thread(load_wav, Path(source), 8000)
        count = 0
        while loop == 0 or count < loop:
            await self._play(frames_of(samples))
            count += 1

    async def pause(self, seconds: float) -> None:
        self._check()
        await self._until_ended(asyncio.sleep(seconds))

    async def send_digits(self, digits: str) -> None:
        """Send DTMF to the peer (RFC 4733, or SIP INFO when no telephone-event was agreed)."""
        self._check()
        await self._until_ended(self.leg.send_digits(digits))

    # listening ----------------------------------------------------------------------------------

    async def gather(
        self,
        digits: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109  (TwiML's name)
        finish_on_key: str = "#",
        prompt: str | None = None,
    ) -> str:
        """Collect up to `digits` DTMF digits; `timeout` seconds without a key ends it. A `prompt`
        is spoken while waiting and stops at the first key (barge-in, as TwiML's nested Say)."""
        await self.answer()
        speaking = self.leg.media.play(self._speech(prompt, None, None)) if prompt else None
        got = ""
        try:
            while len(got) < digits:
                key = await self._next_key(timeout, speaking)
                if key is None:
                    break
                if speaking is not None:
                    speaking.stop()
                if key == finish_on_key:
                    break
                got += key
        finally:
            if speaking is not None:
                speaking.stop()
        return got

    async def _next_key(self, timeout: float, speaking: Player | None) -> str | None:  # noqa: ASYNC109
        """The next key; while a prompt plays there is no time limit, after it `timeout` applies."""
        getter = asyncio.ensure_future(self._digit())
        try:
            if speaking is not None and not speaking.done.done():
                await asyncio.wait({getter, speaking.done}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                await asyncio.wait({getter}, timeout=timeout)
            return getter.result() if getter.done() else None
        finally:
            if not getter.done():
                getter.cancel()

    async def _digit(self) -> str:
        getter = asyncio.ensure_future(self.leg.digits.get())
        await self._until_ended(getter)
        return getter.result()

    async def record(self, max_seconds: float = 60.0, beep_first: bool = True, finish_on_key: str = "#") -> Recording:
        """Record what the caller says (mono WAV, a store row) until `max_seconds`, `finish_on_key`
        or hang-up (TwiML <Record>). The recording is kept even if the caller hangs up."""
        await self.answer()
        if beep_first:
            await self._play(frames_of(beep()))
        recorder = CallRecorder(
            self.engine.media.clock, self.engine.recordings_dir, self.call.id, self.leg.media, max_seconds=max_seconds
        )
        recorder.start()
        try:
            async with asyncio.timeout(max_seconds):
                while await self._digit() != finish_on_key:
                    pass
        except (TimeoutError, HungUp):
            pass
        finally:
            recorder.close()
        return await recorder.stop(self.engine.db)

    def record_call(self, *, stereo: bool = True) -> CallRecorder:
        """Record the whole call from now on (stereo: the caller left, what the caller hears right);
        `pause`/`resume` it; it stops and is stored when the call ends."""
        right = None
        if self.bridge_in_use is not None:
            right = self.bridge_in_use.other(self.leg).media
        recorder = CallRecorder(
            self.engine.media.clock, self.engine.recordings_dir, self.call.id, self.leg.media, right, stereo=stereo
        )
        recorder.start()
        self.recorders.append(recorder)
        return recorder

    # connecting ---------------------------------------------------------------------------------

    async def dial(
        self,
        target: str | list[str],
        *,
        timeout: float | None = None,  # noqa: ASYNC109  (TwiML's name; None: the engine's ring time)
        caller_id: str | None = None,
        record: bool = False,
        ringback_tone: bool = True,
    ) -> DialResult:
        """Ring `target` (a device, a number via the trunk, a SIP URI; a list rings them all at once)
        and connect the caller to whoever answers first, until either hangs up (TwiML <Dial>).
        Ringing and early media reach the caller while it is not answered yet."""
        self._check()
        targets = [target] if isinstance(target, str) else list(target)
        destinations, failure = await self._resolve(
            targets, CallerId(caller_id or self.call.from_number or "voxswitch")
        )
        if not destinations:
            return self._dial_failed(failure.status if failure else 404, str(failure or "nothing to call"))
        legs = [self.engine.outbound_leg(d, prefer=self.leg) for d in destinations]
        tone: list[Player] = []
        ring_for = timeout if timeout is not None else self.engine.ring_timeout
        progress = self._progress(tone, ringback_tone)
        attempt = await ring(legs, ring_for, on_event=progress, gave_up=self.leg.ended)
        for player in tone:
            player.stop()
        if attempt.leg is None:
            if attempt.status == 487 and self.leg.ended.is_set():
                raise HungUp(self.leg.end_cause or "caller hung up")
            return self._dial_failed(attempt.status, attempt.cause)
        callee = attempt.leg
        self.engine.adopt(self.call, callee)
        self.call.answered_by = callee.peer
        bridge = self.bridge(callee)  # first, so the caller hears the callee from its first packet
        await self.answer()
        started = asyncio.get_running_loop().time()
        recorder = self.record_call() if record else None
        try:
            await self._follow(bridge)
        finally:
            if recorder is not None:
                await recorder.stop(self.engine.db)
                self.recorders.remove(recorder)
            self.bridge_in_use = None
        duration = asyncio.get_running_loop().time() - started
        return DialResult("completed", 200, callee.peer, duration, callee, callee.end_cause or "")

    async def _resolve(self, targets: list[str], caller: CallerId) -> tuple[list[Destination], TargetError | None]:
        """Every destination of every target; the last failure, for when none can be called."""
        destinations: list[Destination] = []
        failure: TargetError | None = None
        for t in targets:
            try:
                destinations += await self.engine.targets.resolve(t, caller)
            except TargetError as exc:
                failure = exc
        return destinations, failure

    def _progress(self, tone: list[Player], ringback_tone: bool) -> Callable[[Leg, LegEvent], None]:
        """What the caller hears while the callee rings: 180 or 183 with the callee's early media
        when the caller is not answered yet, a ringback tone once it is."""

        def progress(leg: Leg, event: LegEvent) -> None:
            if not isinstance(event, Ringing):
                return
            if not self.leg.is_answered:
                if event.early_media:
                    self.leg.early_media()
                    with contextlib.suppress(RuntimeError):
                        MediaBridge(self.leg.media, leg.media).connect()
                else:
                    self.leg.ring()
                if self.call.state is CallState.INITIATED:
                    self.engine.spawn(self.call.move(CallState.RINGING))
            elif ringback_tone and not tone and not event.early_media:
                tone.append(self.leg.media.play(frames_of(ringback(), loop=True)))

        return progress

    async def _follow(self, connection: Bridge | RoomSeat) -> None:
        """Until the call's parties are no longer connected; a transfer or a move into a conference
        replaces the connection, and the call follows it. Records which side ended it."""
        while True:
            await connection.wait()
            following = self.engine.bridges.get(self.call.id)
            if following is None or following is connection:
                break
            connection = following
        ender = connection.first_to_end
        if ender is not None:  # what ended the conversation is what ended the call
            self.call.data["ended_by"] = (ender.peer, ender.end_cause, ender.end_status)

    def _dial_failed(self, status: int, cause: str) -> DialResult:
        word = failure_word(status)
        state, code = _OUTCOMES.get(word, (CallState.FAILED, status if 400 <= status < 700 else 503))
        self.outcome = Outcome(state, code, cause)
        return DialResult(word, status or None, cause=cause)

    def bridge(self, other: Leg) -> Bridge:
        """Connect the caller and `other` (B2BUA); returns the bridge, which ends when either leg ends."""
        bridge = Bridge(self.leg, other, music=self.engine.music)
        bridge.start()
        self.bridge_in_use = bridge
        self.engine.bridged(self.call, bridge)
        return bridge

    async def conference(self, name: str = "default") -> None:
        """Join the conference `name` (made on first join) until this caller hangs up."""
        await self.answer()
        room = self.engine.rooms.get(name)
        if room is None:
            room = self.engine.rooms[name] = Conference(name, self.engine.media.clock)
        room.join(self.leg)
        try:
            await self.leg.ended.wait()
        finally:
            room.leave(self.leg)
            if not room.members:
                self.engine.rooms.pop(name, None)

    async def hangup(self, reason: str = "normal clearing") -> None:
        await self.leg.hangup(reason)


async def _as_8k(frames: AsyncIterator[Frame], rate: int) -> AsyncIterator[Frame]:
    from voxswitch.media.resample import FrameResampler

    resampler = FrameResampler(rate, 8000) if rate != 8000 else None
    try:
        async for frame in frames:
            yield frame if resampler is None else resampler.process(frame)
    finally:
        aclose = getattr(frames, "aclose", None)
        if aclose is not None:
            await aclose()
