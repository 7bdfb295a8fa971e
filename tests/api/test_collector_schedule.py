"""The server's garbage-collector schedule: no automatic full collection while it runs, one on its
timer instead, and the process's own thresholds back when it stops."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from voxswitch.collector import CollectorSchedule


async def test_full_collections_run_on_the_timer_and_the_thresholds_come_back() -> None:
    before = gc.get_threshold()
    full: list[int] = []

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.append(info["collected"])

    schedule = CollectorSchedule(freeze=False, full_every=0.05)
    gc.callbacks.append(seen)
    try:
        schedule.start()
        assert gc.get_threshold()[:2] == before[:2]
        assert gc.get_threshold()[2] > 10**9  # CPython starts no full collection of its own

        # Two full collections on the timer. In a test worker's large heap one full pass can take
        # longer than the period, so wait for them (generously) rather than for a fixed time.
        for _ in range(200):  # up to 10 s
            if schedule.full_collections >= 2:
                break
            await asyncio.sleep(0.05)
        assert schedule.full_collections >= 2
        assert len(full) >= 2
    finally:
        await schedule.stop()
        gc.callbacks.remove(seen)
    assert gc.get_threshold() == before


async def test_zero_leaves_cpythons_schedule_alone() -> None:
    before = gc.get_threshold()
    schedule = CollectorSchedule(freeze=False, full_every=0)
    schedule.start()
    try:
        assert gc.get_threshold() == before
        await asyncio.sleep(0.05)
        assert schedule.full_collections == 0
    finally:
        await schedule.stop()
    assert gc.get_threshold() == before
