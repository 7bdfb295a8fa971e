"""An N-party conference: on each 20 ms tick, everyone hears the sum of the others.

Mixing is one int32 sum over the participants' frames and one subtraction per participant (what
they said is taken out of what they hear), clipped back to 16 bits: NumPy, no per-sample loop.
Each member's frames come through its own jitter buffer (`MediaSession.take_frame`) and the mix goes
out in its own codec, so members with different codecs share one room.
"""

from __future__ import annotations

import asyncio

import numpy as np

from voxswitch.engine.leg import Ended, Leg, LegEvent
from voxswitch.media.clock import MediaClock


class Conference:
    def __init__(self, name: str, clock: MediaClock) -> None:
        self.name = name
        self.clock = clock
        self.members: list[Leg] = []
        self.muted: set[Leg] = set()  # heard nothing from; they still hear the room
        self._tick: int | None = None

    def join(self, leg: Leg) -> None:
        leg.media.listen()
        self.members.append(leg)
        if self._tick is None:
            self._tick = self.clock.add(self._mix)

    def leave(self, leg: Leg) -> None:
        if leg in self.members:
            self.members.remove(leg)
            self.muted.discard(leg)
            leg.media.unlisten()
        if not self.members and self._tick is not None:
            self.clock.remove(self._tick)
            self._tick = None

    def _mix(self, now: float) -> None:
        members = [m for m in self.members if not m.ended.is_set()]
        if not members:
            return
        heard = np.stack([m.media.take_frame(now) for m in members]).astype(np.int32)
        for i, member in enumerate(members):
            if member in self.muted:
                heard[i] = 0
        total = heard.sum(axis=0)
        mixes = np.clip(total - heard, -32768, 32767).astype(np.int16)
        for member, mix in zip(members, mixes, strict=True):
            member.media.send_frame(mix)


class RoomSeat:
    """A live call moved into a room (API): its legs stay in the room until each hangs up; like a
    bridge, `done` tells the call's app when the last one has left."""

    def __init__(self, room: Conference, legs: list[Leg]) -> None:
        self.room = room
        self.legs = [leg for leg in legs if not leg.ended.is_set()]
        self.done = asyncio.Event()
        self.first_to_end: Leg | None = None
        for leg in self.legs:
            room.join(leg)
            leg.listeners.append(self._on_event)
        if not self.legs:
            self.done.set()

    def _on_event(self, leg: Leg, event: LegEvent) -> None:
        if isinstance(event, Ended) and leg in self.legs:
            self.first_to_end = self.first_to_end or leg
            self.room.leave(leg)
            self.legs.remove(leg)
            if not self.legs:
                self.done.set()

    async def wait(self) -> Leg | None:
        await self.done.wait()
        return self.first_to_end
