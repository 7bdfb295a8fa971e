"""Live calls driven through the PBX API while real phones watch: list a call, hold and resume it (each
phone is re-INVITEd), hang it up; transfer it blind by REFER (a PJSIP phone places the new call),
blind inside the B2BUA (a trunk caller is put through to another phone), attended (consultation,
then completion when the transferor hangs up) and attended cancelled; bad commands answer in the
PBX document's error shape and change nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.calls.test_pbx_routing_calls import DID, add, device_id, trunk_call
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.peers import audio
from tests.peers.pjsua import PjsuaAgent
from tests.peers.ports import free_sip_port
from tests.sip_e2e.conftest import Voxswitch, running
from voxswitch.store.models import CallRecord, CallRoute, Did

pytestmark = [pytest.mark.interop, pytest.mark.timeout(150)]


@asynccontextmanager
async def pbx(sip_settings: Callable[..., Any], **extra: Any) -> AsyncIterator[tuple[Voxswitch, httpx.AsyncClient]]:
    settings = sip_settings(
        sip_digest_algorithms=["MD5"], admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD, **extra
    )
    async for vx in running(settings):
        transport = httpx.ASGITransport(app=vx.app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
            r = await api.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            assert r.status_code == 200, r.text
            api.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            yield vx, api


async def phone(vx: Voxswitch, tmp_path: Path, user: str, **extra: Any) -> tuple[PjsuaAgent, str]:
    await vx.device(user, f"secret-{user}")
    agent = PjsuaAgent(tmp_path, name=f"phone{user}").start()
    account = agent.add_account(
        f"sip:{user}@127.0.0.1:{vx.udp}", registrar=f"sip:127.0.0.1:{vx.udp}", username=user,
        password=f"secret-{user}", **extra,
    )  # fmt: skip
    await asyncio.to_thread(agent.wait_registered, account, 10)
    return agent, account


async def the_call(api: httpx.AsyncClient, status: str = "in_progress") -> dict[str, Any]:
    for _ in range(100):
        r = await api.get("/api/calls")
        assert r.status_code == 200, r.text
        live = [c for c in r.json()["data"] if c["status"] == status]
        if live:
            return live[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {status} call: {r.json()}")


async def records(vx: Voxswitch, count: int = 1) -> list[CallRecord]:
    for _ in range(100):
        async with vx.state.db.session() as s:
            rows = list((await s.execute(select(CallRecord).order_by(CallRecord.created_at))).scalars())
        if len(rows) >= count and all(r.ended_at is not None for r in rows):
            return rows
        await asyncio.sleep(0.1)
    return rows


def wait(agent: PjsuaAgent, method: str, *args: Any) -> Any:
    return asyncio.to_thread(getattr(agent, method), *args)


async def test_hold_resume_and_hang_up_through_the_api(tmp_path: Path, sip_settings: Callable[..., Any]) -> None:
    async with pbx(sip_settings) as (vx, api):
        a, alice = await phone(vx, tmp_path, "1001")
        b, _ = await phone(vx, tmp_path, "1002", auto_answer=200)
        try:
            call = await wait(a, "make_call", alice, f"sip:1002@127.0.0.1:{vx.udp}")
            incoming = await wait(b, "wait_incoming", None, 10)
            await wait(a, "wait_media", call, "active", 10)
            live = await the_call(api)
            assert [leg["peer"] for leg in live["legs"]] == ["1001", "1002"]
            assert all(leg["codec"] == "PCMU/8000" for leg in live["legs"])
            mark_a, mark_b = a.mark(), b.mark()
            r = await api.post(f"/api/calls/{live['id']}/hold", json={"hold": True})
            assert r.status_code == 200 and r.json()["status"] == "on_hold", r.text
            await wait(a, "wait_media", call, "remote_hold", 10, mark_a)  # both phones were re-INVITEd sendonly
            await wait(b, "wait_media", incoming, "remote_hold", 10, mark_b)
            a.record(call, tmp_path / "alice-on-hold.wav")
            await asyncio.sleep(1.5)
            on_hold = a.stop_record(call)
            r = await api.post(f"/api/calls/{live['id']}/hold", json={"hold": False})
            assert r.status_code == 200 and r.json()["status"] == "in_progress", r.text
            await wait(a, "wait_media", call, "active", 10, mark_a)
            r = await api.delete(f"/api/calls/{live['id']}")
            assert r.status_code == 200, r.text
            await wait(a, "wait_call_state", call, "disconnected", 10)
            await wait(b, "wait_call_state", incoming, "disconnected", 10)
            assert (await api.get(f"/api/calls/{live['id']}")).status_code == 404
        finally:
            a.close()
            b.close()
        rows = await records(vx)
    assert audio.rms_dbfs(audio.read_wav(on_hold).samples) > -40, "music on hold while held"
    assert [(r.status, r.hangup_cause) for r in rows] == [("completed", "hung up by API")]


async def test_blind_transfer_by_refer_makes_the_phone_call_the_target(
    tmp_path: Path, sip_settings: Callable[..., Any]
) -> None:
    async with pbx(sip_settings) as (vx, api):
        a, alice = await phone(vx, tmp_path, "1001")
        b, _ = await phone(vx, tmp_path, "1002", auto_answer=200)
        c, _ = await phone(vx, tmp_path, "1003", auto_answer=200)
        try:
            call = await wait(a, "make_call", alice, f"sip:1002@127.0.0.1:{vx.udp}")
            at_bob = await wait(b, "wait_incoming", None, 10)
            await wait(a, "wait_call_state", call, "confirmed", 10)
            live = await the_call(api)
            r = await api.post(f"/api/calls/{live['id']}/transfer", json={"target": "1003", "type": "blind"})
            assert r.status_code == 202, r.text
            at_carol = await wait(c, "wait_incoming", None, 10)  # alice's phone called carol itself
            await wait(c, "wait_call_state", at_carol, "confirmed", 10)
            await wait(b, "wait_call_state", at_bob, "disconnected", 10)  # and then left bob
            r = await api.get(f"/api/calls/{(await the_call(api))['id']}")
            assert [leg["peer"] for leg in r.json()["legs"]] == ["1001", "1003"]
            old = (await api.get(f"/api/calls/{live['id']}")).status_code
            c.hangup(at_carol)
            await wait(c, "wait_call_state", at_carol, "disconnected", 10)
        finally:
            for agent in (a, b, c):
                agent.close()
        rows = await records(vx, 2)
    assert old == 404, "the first call ended once the phone's new call was up"
    assert [(r.from_number, r.to_number, r.status, r.hangup_cause) for r in rows] == [
        ("1001", "1002", "completed", "transferred"),
        ("1001", "1003", "completed", "remote hangup"),
    ]


async def test_blind_transfer_of_a_trunk_caller_inside_the_b2bua(
    tmp_path: Path, sip_settings: Callable[..., Any]
) -> None:
    trunk_port = free_sip_port()
    async with pbx(sip_settings, sip_trunk_ip="127.0.0.1", sip_trunk_port=trunk_port) as (vx, api):
        b, _ = await phone(vx, tmp_path, "1002", auto_answer=200)
        c, _ = await phone(vx, tmp_path, "1003", auto_answer=200, answer_delay_ms=300)
        try:
            did = Did(phone_number=DID, friendly_name="Main", capabilities=["voice"])
            await add(vx, did)
            await add(vx, CallRoute(name="all", did_id=did.id, priority=1, conditions={}, action="forward",
                                    action_data={"device_id": await device_id(vx, "1002")}))  # fmt: skip
            caller = asyncio.ensure_future(
                asyncio.to_thread(trunk_call, vx, tmp_path, trunk_port, "+15557650001", 9000)
            )
            at_bob = await wait(b, "wait_incoming", None, 10)
            live = await the_call(api)
            r = await api.post(f"/api/calls/{live['id']}/transfer", json={"target": "1003"})
            assert r.status_code == 202 and r.json()["method"] == "b2bua", r.text
            at_carol = await wait(c, "wait_incoming", None, 10)
            await wait(c, "wait_call_state", at_carol, "confirmed", 10)
            await wait(b, "wait_call_state", at_bob, "disconnected", 10)  # bob was hung up
            await wait(c, "wait_media", at_carol, "active", 10)
            c.record(at_carol, tmp_path / "carol-heard.wav")
            await asyncio.sleep(1.5)
            heard = c.stop_record(at_carol)
            result = await caller  # the trunk caller hangs up at the end, talking to carol
        finally:
            b.close()
            c.close()
        rows = await records(vx)
    assert result.ok, result.describe()
    assert audio.rms_dbfs(audio.read_wav(heard).samples) > -45, "carol hears the trunk caller's speech"
    assert [(r.status, r.answered_by, r.did) for r in rows] == [("completed", "1003", DID)]


async def test_attended_transfer_completes_when_the_transferor_hangs_up_and_can_be_cancelled(
    tmp_path: Path, sip_settings: Callable[..., Any]
) -> None:
    async with pbx(sip_settings) as (vx, api):
        a, alice = await phone(vx, tmp_path, "1001")
        b, _ = await phone(vx, tmp_path, "1002", auto_answer=200)
        c, _ = await phone(vx, tmp_path, "1003", auto_answer=200, answer_delay_ms=300)
        try:
            # first attempt: cancelled during the consultation; alice and bob talk again
            call = await wait(a, "make_call", alice, f"sip:1002@127.0.0.1:{vx.udp}")
            at_bob = await wait(b, "wait_incoming", None, 10)
            await wait(a, "wait_media", call, "active", 10)
            live = await the_call(api)
            held = a.mark()
            r = await api.post(f"/api/calls/{live['id']}/transfer", json={"target": "1003", "type": "attended"})
            assert r.status_code == 202, r.text
            await wait(a, "wait_media", call, "remote_hold", 10, held)  # alice waits on hold
            first = await wait(c, "wait_incoming", None, 10)
            await wait(c, "wait_call_state", first, "confirmed", 10)
            for _ in range(50):
                if (await api.get(f"/api/calls/{live['id']}")).json()["transfer"]["state"] == "consulting":
                    break
                await asyncio.sleep(0.1)
            back = a.mark()
            r = await api.delete(f"/api/calls/{live['id']}/transfer")
            assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
            await wait(c, "wait_call_state", first, "disconnected", 10)
            await wait(a, "wait_media", call, "active", 10, back)
            # second attempt: bob consults carol, then hangs up: alice is put through to carol
            carol_mark = c.mark()
            r = await api.post(f"/api/calls/{live['id']}/transfer", json={"target": "1003", "type": "attended"})
            assert r.status_code == 202, r.text
            second = await wait(c, "wait_incoming", None, 10, carol_mark)
            await wait(c, "wait_call_state", second, "confirmed", 10)
            await asyncio.sleep(0.5)
            through = a.mark()
            b.hangup(at_bob)
            await wait(a, "wait_media", call, "active", 10, through)
            r = await api.get(f"/api/calls/{live['id']}")
            assert r.json()["transfer"]["state"] == "completed", r.text
            a.hangup(call)
            await wait(c, "wait_call_state", second, "disconnected", 10)
        finally:
            for agent in (a, b, c):
                agent.close()
        rows = await records(vx)
    assert [(r.status, r.answered_by) for r in rows] == [("completed", "1003")]


async def test_bad_commands_answer_in_the_documents_shape_and_change_nothing(
    tmp_path: Path, sip_settings: Callable[..., Any]
) -> None:
    async with pbx(sip_settings) as (vx, api):
        r = await api.get("/api/calls/no-such-call")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert (await api.post("/api/calls/no-such-call/hold", json={"hold": True})).status_code == 404
        assert (await api.delete("/api/calls/no-such-call")).status_code == 404
        a, alice = await phone(vx, tmp_path, "1001")
        b, _ = await phone(vx, tmp_path, "1002", auto_answer=200)
        try:
            call = await wait(a, "make_call", alice, f"sip:1002@127.0.0.1:{vx.udp}")
            await wait(a, "wait_call_state", call, "confirmed", 10)
            live = await the_call(api)
            bad_type = await api.post(f"/api/calls/{live['id']}/transfer", json={"target": "1003", "type": "warm"})
            assert bad_type.status_code == 400
            assert bad_type.json()["error"]["details"][0]["field"] == "type"
            unknown = await api.post(f"/api/calls/{live['id']}/transfer", json={"target": "nobody-here"})
            assert unknown.status_code == 400 and unknown.json()["error"]["details"][0]["field"] == "target"
            nothing = await api.delete(f"/api/calls/{live['id']}/transfer")
            assert nothing.status_code == 404
            extra = await api.post(f"/api/calls/{live['id']}/hold", json={"hold": True, "other": 1})
            assert extra.status_code == 400
            after = (await api.get(f"/api/calls/{live['id']}")).json()
            assert after["status"] == "in_progress" and after["transfer"] is None and len(after["legs"]) == 2
            transport = httpx.ASGITransport(app=vx.app, client=("127.0.0.1", 50001))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as stranger:
                assert (await stranger.get("/api/calls")).status_code == 401
                assert (await stranger.delete(f"/api/calls/{live['id']}")).status_code == 401
            assert (await api.get(f"/api/calls/{live['id']}")).json()["status"] == "in_progress"
        finally:
            a.close()
            b.close()


async def test_a_live_call_moved_into_a_conference_hears_the_room(
    tmp_path: Path, sip_settings: Callable[..., Any]
) -> None:
    tones = {user: audio.write_tone(tmp_path / f"{user}.wav", hz, seconds=6.0) for user, hz in
             (("1001", 500.0), ("1002", 750.0), ("1003", 1000.0))}  # fmt: skip
    async with pbx(sip_settings) as (vx, api):
        a, alice = await phone(vx, tmp_path, "1001")
        b, _ = await phone(vx, tmp_path, "1002", auto_answer=200)
        c, carol = await phone(vx, tmp_path, "1003")
        try:
            call = await wait(a, "make_call", alice, f"sip:1002@127.0.0.1:{vx.udp}")
            at_bob = await wait(b, "wait_incoming", None, 10)
            at_room = await wait(c, "make_call", carol, f"sip:conference@127.0.0.1:{vx.udp}")
            for agent, handle in ((a, call), (b, at_bob), (c, at_room)):
                await wait(agent, "wait_media", handle, "active", 10)
            live = await the_call(api)
            r = await api.post(f"/api/calls/{live['id']}/conference", json={"room": "default"})
            assert r.status_code == 200, r.text
            rooms = (await api.get("/api/calls/conferences")).json()["data"]
            assert [sorted(m["peer"] for m in room["members"]) for room in rooms] == [["1001", "1002", "1003"]]
            for agent, handle, user in ((a, call, "1001"), (b, at_bob, "1002"), (c, at_room, "1003")):
                agent.play(handle, tones[user])
            c.record(at_room, tmp_path / "carol-heard.wav")
            a.record(call, tmp_path / "alice-heard.wav")
            await asyncio.sleep(2.0)
            carol_heard, alice_heard = c.stop_record(at_room), a.stop_record(call)
            a.hangup(call)  # alice leaves; bob stays in the room with carol
            await asyncio.sleep(0.5)
            assert (await api.get(f"/api/calls/{live['id']}")).status_code == 200
            b.hangup(at_bob)
            await wait(b, "wait_call_state", at_bob, "disconnected", 10)
            bad = await api.post(f"/api/calls/{live['id']}/conference", json={"room": "no spaces!"})
            assert bad.status_code in (400, 404)
            c.hangup(at_room)
            await wait(c, "wait_call_state", at_room, "disconnected", 10)
        finally:
            for agent in (a, b, c):
                agent.close()
        rows = await records(vx, 2)
    carol_wav, alice_wav = audio.read_wav(carol_heard), audio.read_wav(alice_heard)
    assert (
        audio.tone_ratio(carol_wav.samples, 8000, 500.0) > 0.2
        and audio.tone_ratio(carol_wav.samples, 8000, 750.0) > 0.2
    )
    assert audio.tone_ratio(carol_wav.samples, 8000, 1000.0) < 0.05, "carol does not hear herself"
    assert audio.tone_ratio(alice_wav.samples, 8000, 1000.0) > 0.2, "alice hears carol through the room"
    assert {r.status for r in rows} == {"completed"}


async def test_a_phone_transfers_its_call_blind_and_attended(tmp_path: Path, sip_settings: Callable[..., Any]) -> None:
    """The transfer key of a phone: REFER to us, blind (Refer-To the target) and attended (Refer-To
    with Replaces naming its consultation call); the far parties end up talking to each other."""
    async with pbx(sip_settings) as (vx, api):
        a, alice = await phone(vx, tmp_path, "1001")
        b, bob = await phone(vx, tmp_path, "1002", auto_answer=200)
        c, _ = await phone(vx, tmp_path, "1003", auto_answer=200, answer_delay_ms=300)
        try:
            # blind: bob sends alice to carol
            call = await wait(a, "make_call", alice, f"sip:1002@127.0.0.1:{vx.udp}")
            at_bob = await wait(b, "wait_incoming", None, 10)
            await wait(a, "wait_call_state", call, "confirmed", 10)
            carol_mark = c.mark()
            b.transfer(at_bob, f"sip:1003@127.0.0.1:{vx.udp}")
            at_carol = await wait(c, "wait_incoming", None, 10, carol_mark)
            await wait(c, "wait_call_state", at_carol, "confirmed", 10)
            await wait(b, "wait_call_state", at_bob, "disconnected", 10)
            live = await the_call(api)
            assert sorted(leg["peer"] for leg in live["legs"] if leg["state"] != "ended") == ["1001", "1003"]
            c.hangup(at_carol)
            await wait(a, "wait_call_state", call, "disconnected", 10)
            # attended: alice calls bob, bob consults carol in a second call, then transfers
            call = await wait(a, "make_call", alice, f"sip:1002@127.0.0.1:{vx.udp}")
            at_bob = await wait(b, "wait_incoming", None, 10, b.mark())
            await wait(a, "wait_call_state", call, "confirmed", 10)
            b.hold(at_bob)
            consult = await wait(b, "make_call", bob, f"sip:1003@127.0.0.1:{vx.udp}")
            at_carol = await wait(c, "wait_incoming", None, 10, c.mark())
            await wait(b, "wait_call_state", consult, "confirmed", 10)
            b.transfer_replaces(at_bob, consult)
            await wait(b, "wait_call_state", at_bob, "disconnected", 10)
            await wait(b, "wait_call_state", consult, "disconnected", 10)
            live = await the_call(api)
            assert sorted(leg["peer"] for leg in live["legs"] if leg["state"] != "ended") == ["1001", "1003"]
            a.hangup(call)
            await wait(c, "wait_call_state", at_carol, "disconnected", 10)
        finally:
            for agent in (a, b, c):
                agent.close()
        rows = await records(vx, 3)
    assert all(r.status == "completed" for r in rows), [(r.status, r.hangup_cause) for r in rows]
    assert [r.answered_by for r in rows if r.to_number == "1002"] == ["1003", "1003"]


async def test_two_phones_made_through_the_api_call_each_other_and_leave_one_cdr(
    tmp_path: Path, sip_settings: Callable[..., Any]
) -> None:
    """Issue #6: devices created with POST /api/devices register (digest) from PJSIP, call each other
    with audio both ways, and the call is one CDR in /api/cdrs with the right fields."""
    async with pbx(sip_settings) as (vx, api):
        for user in ("3001", "3002"):
            r = await api.post("/api/devices", json={"name": f"Desk {user}", "username": user,
                                                      "password": f"pw-{user}-long", "type": "generic"})  # fmt: skip
            assert r.status_code in (200, 201), r.text
            assert "password" not in r.text and f"pw-{user}" not in r.text
        agents = {}
        for user in ("3001", "3002"):
            agent = PjsuaAgent(tmp_path, name=f"desk{user}").start()
            account = agent.add_account(
                f"sip:{user}@127.0.0.1:{vx.udp}", registrar=f"sip:127.0.0.1:{vx.udp}", username=user,
                password=f"pw-{user}-long", auto_answer=200 if user == "3002" else None,
            )  # fmt: skip
            await wait(agent, "wait_registered", account, 10)
            agents[user] = (agent, account)
        (a, alice), (b, _) = agents["3001"], agents["3002"]
        tone_a = audio.write_tone(tmp_path / "a.wav", 500.0, seconds=5.0)
        tone_b = audio.write_tone(tmp_path / "b.wav", 1000.0, seconds=5.0)
        try:
            registrations = (await api.get("/api/devices/registrations")).json()
            assert {r.get("username") or r.get("aor") for r in registrations["data"]} >= {"3001", "3002"}, registrations
            call = await wait(a, "make_call", alice, f"sip:3002@127.0.0.1:{vx.udp}")
            incoming = await wait(b, "wait_incoming", None, 10)
            await wait(a, "wait_media", call, "active", 10)
            await wait(b, "wait_media", incoming, "active", 10)
            a.play(call, tone_a)
            b.play(incoming, tone_b)
            a.record(call, tmp_path / "a-heard.wav")
            b.record(incoming, tmp_path / "b-heard.wav")
            await asyncio.sleep(2.0)
            heard_a, heard_b = a.stop_record(call), b.stop_record(incoming)
            a.hangup(call)
            await wait(b, "wait_call_state", incoming, "disconnected", 10)
        finally:
            a.close()
            b.close()
        await records(vx)
        cdrs = (await api.get("/api/cdrs")).json()
    assert audio.tone_ratio(audio.read_wav(heard_b).samples, 8000, 500.0) > 0.8
    assert audio.tone_ratio(audio.read_wav(heard_a).samples, 8000, 1000.0) > 0.8
    assert cdrs["pagination"]["total"] == 1, cdrs
    cdr = cdrs["data"][0]
    assert (cdr["from_number"], cdr["to_number"], cdr["status"], cdr["direction"]) == (
        "3001",
        "3002",
        "completed",
        "internal",
    )
    assert cdr["answered_by"] == "3002" and cdr["duration"] >= 2 and cdr["mos"] is not None
