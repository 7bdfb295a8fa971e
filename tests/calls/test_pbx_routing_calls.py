"""The PBX's routing with real peers: SIPp as the trunk delivers calls to a DID, PJSIP phones are the
office's devices. In business hours the route forwards to a phone, outside them the caller leaves a
voicemail (the clock is injected, not waited for); a ring group rings two phones; a blocked caller
is refused before anything rings; a DID with no matching route answers with an announcement; a
phone in do-not-disturb is busy; a user without `can_call` cannot call out. Each call leaves one
record saying what happened."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.peers import audio
from tests.peers.pjsua import PjsuaAgent
from tests.peers.ports import free_sip_port
from tests.peers.sipp import SippConfig, SippResult, run_sipp
from tests.sip_e2e.conftest import Voxswitch, running
from voxswitch.store.models import BlockedNumber, CallRecord, CallRoute, Device, Did, Recording, User

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]
SCENARIOS = Path(__file__).parents[1] / "interop" / "scenarios"
DID = "+15551230000"
MONDAY_10 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
MONDAY_20 = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)
BUSINESS = {"time_start": "09:00", "time_end": "17:00", "days": ["mon", "tue", "wed", "thu", "fri"]}


@asynccontextmanager
async def pbx(sip_settings: Callable[..., Any], trunk_port: int) -> AsyncIterator[Voxswitch]:
    settings = sip_settings(sip_digest_algorithms=["MD5"], sip_trunk_ip="127.0.0.1", sip_trunk_port=trunk_port)
    async for vx in running(settings):
        yield vx


async def add(vx: Voxswitch, *rows: Any) -> None:
    async with vx.state.db.writing() as s:
        s.add_all(rows)
        await s.commit()


async def phone(vx: Voxswitch, tmp_path: Path, user: str, **extra: Any) -> tuple[PjsuaAgent, str]:
    await vx.device(user, f"secret-{user}")
    agent = PjsuaAgent(tmp_path, name=f"phone{user}").start()
    account = agent.add_account(
        f"sip:{user}@127.0.0.1:{vx.udp}",
        registrar=f"sip:127.0.0.1:{vx.udp}",
        username=user,
        password=f"secret-{user}",
        **extra,
    )
    await asyncio.to_thread(agent.wait_registered, account, 10)
    return agent, account


async def device_id(vx: Voxswitch, username: str) -> int:
    async with vx.state.db.session() as s:
        return int((await s.execute(select(Device.id).where(Device.username == username))).scalar_one())


def trunk_call(vx: Voxswitch, tmp_path: Path, trunk_port: int, caller: str, hold_ms: int = 4000) -> SippResult:
    """SIPp, from the trunk's address, calls the DID as `caller`."""
    config = SippConfig(
        SCENARIOS / "uac_trunk_call.xml",
        target=f"127.0.0.1:{vx.udp}",
        local_port=trunk_port,
        service=DID,
        keys={"caller": caller},
        template={"hold_ms": str(hold_ms)},
    )
    return run_sipp(config, tmp_path, timeout=40, name=f"trunk-{caller.strip('+')}")


def final_status(result: SippResult) -> int | None:
    finals = [m.status for m in result.messages if m.status and m.status >= 200 and m.method == "INVITE"]
    return finals[-1] if finals else None


async def records(vx: Voxswitch, count: int = 1) -> list[CallRecord]:
    for _ in range(100):  # a record's final state is written as its call ends
        async with vx.state.db.session() as s:
            rows = list((await s.execute(select(CallRecord).order_by(CallRecord.created_at))).scalars())
        if len(rows) >= count and all(r.ended_at is not None for r in rows):
            return rows
        await asyncio.sleep(0.1)
    return rows


async def business_hours_did(vx: Voxswitch, device_id: int) -> None:
    did = Did(phone_number=DID, friendly_name="Main line", capabilities=["voice"])
    await add(vx, did)
    await add(
        vx,
        CallRoute(name="business hours", did_id=did.id, priority=1, conditions=BUSINESS, action="forward",
                  action_data={"device_id": device_id}),
        CallRoute(name="after hours", did_id=did.id, priority=2, conditions={}, action="voicemail", action_data={}),
    )  # fmt: skip


async def test_business_hours_ring_the_phone_and_after_hours_take_a_voicemail(
    tmp_path: Path, sip_settings: Callable[..., Any]
) -> None:
    trunk_port = free_sip_port()
    async with pbx(sip_settings, trunk_port) as vx:
        a, _ = await phone(vx, tmp_path, "1001", auto_answer=200, answer_delay_ms=300)
        try:
            await business_hours_did(vx, await device_id(vx, "1001"))
            vx.state.engine.calls.router.clock = lambda: MONDAY_10
            during = await asyncio.to_thread(trunk_call, vx, tmp_path, trunk_port, "+15557654321")
            answered = await asyncio.to_thread(a.wait_incoming, None, 5)
            vx.state.engine.calls.router.clock = lambda: MONDAY_20
            after = await asyncio.to_thread(trunk_call, vx, tmp_path, trunk_port, "+15557654322", 10000)
        finally:
            a.close()
        assert answered
        assert during.ok and final_status(during) == 200, during.describe()
        assert after.ok and final_status(after) == 200, after.describe()
        rows = await records(vx, 2)
        async with vx.state.db.session() as s:
            voicemails = list((await s.execute(select(Recording).where(Recording.kind == "voicemail"))).scalars())
    first, second = rows
    assert (first.status, first.direction, first.did, first.app, first.answered_by) == (
        "completed", "inbound", DID, "forward", "1001"
    )  # fmt: skip
    assert first.route_id is not None and first.from_number == "+15557654321"
    assert (second.status, second.app, second.did) == ("completed", "voicemail", DID)
    assert len(voicemails) == 1 and voicemails[0].caller == "+15557654322" and voicemails[0].did_id is not None
    wav = audio.read_wav(Path(voicemails[0].path))
    assert wav.seconds >= 2 and audio.rms_dbfs(wav.samples) > -45, "the caller's speech is in the voicemail"


async def test_a_ring_group_rings_every_phone_and_the_first_to_answer_takes_it(
    tmp_path: Path, sip_settings: Callable[..., Any]
) -> None:
    trunk_port = free_sip_port()
    async with pbx(sip_settings, trunk_port) as vx:
        a, _ = await phone(vx, tmp_path, "1001")
        b, _ = await phone(vx, tmp_path, "1002", auto_answer=200, answer_delay_ms=800)
        try:
            did = Did(phone_number=DID, friendly_name="Sales", capabilities=["voice"])
            await add(vx, did)
            ids = [await device_id(vx, "1001"), await device_id(vx, "1002")]
            await add(vx, CallRoute(name="sales", did_id=did.id, priority=1, conditions={}, action="ring_group",
                                    action_data={"device_ids": ids, "strategy": "simultaneous"}))  # fmt: skip
            result = await asyncio.to_thread(trunk_call, vx, tmp_path, trunk_port, "+15557654323")
            rang = await asyncio.to_thread(a.wait_incoming, None, 5)
            cancelled = await asyncio.to_thread(a.wait_call_state, rang, "disconnected", 10)
        finally:
            a.close()
            b.close()
        rows = await records(vx)
    assert result.ok and final_status(result) == 200, result.describe()
    assert cancelled["code"] == 487
    assert [(r.status, r.app, r.answered_by) for r in rows] == [("completed", "ring_group", "1002")]


async def test_a_blocked_caller_is_refused_before_anything_rings_and_no_route_means_an_announcement(
    tmp_path: Path, sip_settings: Callable[..., Any]
) -> None:
    trunk_port = free_sip_port()
    async with pbx(sip_settings, trunk_port) as vx:
        a, _ = await phone(vx, tmp_path, "1001", auto_answer=200)
        try:
            did = Did(phone_number=DID, friendly_name="VIP line", capabilities=["voice"])
            await add(vx, did, BlockedNumber(phone_number="+1900*", reason="premium spam"))
            await add(vx, CallRoute(name="vip only", did_id=did.id, priority=1,
                                    conditions={"caller_patterns": ["+1777*"]}, action="forward",
                                    action_data={"device_id": 1}))  # fmt: skip
            blocked = await asyncio.to_thread(trunk_call, vx, tmp_path, trunk_port, "+19005550000")
            unrouted = await asyncio.to_thread(trunk_call, vx, tmp_path, trunk_port, "+15557654324", 5000)
            rang = a.events("incoming_call")
        finally:
            a.close()
        rows = await records(vx, 2)
    assert final_status(blocked) == 603, blocked.describe()
    assert final_status(unrouted) == 200, unrouted.describe()
    assert rang == [], "nothing rang for either call"
    assert [(r.status, r.from_number, r.hangup_cause, r.hangup_status) for r in rows[:1]] == [
        ("failed", "+19005550000", "blocked: premium spam", 603)
    ]
    assert (rows[1].status, rows[1].app, rows[1].did) == ("completed", "no-route", DID)


async def test_do_not_disturb_is_busy_and_a_user_without_can_call_cannot_call_out(
    tmp_path: Path, sip_settings: Callable[..., Any]
) -> None:
    trunk_port = free_sip_port()
    async with pbx(sip_settings, trunk_port) as vx:
        a, alice = await phone(vx, tmp_path, "1001")
        b, _ = await phone(vx, tmp_path, "1002", auto_answer=200)
        try:
            user = User(email="alice@example.com", can_call=False)
            await add(vx, user)
            async with vx.state.db.writing() as s:
                for d in (await s.execute(select(Device))).scalars():
                    d.dnd = d.username == "1002"
                    d.user_id = user.id if d.username == "1001" else None
                await s.commit()
            await vx.state.engine.accounts.load(vx.state.db)
            busy = await asyncio.to_thread(a.make_call, alice, f"sip:1002@127.0.0.1:{vx.udp}")
            busy_end = await asyncio.to_thread(a.wait_call_state, busy, "disconnected", 10)
            out = await asyncio.to_thread(a.make_call, alice, f"sip:+15559990000@127.0.0.1:{vx.udp}")
            out_end = await asyncio.to_thread(a.wait_call_state, out, "disconnected", 10)
            rang = b.events("incoming_call")
        finally:
            a.close()
            b.close()
        rows = await records(vx, 1)
    assert busy_end["code"] == 486 and rang == []
    assert out_end["code"] == 403
    assert [(r.status, r.to_number, r.hangup_cause) for r in rows] == [("busy", "1002", "do not disturb")]
