"""A call is set up without waiting for the store, but answered only once its record is durable:
with another writer holding the SQLite database, SIPp's call reaches its app at once and gets its
200 only after the database is free again, and the record is whole afterwards."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.peers.sipp import SippConfig, run_sipp
from tests.sip_e2e.conftest import running
from voxswitch.engine.apps import CallContext, app
from voxswitch.store.models import CallRecord

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]
SCENARIOS = Path(__file__).parents[1] / "peers" / "scenarios"
SEEN: dict[str, Any] = {}


@app("test-answer-when-recorded")
async def answer_and_wait(ctx: CallContext) -> None:
    SEEN["started"].set()
    await ctx.answer()
    SEEN["answered"] = time.monotonic()
    await ctx.pause(30)  # until SIPp hangs up


async def test_the_answer_waits_for_the_calls_first_row(tmp_path: Path, sip_settings: Callable[..., Any]) -> None:
    SEEN.clear()
    SEEN["started"] = asyncio.Event()
    async for vx in running(sip_settings(sip_digest_algorithms=["MD5"])):
        await vx.device("1001", "secret-1001")
        caller = SippConfig(
            SCENARIOS / "uac_invite_digest_play.xml",
            target=f"127.0.0.1:{vx.udp}",
            service="test-answer-when-recorded",
            auth_user="1001",
            auth_password="secret-1001",
            call_duration_ms=500,
        )
        other_writer = sqlite3.connect(vx.state.db.sqlite_path, isolation_level=None)
        try:
            other_writer.execute("BEGIN IMMEDIATE")  # holds SQLite's write lock: our commits wait
            call = asyncio.create_task(asyncio.to_thread(run_sipp, caller, tmp_path, 40.0))
            async with asyncio.timeout(10):
                await SEEN["started"].wait()  # routed, media opened, app running: nothing waited
            await asyncio.sleep(1.0)
            assert "answered" not in SEEN  # the call's row cannot be written, so no 200 yet
            released = time.monotonic()
            other_writer.execute("COMMIT")
        finally:
            other_writer.close()
        result = await call
        assert result.ok, result.describe()
        assert SEEN["answered"] >= released
        for _ in range(50):
            async with vx.state.db.session() as s:
                row = (await s.execute(select(CallRecord))).scalar_one()
            if row.ended_at is not None:
                break
            await asyncio.sleep(0.1)
        assert row.status == "completed" and row.answered_at is not None and row.app == "test-answer-when-recorded"
