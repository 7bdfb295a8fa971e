"""Ringing one or several destinations at once: the first to answer wins, the rest are cancelled.

This is the part of `dial` (the verb, in `apps.py`) that does not depend on who is calling: place an
`OutboundSipLeg` per destination in parallel (a device with two registered phones rings both, a ring
group rings all its members), report the first ringing and early media, keep the first 2xx and
CANCEL every other attempt (RFC 3261 §9.1). The outcome names Twilio's DialCallStatus values
(`completed` once bridged, `busy`, `no-answer`, `failed`, `canceled`), which is also what the
call records and the API documents use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from voxswitch.engine.leg import Leg, LegEvent
from voxswitch.engine.sip_outbound import NO_ANSWER, Destination, OutboundSipLeg

log = logging.getLogger(__name__)

BUSY_CODES = frozenset({486, 600})
NO_ANSWER_CODES = frozenset({NO_ANSWER, 408, 480, 487})


@dataclass
class Attempt:
    """The result of ringing: the leg that answered (if any), and the status that decided it."""

    leg: OutboundSipLeg | None
    status: int  # 200 when answered; else the most telling failure (busy beats no answer beats error)
    cause: str

    @property
    def outcome(self) -> str:
        return "answered" if self.leg is not None else failure_word(self.status)


def failure_word(status: int) -> str:
    """Twilio's DialCallStatus for a call that was not answered with `status`."""
    if status in BUSY_CODES:
        return "busy"
    if status in NO_ANSWER_CODES:
        return "no-answer"
    return "failed"


def _rank(status: int) -> int:
    """Which failure to report when every destination failed (RFC 3261 §16.7 step 6, simplified)."""
    if status in BUSY_CODES:
        return 0
    if 600 <= status < 700:
        return 1
    if status in NO_ANSWER_CODES:
        return 3
    return 2


async def ring(
    legs: list[OutboundSipLeg],
    ring_for: float,
    *,
    on_event: Callable[[Leg, LegEvent], None] | None = None,
    gave_up: asyncio.Event | None = None,
) -> Attempt:
    """Ring every leg; keep the first that answers. `gave_up` (the caller hung up) cancels them all."""
    if on_event is not None:
        for leg in legs:
            leg.listeners.append(on_event)
    calls = {asyncio.ensure_future(leg.call(ring_for)): leg for leg in legs}
    stop = asyncio.ensure_future(gave_up.wait()) if gave_up is not None else None
    winner: OutboundSipLeg | None = None
    statuses: list[tuple[int, str]] = []
    pending = set(calls)
    try:
        while pending and winner is None:
            waiting = pending | ({stop} if stop is not None else set())
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if stop is not None and stop in done:
                break
            for task in done:
                pending.discard(task)
                leg = calls[task]
                status = task.result() if not task.cancelled() and task.exception() is None else 503
                if 200 <= status < 300 and winner is None:
                    winner = leg
                else:
                    statuses.append((status, leg.end_cause or str(status)))
    finally:
        if stop is not None:
            stop.cancel()
        for task in pending:
            leg = calls[task]
            if leg is not winner:
                await leg.cancel()
        if pending:  # let the cancelled attempts see their 487 (or give up after a while)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 5)
            for task in pending:
                task.cancel()
        if on_event is not None:
            for leg in legs:
                if on_event in leg.listeners:
                    leg.listeners.remove(on_event)
    if winner is not None:
        return Attempt(winner, 200, "answered")
    if gave_up is not None and gave_up.is_set():
        return Attempt(None, 487, "caller hung up")
    if not statuses:
        return Attempt(None, NO_ANSWER, "no answer")
    status, cause = min(statuses, key=lambda s: _rank(s[0]))
    return Attempt(None, status, cause)


__all__ = ["Attempt", "Destination", "failure_word", "ring"]
