"""The PBX router's in-memory tables: calls that arrive together share one reload (each used to
run its own four queries, which under load made every reload slower), and a commit through the
database is seen by the next call."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event

from voxswitch.engine.accounts import AccountDirectory
from voxswitch.engine.pbx_routing import PbxRouter
from voxswitch.store.database import Database, normalise_url
from voxswitch.store.migrate import upgrade
from voxswitch.store.models import Did


async def test_concurrent_calls_share_one_reload_and_a_commit_is_seen(tmp_path: Path) -> None:
    db = Database(normalise_url(None, tmp_path))
    selects: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    try:
        await upgrade(db)
        event.listen(db.engine.sync_engine, "before_cursor_execute", count)
        router = PbxRouter(db, AccountDirectory(), fallback=None)  # type: ignore[arg-type]  # not reached
        tables = await asyncio.gather(*(router._tables() for _ in range(20)))
        assert len(selects) == 4  # DIDs, routes, blocklist, devices: once for all twenty
        assert all(t is tables[0] for t in tables) and tables[0].dids == {}

        async with db.writing() as s:
            s.add(Did(phone_number="+15550001111"))
            await s.commit()
        selects.clear()
        tables = await asyncio.gather(*(router._tables() for _ in range(20)))
        assert len(selects) == 4
        assert set(tables[0].dids) == {"+15550001111"}
        assert await router._tables() is tables[0]  # nothing changed since: no query
        assert len(selects) == 4
    finally:
        await db.dispose()
