"""A call that was live when the server died is not left live forever: the next start records it as
failed, "interrupted by restart" (one process owns its calls), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from voxswitch.engine.call import close_interrupted
from voxswitch.store.database import Database, normalise_url
from voxswitch.store.migrate import upgrade
from voxswitch.store.models import CallRecord


async def test_live_calls_left_by_a_dead_process_end_as_interrupted(database_url: str | None, tmp_path: Path) -> None:
    db = Database(normalise_url(database_url, tmp_path))
    try:
        await upgrade(db)
        async with db.writing() as s:
            s.add_all(
                [
                    CallRecord(id="live-1", direction="inbound", status="in_progress"),
                    CallRecord(id="live-2", direction="outbound", status="ringing"),
                    CallRecord(id="done-1", direction="inbound", status="completed", hangup_cause="normal clearing"),
                ]
            )
            await s.commit()
        assert await close_interrupted(db) == 2
        assert await close_interrupted(db) == 0
        async with db.session() as s:
            rows = {r.id: r for r in (await s.execute(select(CallRecord))).scalars()}
        assert {k: (r.status, r.hangup_cause) for k, r in rows.items()} == {
            "live-1": ("failed", "interrupted by restart"),
            "live-2": ("failed", "interrupted by restart"),
            "done-1": ("completed", "normal clearing"),
        }
        assert rows["live-1"].ended_at is not None
    finally:
        await db.dispose()
