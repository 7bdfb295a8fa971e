"""Two legs of a call talking to each other: the B2BUA's media and its call-control glue.

The media goes through `media.bridge.MediaBridge` (relay untouched, or transcode). Call control:
when one side puts the other on hold, the held side is re-offered sendonly (its phone shows the
hold) and hears music on hold from us until the holder resumes; when either side ends, the other is
hung up with the same cause. `detach` lets a transfer take a leg out of the bridge without ending
the other one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from voxswitch.engine.leg import Ended, HoldChanged, Leg, LegEvent
from voxswitch.media.bridge import MediaBridge
from voxswitch.media.frames import Frame
from voxswitch.media.player import Player

log = logging.getLogger(__name__)

MusicSource = Callable[[], AsyncIterator[Frame]]


class Bridge:
    def __init__(self, a: Leg, b: Leg, *, music: MusicSource | None = None, hang_up_other: bool = True) -> None:
        self.a, self.b = a, b
        self.hang_up_other = hang_up_other  # False: whoever set the bridge up decides (a transfer in progress)
        self.media = MediaBridge(a.media, b.media)
        self.music = music
        self.done = asyncio.Event()
        self.first_to_end: Leg | None = None
        self._moh: dict[Leg, Player] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.media.connect()
        for leg in (self.a, self.b):
            leg.listeners.append(self._on_event)
            if leg.ended.is_set():
                self._ended(leg)

    def other(self, leg: Leg) -> Leg:
        return self.b if leg is self.a else self.a

    def detach(self) -> None:
        """Stop bridging without ending either leg (transfer, unbridge)."""
        for leg in (self.a, self.b):
            if self._on_event in leg.listeners:
                leg.listeners.remove(self._on_event)
        for player in self._moh.values():
            player.stop()
        self._moh.clear()
        self.media.disconnect()
        self.done.set()

    async def wait(self) -> Leg | None:
        """Until either leg ends (the other is then hung up) or the bridge is detached."""
        await self.done.wait()
        return self.first_to_end

    # events -------------------------------------------------------------------------------------

    def _on_event(self, leg: Leg, event: LegEvent) -> None:
        if isinstance(event, Ended):
            self._ended(leg)
        elif isinstance(event, HoldChanged):
            self._spawn(self._pass_hold(leg, event.held))

    def _ended(self, leg: Leg) -> None:
        if self.first_to_end is None:
            self.first_to_end = leg
        other = self.other(leg)
        self.detach()
        if self.hang_up_other and not other.ended.is_set():
            self._spawn(other.hangup(leg.end_cause or "normal clearing"))

    async def _pass_hold(self, holder: Leg, held: bool) -> None:
        """The holder's peer held us: hold the other side too and play it music; resume likewise."""
        other = self.other(holder)
        if held:
            self.media.disconnect()
            await other.hold()
            if self.music is not None and other not in self._moh and not other.ended.is_set():
                self._moh[other] = other.media.play(self.music())
        else:
            player = self._moh.pop(other, None)
            if player is not None:
                player.stop()
            await other.resume()
            if not self.done.is_set():
                self.media.connect()

    async def hold(self, leg: Leg) -> bool:
        """Hold `leg` from our side (API): it is re-offered sendonly and hears music."""
        self.media.disconnect()
        ok = await leg.hold()
        if self.music is not None and leg not in self._moh:
            self._moh[leg] = leg.media.play(self.music())
        return ok

    async def resume(self, leg: Leg) -> bool:
        player = self._moh.pop(leg, None)
        if player is not None:
            player.stop()
        ok = await leg.resume()
        if not self.done.is_set() and not self.a.remote_hold and not self.b.remote_hold:
            self.media.connect()
        return ok

    def _spawn(self, work: object) -> None:
        task = asyncio.ensure_future(work)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
