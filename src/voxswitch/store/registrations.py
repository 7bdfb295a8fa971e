"""Registrar bindings written in batches: one transaction per group commit, no ORM on the hot path.

The registrar (`engine.registrar`) sends a REGISTER's 200 only once its binding is durable, and
commits the REGISTERs that arrive while a commit runs together in the next one. Under load that is
thousands of rows a second, so this path is kept short:

- SQLite (the default): one dedicated `sqlite3` connection, used by one thread. A batch is one hand-off
  to that thread (not one per statement, as aiosqlite does), its statements are prepared once and
  reused from sqlite3's statement cache, and the event loop never waits on the fsync.
- PostgreSQL (or in-memory SQLite): the same statements through `Database`, as SQLAlchemy Core.

A binding is written with an upsert on its unique ``(aor, contact)``, so a refresh is one row update.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, Protocol

from sqlalchemy import and_, delete, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from voxswitch.store.database import Database
from voxswitch.store.group_commit import SqliteThread
from voxswitch.store.models import Registration, SipEvent

__all__ = ["BindingBatch", "BindingRow", "BindingWriter", "EventRow", "binding_writer"]


class BindingRow(NamedTuple):
    """One `registrations` row; times are seconds since the epoch."""

    device_id: int
    aor: str
    contact: str
    expires_at: float
    q: float | None
    call_id: str
    cseq: int
    source_host: str
    source_port: int
    transport: str
    user_agent: str
    instance_id: str | None


class EventRow(NamedTuple):
    """One `sip_events` row."""

    device_id: int | None
    username: str | None
    kind: str
    source: str
    detail: str


@dataclass(slots=True)
class BindingBatch:
    """What one group commit writes: removals first, then upserts, then events."""

    removals: list[tuple[str, str]] = field(default_factory=list)  # (aor, contact)
    upserts: list[BindingRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.removals or self.upserts or self.events)


class BindingWriter(Protocol):
    async def write(self, batch: BindingBatch) -> None:
        """Commit `batch` in one transaction; returns once it is durable, raises if it is not."""

    async def close(self) -> None: ...


def binding_writer(db: Database) -> BindingWriter:
    """The fastest writer the database allows: a dedicated connection for a SQLite file."""
    path = db.sqlite_path
    if path is not None:
        return SqliteBindingWriter(db, Path(path))
    return SqlBindingWriter(db)


_COLUMNS = (
    "device_id, aor, contact, expires_at, q, call_id, cseq, source_host, source_port, transport, user_agent,"
    " instance_id, updated_at"
)
_UPDATED = (
    "device_id", "expires_at", "q", "call_id", "cseq", "source_host", "source_port", "transport", "user_agent",
    "instance_id", "updated_at",
)  # fmt: skip
_UPSERT = (
    f"INSERT INTO registrations ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (aor, contact) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _UPDATED)
)
_DELETE = "DELETE FROM registrations WHERE aor = ? AND contact = ?"
_EVENT = "INSERT INTO sip_events (device_id, username, kind, source, detail, created_at) VALUES (?, ?, ?, ?, ?, ?)"


def _sqlite_time(ts: float) -> str:
    # The text SQLAlchemy's SQLite DATETIME writes (UTC, no zone), so the ORM reads these rows back.
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


class SqliteBindingWriter:
    """A batch is one hand-off to the store's dedicated sqlite3 thread (`store.group_commit`)."""

    def __init__(self, db: Database, path: Path) -> None:
        self._db = db
        self._thread = SqliteThread(str(path), db.sqlite_synchronous, "registrar-sqlite")

    @staticmethod
    def _write_sync(conn: sqlite3.Connection, batch: BindingBatch, now: float) -> None:
        stamp = _sqlite_time(now)
        if batch.removals:
            conn.executemany(_DELETE, batch.removals)
        if batch.upserts:
            conn.executemany(_UPSERT, [(*r[:3], _sqlite_time(r.expires_at), *r[4:], stamp) for r in batch.upserts])
        if batch.events:
            conn.executemany(_EVENT, [(*e, stamp) for e in batch.events])

    async def write(self, batch: BindingBatch) -> None:
        if not batch:
            return
        loop = asyncio.get_running_loop()
        async with self._db.write_turn():  # queue behind the pooled writers, not in SQLite's busy handler
            await loop.run_in_executor(
                self._thread.executor, self._thread.transaction, self._write_sync, batch, time.time()
            )

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._thread.close)


def _aware(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class SqlBindingWriter:
    """The same batch as SQLAlchemy Core statements (PostgreSQL, in-memory SQLite)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def write(self, batch: BindingBatch) -> None:
        if not batch:
            return
        table = Registration.__table__
        now = datetime.now(UTC)
        dialect_insert = pg_insert if self._db.engine.dialect.name == "postgresql" else sqlite_insert
        async with self._db.write_turn(), self._db.engine.begin() as conn:
            for aor, contact in batch.removals:
                await conn.execute(delete(table).where(and_(table.c.aor == aor, table.c.contact == contact)))
            if batch.upserts:
                stmt = dialect_insert(table)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[table.c.aor, table.c.contact],
                    set_={c: stmt.excluded[c] for c in _UPDATED},
                )
                rows = [r._asdict() | {"expires_at": _aware(r.expires_at), "updated_at": now} for r in batch.upserts]
                await conn.execute(stmt, rows)
            if batch.events:
                await conn.execute(
                    insert(SipEvent.__table__), [e._asdict() | {"created_at": now} for e in batch.events]
                )

    async def close(self) -> None:
        return None
