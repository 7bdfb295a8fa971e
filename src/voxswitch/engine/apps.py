"""Apps: async functions that drive a call with a small set of verbs, and the registry routes pick from.

The verbs are shaped after TwiML's (Say, Play, Gather, Pause, Hangup), so a TwiML interpreter can be
written on top of them, and after what the voice-call and agents documents need. An app sees a
`CallContext`, never SIP or RTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np

from voxswitch.engine.call import Call, CallState
from voxswitch.engine.conference import Conference
from voxswitch.engine.sip_leg import SAMPLES_PER_FRAME, SipLeg
from voxswitch.media.recorder import WavRecorder
from voxswitch.store.models import Recording, new_id
from voxswitch.voice.tts import TtsEngine

log = logging.getLogger(__name__)

App = Callable[["CallContext"], Awaitable[None]]
APPS: dict[str, App] = {}


def app(name: str) -> Callable[[App], App]:
    """Register an app under `name` (what a route or the API names)."""

    def register(fn: App) -> App:
        APPS[name] = fn
        return fn

    return register


class HungUp(Exception):
    """The far end hung up; an app's next verb raises this so it can stop (or clean up)."""


class CallContext:
    def __init__(
        self,
        call: Call,
        leg: SipLeg,
        tts: TtsEngine,
        recordings_dir: Path,
        rooms: dict[str, Conference] | None = None,
    ) -> None:
        self.rooms = rooms if rooms is not None else {}
        self.call = call
        self.leg = leg
        self.tts = tts
        self.recordings_dir = recordings_dir

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

    # verbs --------------------------------------------------------------------------------------

    async def answer(self) -> None:
        self._check()
        if self.call.state in (CallState.INITIATED, CallState.RINGING):
            await self.call.move(CallState.ANSWERED)
            await self.leg.answer()
            self._check()
            await self.call.move(CallState.IN_PROGRESS)

    async def ring(self) -> None:
        self._check()
        self.leg.ring()
        await self.call.move(CallState.RINGING)

    async def say(self, text: str, voice: str | None = None, language: str | None = None) -> None:
        """Speak `text`; returns when the last frame has been sent."""
        await self.answer()
        player = self.leg.play(_as_8k(self.tts.synthesize(text, voice=voice, language=language), self.tts.sample_rate))
        await self._until_ended(player.done)

    async def play(self, source: str | Path, loop: int = 1) -> None:
        """Play a WAV file (any rate; resampled to the call's) `loop` times (0: until hung up)."""
        from voxswitch.media.resample import load_wav

        await self.answer()
        samples = await asyncio.to_thread(load_wav, Path(source), 8000)
        count = 0
        while loop == 0 or count < loop:
            await self._until_ended(self.leg.play(_frames(samples)).done)
            count += 1

    async def pause(self, seconds: float) -> None:
        self._check()
        await self._until_ended(asyncio.sleep(seconds))

    async def gather(self, digits: int = 1, timeout: float = 5.0, finish_on_key: str = "#") -> str:  # noqa: ASYNC109  (TwiML's name)
        """Collect up to `digits` DTMF digits; `timeout` seconds of silence between keys ends it."""
        await self.answer()
        got = ""
        while len(got) < digits:
            try:
                key = await asyncio.wait_for(self._digit(), timeout)
            except TimeoutError:
                break
            if key == finish_on_key:
                break
            got += key
        return got

    async def _digit(self) -> str:
        getter = asyncio.ensure_future(self.leg.digits.get())
        await self._until_ended(getter)
        return getter.result()

    async def record(self, max_seconds: float = 60.0, beep: bool = True, finish_on_key: str = "#") -> Recording:
        """Record what the caller says (mono WAV in the data directory, with a store row) until
        `max_seconds`, `finish_on_key` or hang-up. The recording is kept even if the caller hangs up."""
        await self.answer()
        if beep:
            await self._until_ended(self.leg.play(_frames(_beep())).done)
        path = self.recordings_dir / f"{self.call.id}-{new_id()[:8]}.wav"
        recorder = WavRecorder(path)
        self.leg.start_recording(recorder)
        started = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(max_seconds):
                while True:
                    if await self._digit() == finish_on_key:
                        break
        except (TimeoutError, HungUp):
            pass
        finally:
            self.leg.stop_recording()
            recorder.close()
            log.info(
                "recorded %.2fs of frames in %.2fs",
                recorder.duration_seconds,
                asyncio.get_running_loop().time() - started,
            )
        row = Recording(
            call_id=self.call.id,
            path=str(path),
            channels=1,
            sample_rate=recorder.sample_rate,
            duration_seconds=recorder.duration_seconds,
            size_bytes=path.stat().st_size,
        )
        async with self.call.db.writing() as s:
            s.add(row)
            await s.commit()
        return row

    async def conference(self, name: str = "default") -> None:
        """Join the conference `name` (made on first join) until this caller hangs up."""
        await self.answer()
        room = self.rooms.setdefault(name, Conference(name, self.leg.clock))
        room.join(self.leg)
        try:
            await self.leg.ended.wait()
        finally:
            room.leave(self.leg)
            if not room.members:
                self.rooms.pop(name, None)

    async def hangup(self, reason: str = "normal clearing") -> None:
        await self.leg.hangup(reason)


async def _as_8k(frames: AsyncIterator[np.ndarray], rate: int) -> AsyncIterator[np.ndarray]:
    from voxswitch.media.resample import FrameResampler

    resampler = FrameResampler(rate, 8000) if rate != 8000 else None
    try:
        async for frame in frames:
            yield frame if resampler is None else resampler.process(frame)
    finally:
        aclose = getattr(frames, "aclose", None)
        if aclose is not None:
            await aclose()


def _beep(hz: float = 1000.0, seconds: float = 0.25) -> np.ndarray:
    t = np.arange(int(8000 * seconds)) / 8000
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)


async def _frames(samples: np.ndarray) -> AsyncIterator[np.ndarray]:
    for start in range(0, len(samples), SAMPLES_PER_FRAME):
        frame = samples[start : start + SAMPLES_PER_FRAME]
        if len(frame) < SAMPLES_PER_FRAME:
            frame = np.pad(frame, (0, SAMPLES_PER_FRAME - len(frame)))
        yield frame.astype(np.int16)


# --- built-in apps -------------------------------------------------------------------------------


@app("hello")
async def hello(ctx: CallContext) -> None:
    """Says a sentence and hangs up: the smallest useful app, and the one the docs show."""
    await ctx.say("Hello from Voxswitch. This call is working.")
    await ctx.hangup()


@app("conference")
async def conference_room(ctx: CallContext) -> None:
    """Everyone who dials `conference` is in one room and hears the others."""
    await ctx.conference("default")


@app("digits")
async def read_back_digits(ctx: CallContext) -> None:
    """Asks for digits, keeps them on the call, reads them back: DTMF in and speech out."""
    await ctx.say("Please enter your code, then press the pound key.")
    entered = await ctx.gather(digits=12, timeout=6.0)
    ctx.call.data["digits"] = entered
    log.info("caller entered digits", extra={"call_id": ctx.call.id, "digits": entered})
    await ctx.say(f"You entered {' '.join(entered) or 'nothing'}.")
    await ctx.hangup()
