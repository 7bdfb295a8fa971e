"""Recording a leg (mono: what its peer says) or a call (stereo: one channel per direction).

A recorder writes one frame per tick of the media clock (and the frames of ticks a stalled clock
skipped), so a file's length is the time that passed, gaps and all. Stereo puts the caller on the
left and what the caller hears on the right: the other party when the call is bridged, or what
the app plays when it is not. Pausing writes
nothing (the file gets shorter, as Twilio's pause does); the row in `recordings` is written when
the recording stops, and a recording whose call dies still gets its row.
"""

from __future__ import annotations

import logging
from pathlib import Path

from voxswitch.media.clock import PTIME, MediaClock
from voxswitch.media.recorder import WavRecorder
from voxswitch.media.session import MediaSession
from voxswitch.store.database import Database
from voxswitch.store.models import Recording, new_id

log = logging.getLogger(__name__)


class CallRecorder:
    def __init__(
        self,
        clock: MediaClock,
        directory: Path,
        call_id: str,
        left: MediaSession,
        right: MediaSession | None = None,
        *,
        stereo: bool = False,
        max_seconds: float | None = None,
    ) -> None:
        self.clock = clock
        self.max_ticks = round(max_seconds / PTIME) if max_seconds is not None else None
        self.call_id = call_id
        self.left, self.right = left, right
        self.stereo = stereo or right is not None
        self.id = new_id()
        self.path = directory / f"{call_id}-{self.id[:8]}.wav"
        self.wav = WavRecorder(self.path, channels=2 if self.stereo else 1)
        self._tick: int | None = None
        self._started: float | None = None
        self._ticks = 0  # clock ticks written (paused ones included: pausing drops their frames)
        self.row: Recording | None = None

    @property
    def paused(self) -> bool:
        return self.wav.paused

    def start(self) -> None:
        self.left.listen()
        if self.right is not None:
            self.right.listen()
        elif self.stereo:
            self.left.capture_sent(True)
        self._tick = self.clock.add(self._write)

    def _write(self, now: float) -> None:
        # The clock skips ticks after a stall (players must not burst); a recording must not, so the
        # frames of skipped ticks are written too, and the file's length stays the time that passed.
        if self._started is None:
            self._started = now
        due = round((now - self._started) / PTIME) + 1
        missing = max(1, due - self._ticks)
        if self.max_ticks is not None:  # a recording's length is capped exactly, however late its timer
            missing = min(missing, self.max_ticks - self._ticks)
        for k in range(missing):
            at = now - (missing - 1 - k) * PTIME
            heard = self.left.take_frame(at)
            if not self.stereo:
                self.wav.write(heard)
            elif self.right is not None:
                self.wav.write(heard, self.right.take_frame(at))
            else:
                self.wav.write(heard, self.left.take_sent())
        self._ticks += missing

    def pause(self) -> None:
        self.wav.paused = True

    def resume(self) -> None:
        self.wav.paused = False

    def close(self) -> None:
        """Stop writing and finish the file (idempotent)."""
        if self._tick is not None:
            self.clock.remove(self._tick)
            self._tick = None
            self.left.unlisten()
            if self.right is not None:
                self.right.unlisten()
            elif self.stereo:
                self.left.capture_sent(False)
        self.wav.close()

    async def stop(self, db: Database) -> Recording:
        """Close the file and record it in the store; the row (written once)."""
        self.close()
        if self.row is None:
            self.row = Recording(
                id=self.id,
                call_id=self.call_id,
                path=str(self.path),
                channels=2 if self.stereo else 1,
                sample_rate=self.wav.sample_rate,
                duration_seconds=self.wav.duration_seconds,
                size_bytes=self.path.stat().st_size,
            )
            async with db.writing() as s:
                s.add(self.row)
                await s.commit()
            log.info("recording saved", extra={"call_id": self.call_id, "seconds": self.wav.duration_seconds})
        return self.row
