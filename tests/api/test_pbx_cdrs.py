"""`/api/cdrs`: the engine's call records in a stable shape, filtered by inclusive local days or ISO
times, paginated, counted by day, week and month; users see their own calls, admins every call.
The rows are written the way the engine writes them (tests/sip_e2e has one from a real call)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.api.pbx import Pbx, pbx_error, pbx_settings, running_pbx
from voxswitch.store.models import CallRecord, Did

CDR_FIELDS = {
    "id",
    "direction",
    "from_number",
    "to_number",
    "did",
    "did_id",
    "route_id",
    "status",
    "disposition",
    "started_at",
    "answered_at",
    "ended_at",
    "duration",
    "hangup_cause",
    "hangup_status",
    "app",
    "answered_by",
    "mos",
}


def call(start: datetime, status: str, *, talk: int | None = None, **extra: Any) -> CallRecord:
    answered = start + timedelta(seconds=3) if talk is not None else None
    ended = (answered or start) + timedelta(seconds=talk or 5) if status not in ("in_progress",) else None
    return CallRecord(
        direction=extra.pop("direction", "inbound"),
        from_number=extra.pop("from_number", "+15550001111"),
        to_number=extra.pop("to_number", "+15551234567"),
        status=status,
        created_at=start,
        answered_at=answered,
        ended_at=ended,
        duration_seconds=talk,
        **extra,
    )


@pytest.fixture
async def paris(make_settings: Callable[..., Any], database_url: str | None) -> AsyncIterator[Pbx]:
    """A PBX whose local time is Paris (UTC+1 in winter), to prove days are local days."""
    async for p in running_pbx(pbx_settings(make_settings, database_url, timezone="Europe/Paris")):
        yield p


async def add(pbx: Pbx, *rows: Any) -> None:
    async with pbx.state.db.writing() as s:
        s.add_all(rows)
        await s.commit()


async def test_cdrs_are_listed_newest_first_in_a_stable_shape(pbx: Pbx) -> None:
    did = Did(phone_number="+15551234567", friendly_name="Main", capabilities=["voice"])
    await add(pbx, did)
    t = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    answered = call(
        t,
        "completed",
        talk=42,
        did="+15551234567",
        route_id=7,
        app="forward",
        answered_by="1001",
        mos=4.3,
        hangup_cause="caller hung up",
    )
    await add(
        pbx,
        answered,
        call(t + timedelta(minutes=1), "busy", hangup_status=486, app="dnd"),
        call(t + timedelta(minutes=2), "failed", hangup_status=603, app="blocked", hangup_cause="blocked: spam"),
        call(t + timedelta(minutes=3), "no_answer", hangup_status=480),
        call(t + timedelta(minutes=4), "completed", talk=20, app="voicemail", did="+15551234567"),
        call(t + timedelta(minutes=5), "in_progress", talk=None, direction="internal"),
    )
    page = await pbx.get("/api/cdrs?limit=4")
    assert page["pagination"] == {"total": 6, "limit": 4, "offset": 0}
    assert [c["disposition"] for c in page["data"]] == ["in_progress", "voicemail", "missed", "blocked"]
    rest = (await pbx.get("/api/cdrs?limit=4&offset=4"))["data"]
    assert [c["disposition"] for c in rest] == ["busy", "answered"]
    first = rest[1]
    assert set(first) == CDR_FIELDS
    assert first == {
        "id": answered.id,
        "direction": "inbound",
        "from_number": "+15550001111",
        "to_number": "+15551234567",
        "did": "+15551234567",
        "did_id": did.id,
        "route_id": 7,
        "status": "completed",
        "disposition": "answered",
        "started_at": "2026-11-30T10:00:00Z",
        "answered_at": "2026-11-30T10:00:03Z",
        "ended_at": "2026-11-30T10:00:45Z",
        "duration": 42,
        "hangup_cause": "caller hung up",
        "hangup_status": None,
        "app": "forward",
        "answered_by": "1001",
        "mos": 4.3,
    }
    assert await pbx.get(f"/api/cdrs/{answered.id}") == first
    assert rest[0]["duration"] == 0 and rest[0]["hangup_status"] == 486


async def test_date_filters_take_whole_local_days_and_iso_times_exactly(paris: Pbx) -> None:
    pbx = paris
    # 23:30 UTC on 31 Jan is 00:30 on 1 Feb in Paris: a February call there
    await add(
        pbx,
        call(datetime(2024, 1, 1, 0, 30, tzinfo=UTC), "completed", talk=10),  # 1 Jan, 01:30 in Paris
        call(datetime(2024, 1, 31, 12, 0, tzinfo=UTC), "completed", talk=10),
        call(datetime(2024, 1, 31, 23, 30, tzinfo=UTC), "completed", talk=10),
        call(datetime(2023, 12, 31, 23, 30, tzinfo=UTC), "completed", talk=10),  # 1 Jan 00:30 in Paris
        call(datetime(2023, 12, 31, 22, 30, tzinfo=UTC), "completed", talk=10),  # 31 Dec in Paris
    )
    january = await pbx.get("/api/cdrs?limit=50&offset=0&from_date=2024-01-01&to_date=2024-01-31")
    assert sorted(c["started_at"] for c in january["data"]) == [
        "2023-12-31T23:30:00Z",
        "2024-01-01T00:30:00Z",
        "2024-01-31T12:00:00Z",
    ]
    one_day = await pbx.get("/api/cdrs?from_date=2024-01-31&to_date=2024-01-31")
    assert [c["started_at"] for c in one_day["data"]] == ["2024-01-31T12:00:00Z"]  # inclusive, both ends
    exact = await pbx.get("/api/cdrs?from_date=2024-01-31T12:00:00Z&to_date=2024-01-31T23:30:00Z")
    assert len(exact["data"]) == 2  # ISO times are inclusive bounds too
    naive = await pbx.get("/api/cdrs?from_date=2024-02-01T00:00:00")  # no offset: Paris time
    assert [c["started_at"] for c in naive["data"]] == ["2024-01-31T23:30:00Z"]


async def test_stats_by_day_week_and_month(paris: Pbx) -> None:
    pbx = paris
    mon = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # a Monday
    await add(
        pbx,
        call(mon, "completed", talk=60),
        call(mon + timedelta(hours=1), "completed", talk=30),
        call(mon + timedelta(hours=2), "busy"),
        call(mon + timedelta(days=1), "no_answer"),
        call(mon + timedelta(days=1, hours=1), "completed", talk=90),
        call(mon + timedelta(days=2), "in_progress"),
        call(mon - timedelta(days=7), "failed"),  # the week before
        call(mon - timedelta(days=40), "completed", talk=10),  # October
    )
    day = await pbx.get("/api/cdrs/stats?period=day&from_date=2026-11-30&to_date=2026-12-02")
    assert day["period"] == "day" and day["timezone"] == "Europe/Paris"
    assert (day["count"], day["answered"], day["failed"], day["total_duration"]) == (6, 3, 2, 180)
    assert day["average_duration"] == 60.0
    assert [(r["start"], r["count"], r["answered"], r["failed"], r["total_duration"]) for r in day["data"]] == [
        ("2026-11-30", 3, 2, 1, 90),
        ("2026-12-01", 2, 1, 1, 90),
        ("2026-12-02", 1, 0, 0, 0),
    ]
    assert day["data"][0]["average_duration"] == 45.0
    week = await pbx.get("/api/cdrs/stats?period=week&from_date=2026-11-01&to_date=2026-12-06")
    assert [(r["start"], r["count"]) for r in week["data"]] == [("2026-11-23", 1), ("2026-11-30", 6)]
    month = await pbx.get("/api/cdrs/stats?period=month&from_date=2026-10-01&to_date=2026-12-31")
    assert [(r["start"], r["count"], r["answered"]) for r in month["data"]] == [
        ("2026-10-01", 1, 1),
        ("2026-11-01", 4, 2),
        ("2026-12-01", 3, 1),
    ]
    # without from_date: the last 30 days / 12 weeks / 12 months up to to_date
    default = await pbx.get("/api/cdrs/stats?to_date=2026-12-02")
    assert default["count"] == 7 and default["from_time"] == "2026-11-02T23:00:00Z"  # local midnight, 3 Nov
    assert (await pbx.get("/api/cdrs/stats?period=month&to_date=2026-12-02"))["count"] == 8


async def test_a_user_sees_their_own_calls_and_calls_to_their_devices(pbx: Pbx) -> None:
    user, user_id = await pbx.user("ann@example.com")
    await pbx.post("/api/devices", {"name": "Ann's", "username": "1001", "password": "secret-1001", "user_id": user_id})
    t = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    placed = call(t, "completed", talk=5, user_id=user_id, direction="outbound", from_number="1001")
    to_her = call(t + timedelta(minutes=1), "no_answer", to_number="1001", direction="internal")
    answered_by_her = call(t + timedelta(minutes=2), "completed", talk=9, answered_by="1001")
    someone_else = call(t + timedelta(minutes=3), "completed", talk=5, to_number="1002")
    await add(pbx, placed, to_her, answered_by_her, someone_else)
    mine = await pbx.get("/api/cdrs", headers=user)
    assert {c["id"] for c in mine["data"]} == {placed.id, to_her.id, answered_by_her.id}
    assert mine["pagination"]["total"] == 3
    pbx_error(await pbx.client.get(f"/api/cdrs/{someone_else.id}", headers=user), 404, "not_found")
    assert (await pbx.get("/api/cdrs/stats?from_date=2026-11-30&to_date=2026-11-30", headers=user))["count"] == 3
    assert (await pbx.get("/api/cdrs"))["pagination"]["total"] == 4  # the admin sees every call
