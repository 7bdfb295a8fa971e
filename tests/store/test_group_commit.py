"""The group-commit writer on a real SQLite file: a write that may wait rides along with the next
urgent one or goes at its deadline, never later; draining writes what waits at once."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from voxswitch.store.database import Database, normalise_url
from voxswitch.store.group_commit import GroupCommit


def _insert(conn: sqlite3.Connection, rows: list[dict[str, int]]) -> None:
    conn.executemany("INSERT INTO t (n) VALUES (?)", [(r["n"],) for r in rows])


async def _unused(session: object, rows: object) -> None:
    raise AssertionError("SQLite only")


async def test_a_write_that_may_wait_rides_with_the_next_urgent_one_or_goes_at_its_deadline(tmp_path: Path) -> None:
    db = Database(normalise_url(None, tmp_path))
    conn = sqlite3.connect(db.sqlite_path)
    conn.execute("CREATE TABLE t (n INTEGER)")
    conn.commit()
    writer = GroupCommit(db, "t", sqlite=_insert, other=_unused)
    loop = asyncio.get_running_loop()

    def stored() -> list[int]:
        return sorted(n for (n,) in conn.execute("SELECT n FROM t"))

    try:
        lazy = asyncio.ensure_future(writer.submit([{"n": 1}], within=30.0))
        await asyncio.sleep(0.2)
        assert not lazy.done() and stored() == []  # nobody is in a hurry: nothing committed yet
        await writer.submit([{"n": 2}])  # urgent: goes now, and takes the waiting row along
        assert lazy.done() and stored() == [1, 2]

        started = loop.time()
        await writer.submit([{"n": 3}], within=0.3)  # alone: at its deadline
        assert 0.25 <= loop.time() - started < 5 and stored() == [1, 2, 3]

        lazy = asyncio.ensure_future(writer.submit([{"n": 4}], within=30.0))
        await asyncio.sleep(0.05)
        await writer.drain()  # shutting down: what may wait is written now
        assert lazy.done() and stored() == [1, 2, 3, 4]
    finally:
        conn.close()
        writer.close()
        await db.dispose()
