"""One 20 ms clock for every outgoing stream: a single task wakes per tick and calls each source.

Players, TTS streams and mixers register a `tick(now)` callable; the clock calls them all, in one
pass, on a schedule computed from the start time (so it does not drift), skipping ahead after a
stall rather than bursting to catch up. No stream owns a task or a timer (DESIGN: media).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

Tick = Callable[[float], None]
PTIME = 0.020


class MediaClock:
    def __init__(self, interval: float = PTIME) -> None:
        self.interval = interval
        self._sources: dict[int, Tick] = {}
        self._next_id = 0
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0
        self.late_ticks = 0

    def add(self, tick: Tick) -> int:
        """Register a source; returns the handle `remove` takes. Starts the clock if needed."""
        self._next_id += 1
        self._sources[self._next_id] = tick
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="media-clock")
        return self._next_id

    def remove(self, handle: int) -> None:
        self._sources.pop(handle, None)

    def __len__(self) -> int:
        return len(self._sources)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while self._sources:
            now = loop.time()
            if now - due > 5 * self.interval:  # a stall: do not burst, start again from now
                self.late_ticks += 1
                due = now
            for tick in list(self._sources.values()):
                try:
                    tick(due)
                except Exception:
                    log.exception("media source failed; it is removed")
                    self._sources = {k: v for k, v in self._sources.items() if v is not tick}
            self.ticks += 1
            due += self.interval
            await asyncio.sleep(max(0.0, due - loop.time()))

    async def stop(self) -> None:
        self._sources.clear()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
