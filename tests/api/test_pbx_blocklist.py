"""`/api/blocklist`: numbers and prefixes listed, added (by an admin), removed; stored so that the
engine's own matching refuses exactly the callers an admin meant."""

from __future__ import annotations

from tests.api.pbx import Pbx, pbx_error
from voxswitch.engine.pbx_routing import number_matches


async def test_blocklist_add_list_remove(pbx: Pbx) -> None:
    exact = await pbx.post("/api/blocklist", {"phone_number": "+15551234567", "reason": "spam"})
    prefix = await pbx.post("/api/blocklist", {"phone_number": "+1900*"})
    me = await pbx.get("/api/me")
    assert set(exact) == {"id", "phone_number", "reason", "created_by", "created_at"}
    assert exact["reason"] == "spam" and exact["created_by"] == me["id"] and prefix["reason"] == ""
    listed = await pbx.get("/api/blocklist?limit=1")
    assert listed["pagination"] == {"total": 2, "limit": 1, "offset": 0} and listed["data"] == [exact]

    stored = [e["phone_number"] for e in (await pbx.get("/api/blocklist"))["data"]]
    refused = [
        c for c in ("+19005550000", "+15551234567", "0019005550000") if any(number_matches(p, c) for p in stored)
    ]
    allowed = [c for c in ("+15551234568", "+18005550000", "+1901") if not any(number_matches(p, c) for p in stored)]
    assert refused == ["+19005550000", "+15551234567", "0019005550000"]
    assert allowed == ["+15551234568", "+18005550000", "+1901"]

    user, _ = await pbx.user("ann@example.com")
    assert (await pbx.get("/api/blocklist", headers=user))["pagination"]["total"] == 2
    r = await pbx.client.post("/api/blocklist", json={"phone_number": "+15550000000"}, headers=user)
    pbx_error(r, 403, "authorization_error")
    pbx_error(await pbx.client.delete(f"/api/blocklist/{exact['id']}", headers=user), 403, "authorization_error")

    assert (await pbx.client.delete(f"/api/blocklist/{exact['id']}", headers=pbx.admin)).status_code == 204
    assert [e["id"] for e in (await pbx.get("/api/blocklist"))["data"]] == [prefix["id"]]
    pbx_error(await pbx.client.delete(f"/api/blocklist/{exact['id']}", headers=pbx.admin), 404, "not_found")


async def test_status_without_sip_says_so(pbx: Pbx) -> None:
    status = await pbx.get("/api/system/status")
    assert status["sip_enabled"] is False and status["listeners"] == [] and status["trunk"] is None
    assert (status["devices"], status["registered_devices"], status["bindings"], status["active_calls"]) == (0, 0, 0, 0)
    assert status["twilio"]["status"] == "not_configured" and status["twilio"]["reachable"] is None
