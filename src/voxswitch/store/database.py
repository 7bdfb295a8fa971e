"""Database engine and sessions: SQLite in the data directory by default, PostgreSQL by URL.

The documents write plain `postgresql://user:pass@host/db` URLs; SQLAlchemy's async engine needs a
driver named in the scheme, so URLs are normalised here and nowhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import event, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

_POSTGRES_SCHEMES = {
    "postgres",
    "postgresql",
    "postgresql+asyncpg",
    "postgresql+psycopg",
    "postgresql+psycopg2",
}


def normalise_url(url: str | None, data_dir: Path) -> str:
    """An async SQLAlchemy URL for `url`, or the default SQLite file under `data_dir`."""
    if not url:
        return f"sqlite+aiosqlite:///{data_dir / 'voxswitch.db'}"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in _POSTGRES_SCHEMES:
        # asyncpg spells libpq's `sslmode` as `ssl`.
        query = [("ssl" if k == "sslmode" else k, v) for k, v in parse_qsl(parts.query)]
        return urlunsplit(("postgresql+asyncpg", parts.netloc, parts.path, urlencode(query), parts.fragment))
    if scheme in {"sqlite", "sqlite+aiosqlite"}:
        return "sqlite+aiosqlite:" + url.split(":", 1)[1]  # urlunsplit would drop the empty host's slashes
    raise ValueError(f"DATABASE_URL: unsupported database scheme {parts.scheme!r} (use postgresql:// or sqlite://)")


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str, *, sqlite_synchronous: str = "FULL") -> AsyncEngine:
    """An engine with the connection settings each backend needs for durability and concurrency."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            # WAL lets readers run beside the writer; FULL makes each commit survive power loss.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Database:
    """The engine plus a session factory; one per process, created by the app's lifespan."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL") -> None:
        self.url = url
        self.sqlite_synchronous = sqlite_synchronous
        self.engine = create_engine(url, sqlite_synchronous=sqlite_synchronous)
        # Every ORM commit through this database counts here, so in-memory copies of rarely changed
        # tables (the PBX's routing) know when to reload without a query per call.
        self.commits = 0

        class _Session(Session):
            pass

        event.listen(_Session, "after_commit", self._committed)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, sync_session_class=_Session)
        # SQLite has one write lock per file; pooled connections that race for it sleep in its busy
        # handler (measured: 70 % of samples under REGISTER load). Hot write paths queue here instead.
        self._write_lock = asyncio.Lock() if is_sqlite(url) else None
        self.writers: dict[str, Any] = {}  # group-commit writers by name (store/group_commit.py)

    def _committed(self, session: Session) -> None:
        self.commits += 1

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as s:
            yield s

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """A session for a short write transaction, one at a time on SQLite (any number on PostgreSQL)."""
        if self._write_lock is None:
            async with self.sessions() as s:
                yield s
            return
        async with self._write_lock, self.sessions() as s:
            yield s

    @asynccontextmanager
    async def write_turn(self) -> AsyncIterator[None]:
        """This process's turn at SQLite's write lock, for a writer outside SQLAlchemy (a no-op on
        PostgreSQL)."""
        if self._write_lock is None:
            yield
            return
        async with self._write_lock:
            yield

    @property
    def sqlite_path(self) -> str | None:
        """The SQLite file, or None for PostgreSQL or an in-memory database."""
        if not is_sqlite(self.url):
            return None
        database = make_url(self.url).database
        return database if database and database != ":memory:" else None

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        for writer in list(self.writers.values()):
            await writer.drain()
            writer.close()
        self.writers.clear()
        await self.engine.dispose()
