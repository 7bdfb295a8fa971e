"""A leg: one party's connection to a call, as the call controller sees it.

A leg speaks its own protocol to its peer (SIP today, a WebSocket media stream later) and
call-control to everything above it (DESIGN.md house rule 4): it can ring, answer, reject, hang up,
hold and resume, send digits; it reports ringing, answer, hold changes, digits and its end as
`LegEvent`s and as awaitable flags. Apps, bridges and the API act on legs only through this
interface, so none of them knows SIP.

Lifecycle (`LegState`): NEW -> CALLING (we sent the call) / OFFERED (the peer called us) -> RINGING
-> EARLY (early media) -> ANSWERED -> ENDED; ENDED is reachable from every state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from voxswitch.media.session import MediaSession

log = logging.getLogger(__name__)


class LegState(StrEnum):
    NEW = "new"
    CALLING = "calling"
    OFFERED = "offered"
    RINGING = "ringing"
    EARLY = "early"
    ANSWERED = "answered"
    ENDED = "ended"


_S = LegState
LEG_MOVES = frozenset(
    {(_S.NEW, _S.CALLING), (_S.NEW, _S.OFFERED)}
    | {(a, b) for a in (_S.CALLING, _S.OFFERED) for b in (_S.RINGING, _S.EARLY, _S.ANSWERED)}
    | {(_S.RINGING, _S.EARLY), (_S.RINGING, _S.ANSWERED), (_S.EARLY, _S.ANSWERED), (_S.EARLY, _S.RINGING)}
    | {(s, _S.ENDED) for s in _S if s is not _S.ENDED}
)


@dataclass(frozen=True, slots=True)
class Ringing:
    early_media: bool = False


@dataclass(frozen=True, slots=True)
class Answered:
    pass


@dataclass(frozen=True, slots=True)
class HoldChanged:
    held: bool  # the peer put us on hold (True) or took us off (False)


@dataclass(frozen=True, slots=True)
class Digit:
    digit: str
    method: str  # "rfc4733", "inband" or "info"


@dataclass(frozen=True, slots=True)
class Ended:
    cause: str
    status: int | None  # the SIP status that ended it, when one did (486, 487, 503 ...)


LegEvent = Ringing | Answered | HoldChanged | Digit | Ended
Listener = Callable[["Leg", LegEvent], None]


class HungUp(Exception):
    """The leg ended while a verb was waiting on it."""


class Leg:
    """Call-control state shared by every kind of leg; subclasses speak the protocol."""

    kind = "leg"

    def __init__(self, media: MediaSession, *, peer: str, direction: str) -> None:
        self.media = media
        self.peer = peer  # who is at the other end: a device username, a number, a URI
        self.direction = direction  # "inbound": the peer called us; "outbound": we called it
        self.state = LegState.NEW
        self.ringing = asyncio.Event()
        self.answered = asyncio.Event()
        self.ended = asyncio.Event()
        self.end_cause: str | None = None
        self.end_status: int | None = None
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        self.remote_hold = False  # the peer holds us
        self.local_hold = False  # we hold the peer
        self.listeners: list[Listener] = []
        self.party = "device"  # who the peer is: "device" (one of ours), "trunk", "peer" (a SIP URI, a trusted host)
        self.call_id: str | None = None  # the engine call this leg belongs to
        self.answered_at: float | None = None  # event-loop time, for the media timeout
        media.on_digit = self._media_digit

    def _media_digit(self, digit: str) -> None:
        terms = self.media.terms
        self.on_digit(digit, "rfc4733" if terms is not None and terms.dtmf_recv_pt is not None else "inband")

    # events -------------------------------------------------------------------------------------

    def _move(self, new: LegState) -> bool:
        if new is self.state:
            return False
        if (self.state, new) not in LEG_MOVES:
            raise RuntimeError(f"leg {self.peer}: {self.state} -> {new}")
        self.state = new
        return True

    def emit(self, event: LegEvent) -> None:
        for listener in list(self.listeners):
            try:
                listener(self, event)
            except Exception:
                log.exception("leg listener failed")

    def on_ringing(self, early_media: bool = False) -> None:
        if self.state in (LegState.CALLING, LegState.OFFERED, LegState.RINGING, LegState.EARLY):
            self._move(LegState.EARLY if early_media else LegState.RINGING)
            self.ringing.set()
            self.emit(Ringing(early_media))

    def on_answered(self) -> None:
        if self.state is not LegState.ENDED and self._move(LegState.ANSWERED):
            self.answered_at = asyncio.get_running_loop().time()
            self.answered.set()
            self.emit(Answered())

    def on_hold_changed(self, held: bool) -> None:
        if held != self.remote_hold:
            self.remote_hold = held
            self.emit(HoldChanged(held))

    def on_digit(self, digit: str, method: str) -> None:
        self.digits.put_nowait(digit)
        self.emit(Digit(digit, method))

    def finish(self, cause: str, status: int | None = None) -> None:
        """The leg is over: free its media, wake everyone waiting, tell the listeners (once)."""
        if self.state is LegState.ENDED:
            return
        self._move(LegState.ENDED)
        self.end_cause, self.end_status = cause, status
        self.media.close()
        self.media.on_digit = None
        self.ended.set()
        self.emit(Ended(cause, status))
        # An ended leg says nothing more. Dropping the listeners (the call's, a bridge's) and the
        # session's way back to us breaks the reference cycles through this leg, so the call's
        # objects are freed by reference counting when it ends, not by a full collection later.
        self.listeners.clear()

    @property
    def is_answered(self) -> bool:
        return self.state is LegState.ANSWERED

    # call control: the protocol subclasses implement these ---------------------------------------

    def ring(self) -> None:
        """Tell a calling peer its call is ringing (inbound legs)."""

    def early_media(self) -> None:
        """Let a calling peer hear our audio before the answer (inbound legs; 183 in SIP)."""
        self.ring()

    async def answer(self) -> None:
        raise NotImplementedError

    def reject(self, status: int = 480, reason: str | None = None, *, cause: str | None = None) -> None:
        """Refuse an inbound call that has not been answered (`cause` goes on the record)."""
        raise NotImplementedError

    async def hangup(self, cause: str = "normal clearing") -> None:
        raise NotImplementedError

    async def hold(self) -> bool:
        """Put the peer on hold (we stop listening and send only); False if the peer refused."""
        raise NotImplementedError

    async def resume(self) -> bool:
        raise NotImplementedError

    async def send_digits(self, digits: str) -> None:
        await self.media.send_digits(digits)
