"""`/api/dids` and `/api/routes`: CRUD, routes per DID by priority, conditions and action data stored
in the one shape the engine's PBX router reads (proved by running that router's own decision on
the stored rows), and reordering."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from tests.api.pbx import Pbx, pbx_error
from voxswitch.engine.pbx_routing import RouteRule, choose
from voxswitch.store.models import CallRoute

MON_10 = datetime(2026, 11, 30, 10, 0)
MON_23 = datetime(2026, 11, 30, 23, 0)
TUE_02 = datetime(2026, 12, 1, 2, 0)
SAT_10 = datetime(2026, 12, 5, 10, 0)


async def test_did_crud(pbx: Pbx) -> None:
    did = await pbx.post(
        "/api/dids", {"phone_number": "+15551234567", "friendly_name": "Main Line", "capabilities": ["voice", "sms"]}
    )
    assert did["phone_number"] == "+15551234567" and did["friendly_name"] == "Main Line"
    assert did["capabilities"] == ["voice", "sms"] and did["source"] == "manual" and did["provider_sid"] is None
    assert (await pbx.post("/api/dids", {"phone_number": "+442071234567"}))["capabilities"] == ["voice"]
    page = await pbx.get("/api/dids?limit=1&offset=1")
    assert (
        page["pagination"] == {"total": 2, "limit": 1, "offset": 1}
        and page["data"][0]["phone_number"] == "+442071234567"
    )
    r = await pbx.client.put(
        f"/api/dids/{did['id']}",
        json={"friendly_name": "Front desk", "capabilities": ["SMS", "voice"]},
        headers=pbx.admin,
    )
    assert r.status_code == 200 and r.json()["friendly_name"] == "Front desk"
    assert r.json()["capabilities"] == ["voice", "sms"]  # canonical order, lower case
    assert (await pbx.get(f"/api/dids/{did['id']}"))["friendly_name"] == "Front desk"
    assert (await pbx.client.delete(f"/api/dids/{did['id']}", headers=pbx.admin)).status_code == 204
    pbx_error(await pbx.client.get(f"/api/dids/{did['id']}", headers=pbx.admin), 404, "not_found")


async def test_deleting_a_did_deletes_its_routes(pbx: Pbx) -> None:
    did = await pbx.post("/api/dids", {"phone_number": "+15551234567"})
    await pbx.post("/api/routes", {"name": "Bye", "did_id": did["id"], "action": "hangup"})
    assert (await pbx.client.delete(f"/api/dids/{did['id']}", headers=pbx.admin)).status_code == 204
    assert (await pbx.get("/api/routes"))["pagination"]["total"] == 0


async def rules(pbx: Pbx, did_id: int) -> list[RouteRule]:
    """The stored rows exactly as the engine's router turns them into rules at call time."""
    async with pbx.state.db.session() as s:
        rows = (await s.execute(select(CallRoute).where(CallRoute.did_id == did_id))).scalars().all()
    return [RouteRule(r.id, r.name, r.priority, r.conditions, r.action, r.action_data, r.enabled) for r in rows]


async def test_routes_per_did_by_priority_drive_the_engines_decision(pbx: Pbx) -> None:
    desk = await pbx.post("/api/devices", {"name": "Desk", "username": "1001", "password": "secret-1001"})
    cell = await pbx.post("/api/devices", {"name": "Cell", "username": "1002", "password": "secret-1002"})
    did = await pbx.post("/api/dids", {"phone_number": "+15551234567"})
    business = await pbx.post(
        "/api/routes",
        {
            "name": "Business Hours",
            "did_id": did["id"],
            "priority": 1,
            "conditions": {"time_start": "09:00", "time_end": "17:00", "days": ["fri", "Mon", "tue", "wed", "thu"]},
            "action": "forward",
            "action_data": {"device_id": desk["id"]},
        },
    )
    assert business["conditions"] == {
        "time_start": "09:00",
        "time_end": "17:00",
        "days": ["mon", "tue", "wed", "thu", "fri"],  # canonical: lower case, week order
    }
    assert business["action_data"] == {"device_id": desk["id"]} and business["enabled"] is True
    night = await pbx.post(
        "/api/routes",
        {
            "name": "Night",
            "did_id": did["id"],
            "conditions": {"time_start": "22:00", "time_end": "06:00"},  # overnight
            "action": "ring_group",
            "action_data": {"device_ids": [cell["id"], desk["id"]], "strategy": "sequential", "ring_seconds": 15},
        },
    )
    assert night["priority"] == 2  # after the DID's last route when not given
    vip = await pbx.post(
        "/api/routes",
        {
            "name": "VIP",
            "did_id": did["id"],
            "conditions": {"caller_patterns": ["+1555000*", "+15559990000"]},
            "action": "external",
            "action_data": {"number": "+15559876543"},
        },
    )
    rest = await pbx.post(
        "/api/routes",
        {"name": "Otherwise", "did_id": did["id"], "action": "voicemail", "action_data": {"greeting": "Leave it."}},
    )
    await pbx.post(
        "/api/routes", {"name": "App", "did_id": did["id"], "action": "app", "action_data": {"app": "hello"}}
    )
    listed = await pbx.get(f"/api/routes?did_id={did['id']}")
    assert [r["name"] for r in listed["data"]] == ["Business Hours", "Night", "VIP", "Otherwise", "App"]

    stored = await rules(pbx, did["id"])
    assert choose(stored, MON_10, "+15550001111").id == business["id"]
    assert choose(stored, MON_23, "+15550001111").id == night["id"]
    assert choose(stored, TUE_02, "+15550001111").id == night["id"]
    assert choose(stored, SAT_10, "+15550001234").id == vip["id"]
    assert choose(stored, SAT_10, "+442070000000").id == rest["id"]

    # reorder: every route of the DID, first to run first
    order = [rest["id"], vip["id"], business["id"], night["id"], listed["data"][-1]["id"]]
    r = await pbx.client.put("/api/routes/reorder", json={"order": order}, headers=pbx.admin)
    assert r.status_code == 200, r.text
    assert [(x["id"], x["priority"]) for x in r.json()["data"]] == [(i, n) for n, i in enumerate(order, start=1)]
    assert choose(await rules(pbx, did["id"]), MON_10, "+15550001111").id == rest["id"]

    # disable, update, delete
    r = await pbx.client.put(f"/api/routes/{rest['id']}", json={"enabled": False}, headers=pbx.admin)
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert choose(await rules(pbx, did["id"]), SAT_10, "+442070000000").id != rest["id"]
    r = await pbx.client.put(
        f"/api/routes/{vip['id']}", json={"action": "hangup", "action_data": {"reason": "busy"}}, headers=pbx.admin
    )
    assert r.status_code == 200 and r.json()["action"] == "hangup" and r.json()["action_data"] == {"reason": "busy"}
    r = await pbx.client.put(f"/api/routes/{night['id']}", json={"action": "hangup"}, headers=pbx.admin)
    assert r.json()["action_data"] == {}, "a new action starts from its own data"
    assert (await pbx.get(f"/api/routes/{vip['id']}"))["conditions"] == {
        "caller_patterns": ["+1555000*", "+15559990000"]
    }
    assert (await pbx.client.delete(f"/api/routes/{vip['id']}", headers=pbx.admin)).status_code == 204
    pbx_error(await pbx.client.get(f"/api/routes/{vip['id']}", headers=pbx.admin), 404, "not_found")


async def test_routes_of_other_dids_are_apart(pbx: Pbx) -> None:
    a = await pbx.post("/api/dids", {"phone_number": "+15551230001"})
    b = await pbx.post("/api/dids", {"phone_number": "+15551230002"})
    ra = await pbx.post("/api/routes", {"name": "Main", "did_id": a["id"], "action": "hangup"})
    rb = await pbx.post("/api/routes", {"name": "Main", "did_id": b["id"], "action": "hangup"})  # same name, other DID
    assert ra["priority"] == rb["priority"] == 1
    assert (await pbx.get(f"/api/routes?did_id={b['id']}"))["data"] == [rb]
    assert (await pbx.get("/api/routes"))["pagination"]["total"] == 2
