"""Health and readiness, measured rather than asserted: each check really touches what it names."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path

from sqlalchemy import case, func, select

from voxswitch.store.database import Database
from voxswitch.store.models import ACTIVE_CALL_STATES, CallRecord


@dataclass(frozen=True)
class CallCounts:
    active: int
    today: int
    completed_today: int
    average_duration_today: float


class StatusService:
    def __init__(self, db: Database, data_dir: Path, cache_check: Callable[[], Awaitable[bool]]) -> None:
        self.db = db
        self.data_dir = data_dir
        self._cache_check = cache_check

    async def database_ok(self) -> bool:
        try:
            await asyncio.wait_for(self.db.ping(), timeout=5)
        except Exception:
            return False
        return True

    async def storage_ok(self) -> bool:
        """Write, sync and remove a probe file in the data directory."""

        def probe() -> None:
            path = self.data_dir / f".probe-{secrets.token_hex(4)}"
            with open(path, "wb") as f:
                f.write(b"ok")
                f.flush()
                os.fsync(f.fileno())
            path.unlink()

        try:
            await asyncio.to_thread(probe)
        except OSError:
            return False
        return True

    async def cache_ok(self) -> bool:
        try:
            return await asyncio.wait_for(self._cache_check(), timeout=5)
        except Exception:
            return False

    async def call_counts(self) -> CallCounts:
        midnight = datetime.combine(datetime.now(UTC).date(), time.min, tzinfo=UTC)
        today = CallRecord.created_at >= midnight
        async with self.db.session() as s:
            row = (
                await s.execute(
                    select(
                        func.count().filter(CallRecord.status.in_(ACTIVE_CALL_STATES)),
                        func.count().filter(today),
                        func.count().filter(today, CallRecord.status == "completed"),
                        func.avg(case((today, CallRecord.duration_seconds))),
                    )
                )
            ).one()
        return CallCounts(int(row[0]), int(row[1]), int(row[2]), float(row[3] or 0.0))

    async def active_calls(self) -> int:
        async with self.db.session() as s:
            q = select(func.count()).select_from(CallRecord).where(CallRecord.status.in_(ACTIVE_CALL_STATES))
            return int((await s.execute(q)).scalar_one())
