"""A Call: its state machine, persisted on every transition and published as an event.

The states are the documents' shared vocabulary. A call ends in exactly one final state, and the
`calls` row is written at each move (in order, in the background), so a crash leaves the last known
state behind; the engine finishes such leftovers when it starts again (`close_interrupted`).

Two moves wait for the store. The answer waits until the call's first row is durable, so a call
anyone was told is answered is never missing from the records; setting the call up (routing, the
INVITE sent on) does not wait for it, so a commit's latency is not added to every call's setup
(by the time the far end answers, the row is long written). The final move waits for its own
write, so a call is never forgotten before its outcome is stored.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from voxswitch.store.database import Database
from voxswitch.store.group_commit import GroupCommit, sqlite_values
from voxswitch.store.models import CallRecord, new_id, utcnow

log = logging.getLogger(__name__)


class CallState(StrEnum):
    INITIATED = "initiated"
    RINGING = "ringing"
    ANSWERED = "answered"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    COMPLETED = "completed"
    FAILED = "failed"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in _FINAL


S = CallState
_FINAL = frozenset({S.COMPLETED, S.FAILED, S.BUSY, S.NO_ANSWER, S.CANCELLED})
_ENDINGS_BEFORE_ANSWER = {S.FAILED, S.BUSY, S.NO_ANSWER, S.CANCELLED}
TRANSITIONS: frozenset[tuple[CallState, CallState]] = frozenset(
    {(S.INITIATED, S.RINGING), (S.INITIATED, S.ANSWERED), (S.RINGING, S.ANSWERED)}
    | {(a, b) for a in (S.INITIATED, S.RINGING) for b in _ENDINGS_BEFORE_ANSWER}
    | {(S.ANSWERED, S.IN_PROGRESS), (S.IN_PROGRESS, S.ON_HOLD), (S.ON_HOLD, S.IN_PROGRESS)}
    | {(a, b) for a in (S.ANSWERED, S.IN_PROGRESS, S.ON_HOLD) for b in (S.COMPLETED, S.FAILED)}
)

Listener = Callable[["Call", CallState], Awaitable[None] | None]
# How soon a call's intermediate states must be durable (the first and final: the next commit). Waiting a
# little lets one commit carry many calls' rows: at 100 calls/s a call cost 4.7 rows in 1.7
# commits, now 2.9 rows in 1.3 commits (a commit costs far more than a row).
_INTERMEDIATE_WITHIN = 0.5


class IllegalCallTransition(RuntimeError):
    pass


class Call:
    def __init__(
        self,
        db: Database,
        *,
        direction: str,
        from_number: str,
        to_number: str,
        surface: str = "engine",
        user_id: str | None = None,
        call_id: str | None = None,
    ) -> None:
        self.db = db
        self.id = call_id or new_id()
        self.direction = direction
        self.from_number = from_number
        self.to_number = to_number
        self.surface = surface
        self.user_id = user_id
        self.state = CallState.INITIATED
        self.created_at: datetime = utcnow()
        self.answered_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.hangup_cause: str | None = None
        self.hangup_status: int | None = None
        self.app: str | None = None
        self.answered_by: str | None = None
        self.mos: float | None = None
        self.did: str | None = None
        self.route_id: int | None = None
        self.legs: list[Any] = []  # engine.leg.Leg, first the one the call is about (caller or callee)
        self.listeners: list[Listener] = []
        self._writing: asyncio.Future[None] | None = None
        self._first_write: asyncio.Future[None] | None = None
        self.ended = asyncio.Event()
        self.data: dict[str, Any] = {}  # what an app wants to keep with the call (digits, ...)

    @property
    def duration_seconds(self) -> int | None:
        if self.answered_at is None:
            return None
        end = self.ended_at or utcnow()
        return int((end - self.answered_at).total_seconds() + 0.5)

    async def move(self, new: CallState, cause: str | None = None, status: int | None = None) -> None:
        """Take a transition of the table (a repeated final move is a no-op), persist, publish."""
        if new is CallState.ANSWERED:
            await self.recorded()
        if new is self.state or (self.state.final and new.final):
            return
        if (self.state, new) not in TRANSITIONS:
            raise IllegalCallTransition(f"call {self.id}: {self.state} -> {new}")
        self.state = new
        now = utcnow()
        if new is CallState.ANSWERED:
            self.answered_at = now
        if new.final:
            self.ended_at = now
            self.hangup_cause = cause or self.hangup_cause
            self.hangup_status = status if status is not None else self.hangup_status
        # Writes go out in order behind the call; only the final one is waited for, so a caller
        # hears the app the moment it is answered, not one database commit later.
        written = self._persist()
        if new.final:
            await written
        for listener in list(self.listeners):
            try:
                result = listener(self, new)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("call listener failed")
        if new.final:
            self.ended.set()

    def _persist(self) -> asyncio.Future[None]:
        """Queue this call's row for a group commit (a row already queued is written once, as it is
        when its batch is taken); the future settles when it is durable. The first and the final
        row go in the next commit; the states between ride along with other calls' commits, within
        half a second."""
        within = 0.0 if self._first_write is None or self.state.final else _INTERMEDIATE_WITHIN
        self._writing = asyncio.ensure_future(
            record_writer(self.db).submit(lambda: [self.row()], key=("calls", self.id), within=within)
        )
        self._writing.add_done_callback(self._write_failed)
        return self._writing

    def _write_failed(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("could not store the call's state", exc_info=future.exception(), extra={"call_id": self.id})

    async def persisted(self) -> None:
        """Until every state so far is in the store."""
        if self._writing is not None:
            await asyncio.gather(self._writing, return_exceptions=True)

    def record(self) -> None:
        """Queue the call's first row; `recorded` (and the answer) wait for it."""
        if self._first_write is None:
            self._first_write = self._persist()

    async def recorded(self) -> None:
        """Until the call has a durable row (it is written now if it was not queued); raises what
        the store raised, so a call that cannot be recorded is not answered."""
        self.record()
        assert self._first_write is not None
        await asyncio.shield(self._first_write)

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "direction": self.direction,
            "from_number": self.from_number[:64],
            "to_number": self.to_number[:64],
            "status": self.state.value,
            "user_id": self.user_id,
            "surface": self.surface,
            "created_at": self.created_at,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "duration_seconds": self.duration_seconds if self.ended_at else None,
            "hangup_cause": (self.hangup_cause or None) and self.hangup_cause[:200],
            "hangup_status": self.hangup_status,
            "app": self.app,
            "answered_by": self.answered_by and self.answered_by[:64],
            "mos": self.mos,
            "did": self.did,
            "route_id": self.route_id,
        }


_COLUMNS = tuple(c.name for c in CallRecord.__table__.columns)
_UPSERT = (
    f"INSERT INTO calls ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "
    f"ON CONFLICT(id) DO UPDATE SET {', '.join(f'{c}=excluded.{c}' for c in _COLUMNS if c != 'id')}"
)


def _upsert_sqlite(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
    conn.executemany(_UPSERT, sqlite_values(rows, _COLUMNS))


async def _upsert_postgres(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    from sqlalchemy.dialects.postgresql import insert

    statement = insert(CallRecord.__table__).values([{c: r.get(c) for c in _COLUMNS} for r in rows])
    statement = statement.on_conflict_do_update(
        index_elements=["id"], set_={c: statement.excluded[c] for c in _COLUMNS if c != "id"}
    )
    await session.execute(statement)


def record_writer(db: Database) -> GroupCommit:
    """The call records' group-commit writer of this database (every call's moves share it)."""
    writer = db.writers.get("calls")
    if writer is None:
        writer = db.writers["calls"] = GroupCommit(db, "calls", sqlite=_upsert_sqlite, other=_upsert_postgres)
    return writer


async def close_interrupted(db: Database) -> int:
    """At start: calls the previous process left in a live state can no longer be live (one process
    owns its calls). They end as failed, "interrupted by restart", so records and CDRs are whole."""
    from sqlalchemy import update

    from voxswitch.store.models import ACTIVE_CALL_STATES

    now = utcnow()
    async with db.writing() as s:
        result = await s.execute(
            update(CallRecord)
            .where(CallRecord.status.in_(ACTIVE_CALL_STATES))
            .values(status=CallState.FAILED.value, ended_at=now, hangup_cause="interrupted by restart")
        )
        await s.commit()
    count = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if count:
        log.warning("%d calls were live when the server stopped; recorded as interrupted", count)
    return count
