"""A player port: frames from an async source, sent one per tick of the shared media clock.

The source (TTS, a WAV file, music on hold) produces 20 ms frames at 8 kHz as fast as it likes; the
player keeps a small buffer ahead of the clock and applies back-pressure to the source, so a long
sentence costs a second of memory, not its whole length. `done` resolves when the source runs dry
or the player is stopped; stopping closes the source at once (a TTS engine frees its worker).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Callable

from voxswitch.media.clock import MediaClock
from voxswitch.media.frames import Frame

FrameSink = Callable[[Frame], None]


class Player:
    def __init__(self, clock: MediaClock, sink: FrameSink, frames: AsyncIterator[Frame], max_buffer: int = 50) -> None:
        self.clock = clock
        self.sink = sink
        self.buffer: collections.deque[Frame] = collections.deque()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.frames_played = 0
        self._space = asyncio.Event()
        self._space.set()
        self._exhausted = False
        self._max = max_buffer
        self._feeder = asyncio.get_running_loop().create_task(self._feed(frames))
        self._handle: int | None = clock.add(self.tick)

    async def _feed(self, frames: AsyncIterator[Frame]) -> None:
        try:
            async for frame in frames:
                self.buffer.append(frame)
                if len(self.buffer) >= self._max:
                    self._space.clear()
                    await self._space.wait()
        finally:
            self._exhausted = True
            aclose = getattr(frames, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    def tick(self, now: float) -> None:
        if self.buffer:
            self.sink(self.buffer.popleft())
            self.frames_played += 1
            if len(self.buffer) < self._max // 2:
                self._space.set()
        elif self._exhausted:
            self.stop()

    def stop(self) -> None:
        if self._handle is not None:
            self.clock.remove(self._handle)
            self._handle = None
        self._feeder.cancel()
        if not self.done.done():
            self.done.set_result(None)
