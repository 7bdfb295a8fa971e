"""`/api/devices`: CRUD with the document's fields and pagination, passwords never returned, the
engine's SIP accounts kept current, who may read and who may change, and DND for one's own devices."""

from __future__ import annotations

from sqlalchemy import select

from tests.api.pbx import Pbx, pbx_error
from voxswitch.sip.digest import Algorithm, compute_ha1
from voxswitch.store.models import Device

PHONE = {"name": "Office Phone", "username": "1001", "password": "secure-password", "type": "grandstream"}
FIELDS = {"id", "name", "username", "type", "user_id", "enabled", "dnd", "registered", "created_at", "updated_at"}


async def test_device_crud_with_the_documented_fields_and_no_password_ever_shown(pbx: Pbx) -> None:
    created = await pbx.post("/api/devices", PHONE)
    assert set(created) == FIELDS
    assert created["name"] == "Office Phone" and created["username"] == "1001" and created["type"] == "grandstream"
    assert created["enabled"] is True and created["dnd"] is False and created["registered"] is False
    device_id = created["id"]
    # the engine's digest check knows the account at once, with the HA1 of the given password
    account = pbx.state.engine.accounts.get("1001")
    assert account is not None and account.id == device_id
    assert account.ha1_md5 == compute_ha1("1001", "voxswitch", "secure-password", Algorithm.MD5)

    fetched = await pbx.get(f"/api/devices/{device_id}")
    assert fetched == created
    renamed = (
        await pbx.client.put(f"/api/devices/{device_id}", json={"name": "Updated Name"}, headers=pbx.admin)
    ).json()
    assert renamed["name"] == "Updated Name" and renamed["username"] == "1001"
    assert pbx.state.engine.accounts.get("1001").ha1_md5 == account.ha1_md5  # a rename keeps the credentials

    r = await pbx.client.put(f"/api/devices/{device_id}", json={"password": "a-new-password"}, headers=pbx.admin)
    assert r.status_code == 200 and "password" not in r.text and "ha1" not in r.text
    new_account = pbx.state.engine.accounts.get("1001")
    assert new_account.ha1_md5 == compute_ha1("1001", "voxswitch", "a-new-password", Algorithm.MD5)
    assert new_account.ha1_sha256 == compute_ha1("1001", "voxswitch", "a-new-password", Algorithm.SHA256)
    async with pbx.state.db.session() as s:
        row = (await s.execute(select(Device).where(Device.id == device_id))).scalar_one()
    assert row.ha1_md5 == new_account.ha1_md5  # the store has the HA1s, and only they

    # a new username needs the password too (the HA1 covers both), and frees the old name
    moved = await pbx.client.put(
        f"/api/devices/{device_id}", json={"username": "1002", "password": "third-password"}, headers=pbx.admin
    )
    assert moved.status_code == 200 and moved.json()["username"] == "1002"
    assert pbx.state.engine.accounts.get("1001") is None and pbx.state.engine.accounts.get("1002") is not None

    for body in (await pbx.get("/api/devices"))["data"]:
        assert set(body) == FIELDS
    r = await pbx.client.delete(f"/api/devices/{device_id}", headers=pbx.admin)
    assert r.status_code == 204
    assert pbx.state.engine.accounts.get("1002") is None
    pbx_error(await pbx.client.get(f"/api/devices/{device_id}", headers=pbx.admin), 404, "not_found")


async def test_devices_list_is_paginated_as_the_document_says(pbx: Pbx) -> None:
    for n in range(5):
        await pbx.post("/api/devices", {"name": f"Phone {n}", "username": f"20{n:02d}", "password": "secret-pass"})
    page = await pbx.get("/api/devices?limit=2&offset=2")
    assert page["pagination"] == {"total": 5, "limit": 2, "offset": 2}
    assert [d["username"] for d in page["data"]] == ["2002", "2003"]
    default = await pbx.get("/api/devices")
    assert default["pagination"] == {"total": 5, "limit": 20, "offset": 0} and len(default["data"]) == 5


async def test_users_read_devices_but_only_admins_change_them(pbx: Pbx) -> None:
    created = await pbx.post("/api/devices", PHONE)
    user, _ = await pbx.user("ann@example.com")
    assert (await pbx.get("/api/devices", headers=user))["pagination"]["total"] == 1
    before = await pbx.snapshot()
    for method, path, body in (
        ("POST", "/api/devices", {**PHONE, "username": "1009"}),
        ("PUT", f"/api/devices/{created['id']}", {"name": "Mine now"}),
        ("DELETE", f"/api/devices/{created['id']}", None),
    ):
        r = await pbx.client.request(method, path, json=body, headers=user)
        pbx_error(r, 403, "authorization_error")
    pbx.client.cookies.clear()
    pbx_error(await pbx.client.get("/api/devices"), 401, "authentication_error")
    assert await pbx.snapshot() == before


async def test_dnd_sets_the_signed_in_users_own_devices_and_their_sip_accounts(pbx: Pbx) -> None:
    user, user_id = await pbx.user("bob@example.com")
    mine = await pbx.post("/api/devices", {**PHONE, "username": "3001", "user_id": user_id})
    other = await pbx.post("/api/devices", {**PHONE, "username": "3002"})
    r = await pbx.client.put("/api/dnd", json={"enabled": True}, headers=user)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "enabled": True,
        "devices": [{"id": mine["id"], "name": "Office Phone", "username": "3001", "dnd": True}],
    }
    assert pbx.state.engine.accounts.get("3001").dnd is True  # what the router reads per call
    assert pbx.state.engine.accounts.get("3002").dnd is False
    assert (await pbx.get(f"/api/devices/{other['id']}"))["dnd"] is False
    off = await pbx.client.put("/api/dnd", json={"enabled": False}, headers=user)
    assert off.json()["devices"][0]["dnd"] is False and pbx.state.engine.accounts.get("3001").dnd is False
    # an admin without devices gets an empty list, and nobody else's devices change
    assert (await pbx.client.put("/api/dnd", json={"enabled": True}, headers=pbx.admin)).json()["devices"] == []
    assert pbx.state.engine.accounts.get("3002").dnd is False


async def test_a_device_named_by_a_route_cannot_be_deleted_until_the_route_lets_go(pbx: Pbx) -> None:
    device = await pbx.post("/api/devices", PHONE)
    did = await pbx.post("/api/dids", {"phone_number": "+15551234567"})
    route = await pbx.post(
        "/api/routes",
        {"name": "All day", "did_id": did["id"], "action": "forward", "action_data": {"device_id": device["id"]}},
    )
    before = await pbx.snapshot()
    r = await pbx.client.delete(f"/api/devices/{device['id']}", headers=pbx.admin)
    assert pbx_error(r, 409, "conflict") == {"id"} and str(route["id"]) in r.json()["error"]["message"]
    assert await pbx.snapshot() == before and pbx.state.engine.accounts.get("1001") is not None
    assert (await pbx.client.delete(f"/api/routes/{route['id']}", headers=pbx.admin)).status_code == 204
    assert (await pbx.client.delete(f"/api/devices/{device['id']}", headers=pbx.admin)).status_code == 204
