"""The jobs table: inserting requests durably, claiming, moving by the state table, recovering.

Inserts go through a group commit (store/group_commit.py): requests that arrive while a commit is
in flight share the next one (each still waits for its own rows to be durable before it is
answered), which is what keeps enqueue latency flat at hundreds of requests per second on SQLite. Claiming
takes the oldest due `queued` rows with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several nodes
never claim one job twice; SQLite has one writer, and every write here goes through
`Database.writing()`, so its conditional UPDATE is the whole story there.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from voxswitch.jobs.states import FINAL, LIVE, JobState, check
from voxswitch.store.database import Database, is_sqlite
from voxswitch.store.group_commit import GroupCommit, sqlite_values
from voxswitch.store.models import ACTIVE_CALL_STATES, CallRecord, Job, WebhookDelivery, utcnow

log = logging.getLogger(__name__)

_LIVE = [s.value for s in LIVE]
_FINAL = [s.value for s in FINAL]


@dataclass(frozen=True)
class Recovered:
    requeued: int  # found `claimed`: nothing was sent, queued again
    interrupted: int  # found dialling or in a call: finished as failed, never re-dialled


@dataclass(frozen=True)
class NewDelivery:
    url: str
    body: str


_JOB_COLUMNS = tuple(c.name for c in Job.__table__.columns)
_INSERT_JOB = f"INSERT INTO jobs ({', '.join(_JOB_COLUMNS)}) VALUES ({', '.join('?' for _ in _JOB_COLUMNS)})"


def _insert_sqlite(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
    conn.executemany(_INSERT_JOB, sqlite_values(_complete(rows), _JOB_COLUMNS))


async def _insert_other(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    await session.execute(insert(Job.__table__), _complete(rows))


def _column_default(name: str) -> Any:
    default = Job.__table__.columns[name].default
    if default is None:
        return None
    arg = default.arg  # type: ignore[attr-defined]
    return arg(None) if callable(arg) else arg


def _complete(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every row with every column: an executemany takes its columns from the first row."""
    return [{n: row[n] if n in row else _column_default(n) for n in _JOB_COLUMNS} for row in rows]


class JobStore:
    def __init__(self, db: Database, kind: str) -> None:
        self.db = db
        self.kind = kind
        self.postgres = not is_sqlite(db.url)
        # requests that arrive while a commit runs share the next one (store/group_commit.py)
        self._inserts = GroupCommit(db, "jobs", sqlite=_insert_sqlite, other=_insert_other)

    # requests -----------------------------------------------------------------------------------

    async def insert(self, rows: list[dict[str, Any]]) -> None:
        """Commit these job rows (one request's, all or none); returns once they are durable."""
        await self._inserts.submit(rows)

    def close(self) -> None:
        self._inserts.close()

    async def get(self, job_id: str) -> Job | None:
        async with self.db.session() as s:
            return await s.get(Job, job_id)

    # workers ------------------------------------------------------------------------------------

    async def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Job]:
        """Up to `limit` due queued jobs, oldest first, now `claimed` by `owner`."""
        if limit <= 0:
            return []
        now = utcnow()
        due = (
            select(Job.id)
            .where(Job.kind == self.kind, Job.state == JobState.QUEUED.value, Job.not_before <= now)
            .order_by(Job.created_at, Job.id)
            .limit(limit)
        )
        if self.postgres:
            due = due.with_for_update(skip_locked=True)
        stmt = (
            update(Job)
            .where(Job.id.in_(due.scalar_subquery()), Job.state == JobState.QUEUED.value)
            .values(
                state=JobState.CLAIMED.value,
                owner=owner,
                lease_until=now + timedelta(seconds=lease_seconds),
                updated_at=now,
            )
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
        async with self.db.writing() as s:
            jobs = list((await s.scalars(stmt)).all())
            await s.commit()
        jobs.sort(key=lambda j: (j.created_at, j.id))
        return jobs

    async def move(
        self,
        job: Job,
        new: JobState,
        *,
        owner: str | None,
        report: Callable[[Job], Iterable[NewDelivery]] | None = None,
        **values: Any,
    ) -> bool:
        """Move `job` from its current state to `new` if it is still there and still `owner`'s,
        with the webhook deliveries `report` makes of the moved job, in one transaction; `job` is
        updated in place. False (and nothing written) when another worker or a recovery got there
        first."""
        old = JobState(job.state)
        check(old, new)
        now = utcnow()
        values = {"state": new.value, "updated_at": now, **values}
        if new.final or new is JobState.QUEUED:
            values.setdefault("owner", None)
            values.setdefault("lease_until", None)
        before = {key: getattr(job, key) for key in values}
        for key, value in values.items():
            setattr(job, key, value)
        deliveries = list(report(job)) if report is not None else []
        where = [Job.id == job.id, Job.state == old.value]
        where.append(Job.owner == owner if owner is not None else Job.owner.is_(None))
        try:
            async with self.db.writing() as s:
                result = await s.execute(update(Job).where(*where).values(**values))
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    await s.rollback()
                    ok = False
                else:
                    await self._add_deliveries(s, job.id, deliveries, now)
                    await s.commit()
                    ok = True
        except BaseException:
            ok = False
            raise
        finally:
            if not ok:
                for key, value in before.items():
                    setattr(job, key, value)
        return ok

    @staticmethod
    async def _add_deliveries(s: AsyncSession, job_id: str, deliveries: Iterable[NewDelivery], now: datetime) -> None:
        rows = [
            {
                "job_id": job_id,
                "url": d.url,
                "body": d.body,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for d in deliveries
        ]
        if rows:
            await s.execute(insert(WebhookDelivery), rows)

    async def renew(self, owner: str, lease_seconds: float) -> int:
        """Extend `owner`'s claim on every job it still holds."""
        now = utcnow()
        async with self.db.writing() as s:
            result = await s.execute(
                update(Job)
                .where(Job.owner == owner, Job.state.in_([JobState.CLAIMED.value, *_LIVE]))
                .values(lease_until=now + timedelta(seconds=lease_seconds))
            )
            await s.commit()
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def recover(self, *, dead_owner_prefix: str | None = None, alive: str | None = None) -> Recovered:
        """Jobs whose owner is gone: those of an earlier life of this node (`dead_owner_prefix`,
        except `alive`, ourselves), and any whose lease ran out. `claimed` ones go back to the
        queue; those that may have dialled are finished as failed, with why (states.py)."""
        now = utcnow()
        expired = Job.lease_until < now
        gone = [and_(expired, Job.owner != alive) if alive is not None else expired]
        if dead_owner_prefix is not None:
            mine_before = Job.owner.startswith(dead_owner_prefix, autoescape=True)
            gone.append(and_(mine_before, Job.owner != alive) if alive is not None else mine_before)
        orphaned = and_(Job.kind == self.kind, Job.owner.is_not(None), or_(*gone))
        async with self.db.writing() as s:
            requeued = await s.execute(
                update(Job)
                .where(orphaned, Job.state == JobState.CLAIMED.value)
                .values(state=JobState.QUEUED.value, owner=None, lease_until=None, updated_at=now)
            )
            rows = (
                await s.execute(
                    select(Job.id, Job.state, Job.attempts, Job.attempt_call_id).where(orphaned, Job.state.in_(_LIVE))
                )
            ).all()
            interrupted = 0
            for job_id, state, attempts, call_id in rows:
                reason = (
                    f"interrupted: the server stopped while the call was {state} (attempt {attempts}); "
                    "not placed again, since the callee may have been rung"
                )
                done = await s.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.state == state)
                    .values(
                        state=JobState.FAILED.value,
                        owner=None,
                        lease_until=None,
                        updated_at=now,
                        completed_at=now,
                        error_message=reason,
                    )
                )
                interrupted += int(done.rowcount or 0)  # type: ignore[attr-defined]
                if call_id:  # the engine's record of that attempt never reached its end either
                    await s.execute(
                        update(CallRecord)
                        .where(CallRecord.id == call_id, CallRecord.status.in_(ACTIVE_CALL_STATES))
                        .values(status="failed", hangup_cause="interrupted", ended_at=now)
                    )
            await s.commit()
        return Recovered(int(requeued.rowcount or 0), interrupted)  # type: ignore[attr-defined]

    # what the API reports -----------------------------------------------------------------------

    async def counts(self) -> dict[str, int]:
        async with self.db.session() as s:
            rows = (
                await s.execute(select(Job.state, func.count()).where(Job.kind == self.kind).group_by(Job.state))
            ).all()
        return {str(state): int(n) for state, n in rows}

    async def backlog(self) -> tuple[int, datetime | None]:
        """Jobs not finished yet, and when the oldest queued one was created."""
        async with self.db.session() as s:
            n, oldest = (
                await s.execute(
                    select(func.count(), func.min(Job.created_at)).where(
                        Job.kind == self.kind, Job.state.not_in(_FINAL)
                    )
                )
            ).one()
        if isinstance(oldest, str):  # SQLite's min() over the column comes back as text
            oldest = datetime.fromisoformat(oldest)
        return int(n), oldest

    async def recent_attempt_seconds(self, limit: int = 50) -> list[float]:
        """How long the latest finished jobs' last attempts took, dialling to hang-up."""
        async with self.db.session() as s:
            rows = (
                await s.execute(
                    select(Job.dialed_at, Job.completed_at)
                    .where(Job.kind == self.kind, Job.completed_at.is_not(None), Job.dialed_at.is_not(None))
                    .order_by(Job.completed_at.desc())
                    .limit(limit)
                )
            ).all()
        return [max(0.0, (done - dialed).total_seconds()) for dialed, done in rows]

    # webhook deliveries -------------------------------------------------------------------------

    async def due_deliveries(self, limit: int, lease_seconds: float) -> Sequence[WebhookDelivery]:
        """Pending deliveries that are due and first in line for their job (a job's states arrive
        in order), held for `lease_seconds` so another node does not send them too."""
        now = utcnow()
        earlier = aliased(WebhookDelivery)
        blocked = exists().where(
            earlier.job_id == WebhookDelivery.job_id, earlier.state == "pending", earlier.id < WebhookDelivery.id
        )
        due = (
            select(WebhookDelivery.id)
            .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now, ~blocked)
            .order_by(WebhookDelivery.id)
            .limit(limit)
        )
        if self.postgres:
            due = due.with_for_update(skip_locked=True)
        stmt = (
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(due.scalar_subquery()))
            .values(next_attempt_at=now + timedelta(seconds=lease_seconds))
            .returning(WebhookDelivery)
            .execution_options(synchronize_session=False)
        )
        async with self.db.writing() as s:
            rows = list((await s.scalars(stmt)).all())
            await s.commit()
        rows.sort(key=lambda d: d.id)
        return rows

    async def delivery_done(self, delivery_id: int, *, ok: bool, error: str | None, retry_at: datetime | None) -> None:
        now = utcnow()
        values: dict[str, Any] = {"attempts": WebhookDelivery.attempts + 1, "last_error": error}
        if ok:
            values.update(state="delivered", delivered_at=now)
        elif retry_at is None:
            values.update(state="failed")
        else:
            values.update(next_attempt_at=retry_at)
        async with self.db.writing() as s:
            await s.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values))
            await s.commit()
