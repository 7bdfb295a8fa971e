"""The store on SQLite (the embedded default) and on a throwaway PostgreSQL, with the same migrations."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, select

from voxswitch.errors import ErrorKind, VoxError
from voxswitch.store.database import Database, normalise_url
from voxswitch.store.migrate import alembic_config, current_revision, head_revision, upgrade
from voxswitch.store.models import CallRecord, User


def open_db(database_url: str | None, data_dir: Path) -> Database:
    return Database(normalise_url(database_url, data_dir))


async def test_migrations_apply_idempotently_and_round_trip(database_url: str | None, tmp_path: Path) -> None:
    db = open_db(database_url, tmp_path)
    try:
        assert await upgrade(db) == head_revision() == await upgrade(db)
        async with db.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert {"users", "auth_sessions", "refresh_tokens", "api_keys", "system_settings", "calls"} <= tables

        def down_and_up(conn: Any) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
            command.upgrade(cfg, "head")

        async with db.engine.begin() as conn:
            await conn.run_sync(down_and_up)
        assert await current_revision(db) == head_revision()
    finally:
        await db.dispose()


async def test_rows_survive_reopening_and_times_come_back_in_utc(database_url: str | None, tmp_path: Path) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) + timedelta(microseconds=123)
    db = open_db(database_url, tmp_path)
    await upgrade(db)
    async with db.session() as s:
        s.add(User(id="u1", email="a@example.com", created_at=when, updated_at=when))
        await s.flush()  # no ORM relationship between the two, so order the inserts by hand
        s.add(CallRecord(id="c1", direction="outbound", to_number="+15551234567", created_at=when, user_id="u1"))
        await s.commit()
    await db.dispose()

    again = open_db(database_url, tmp_path)  # a fresh engine: nothing cached
    try:
        async with again.session() as s:
            user = (await s.execute(select(User).where(User.email == "a@example.com"))).scalar_one()
            call = await s.get(CallRecord, "c1")
        assert user.created_at == when and user.created_at.tzinfo is not None
        assert call is not None and call.user_id == "u1" and call.status == "initiated"
    finally:
        await again.dispose()


async def test_duplicate_email_is_a_conflict_and_changes_nothing(
    database_url: str | None, make_settings: Callable[..., Any]
) -> None:
    from voxswitch.api.state import AppState

    state = AppState.build(make_settings(database_url=database_url))
    await upgrade(state.db)
    try:
        await state.identity.create_user("dup@example.com", "Passw0rd-1")
        with pytest.raises(VoxError) as err:
            await state.identity.create_user("DUP@example.com", "Passw0rd-2")
        assert err.value.kind is ErrorKind.CONFLICT and err.value.problems[0].field == "email"
        assert await state.identity.count_users() == 1
        await state.identity.login("dup@example.com", "Passw0rd-1")
    finally:
        await state.db.dispose()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db:5432/vox", "postgresql+asyncpg://u:p@db:5432/vox"),
        ("postgres://u@db/vox?sslmode=require", "postgresql+asyncpg://u@db/vox?ssl=require"),
        ("postgresql+asyncpg://u@db/vox", "postgresql+asyncpg://u@db/vox"),
        ("sqlite:////var/lib/vox.db", "sqlite+aiosqlite:////var/lib/vox.db"),
    ],
)
def test_document_style_urls_are_normalised(given: str, expected: str) -> None:
    assert normalise_url(given, Path("/data")) == expected


def test_default_is_sqlite_in_the_data_dir() -> None:
    assert normalise_url(None, Path("/srv/vox")) == "sqlite+aiosqlite:////srv/vox/voxswitch.db"


def test_unknown_scheme_names_the_variable() -> None:
    with pytest.raises(ValueError, match="DATABASE_URL"):
        normalise_url("mysql://x/y", Path("/d"))
