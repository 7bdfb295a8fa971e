"""Every PBX core endpoint answers bad input in the document's error shape
(`{"error": {"code", "message", "details": [{"field", "message"}]}}`), names the field, and changes
nothing: every PBX table holds exactly the rows it held before each refused request."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.pbx import Pbx, pbx_error

GONE = 999_999
# (method, path, body, status, code, field named); {device}, {did}, {route}... are ids made below.
Case = tuple[str, str, Any, int, str, str]
DEVICE_CASES: list[Case] = [
    ("POST", "/api/devices", {"name": "P", "username": "1009"}, 400, "validation_error", "password"),
    (
        "POST",
        "/api/devices",
        {"name": "P", "username": "10 09", "password": "secret-pass"},
        400,
        "validation_error",
        "username",
    ),
    (
        "POST",
        "/api/devices",
        {"name": "P", "username": "1009", "password": "short"},
        400,
        "validation_error",
        "password",
    ),
    (
        "POST",
        "/api/devices",
        {"name": "", "username": "1009", "password": "secret-pass"},
        400,
        "validation_error",
        "name",
    ),
    (
        "POST",
        "/api/devices",
        {"name": "a\x00b", "username": "1009", "password": "secret-pass"},
        400,
        "validation_error",
        "name",
    ),
    (
        "POST",
        "/api/devices",
        {"name": "P", "username": "1009", "password": "secret-pass", "type": "no such!"},
        400,
        "validation_error",
        "type",
    ),
    (
        "POST",
        "/api/devices",
        {"name": "P", "username": "1009", "password": "secret-pass", "user_id": "nobody"},
        400,
        "validation_error",
        "user_id",
    ),
    (
        "POST",
        "/api/devices",
        {"name": "P", "username": "1009", "pasword": "secret-pass"},
        400,
        "validation_error",
        "pasword",
    ),
    (
        "POST",
        "/api/devices",
        {"name": "Dup", "username": "1001", "password": "secret-pass"},
        409,
        "conflict",
        "username",
    ),
    ("GET", "/api/devices?limit=0", None, 400, "validation_error", "limit"),
    ("GET", "/api/devices?offset=-1", None, 400, "validation_error", "offset"),
    ("GET", f"/api/devices/{GONE}", None, 404, "not_found", ""),
    ("GET", "/api/devices/abc", None, 400, "validation_error", "device_id"),
    ("PUT", "/api/devices/{device}", {"username": "1005"}, 400, "validation_error", "password"),
    ("PUT", "/api/devices/{device}", {"password": "short"}, 400, "validation_error", "password"),
    ("PUT", "/api/devices/{device}", {"enabled": "sometimes"}, 400, "validation_error", "enabled"),
    ("PUT", "/api/devices/{device}", {"username": "1002", "password": "secret-pass"}, 409, "conflict", "username"),
    ("PUT", f"/api/devices/{GONE}", {"name": "x"}, 404, "not_found", ""),
    ("DELETE", f"/api/devices/{GONE}", None, 404, "not_found", ""),
    ("GET", f"/api/devices/{GONE}/events", None, 404, "not_found", ""),
    ("GET", "/api/devices/registrations?limit=1000", None, 400, "validation_error", "limit"),
    ("PUT", "/api/dnd", {"enabled": "sometimes"}, 400, "validation_error", "enabled"),
    ("PUT", "/api/dnd", {}, 400, "validation_error", "enabled"),
]
DID_CASES: list[Case] = [
    ("POST", "/api/dids", {"phone_number": "5551234567"}, 400, "validation_error", "phone_number"),
    ("POST", "/api/dids", {"phone_number": "+0123456"}, 400, "validation_error", "phone_number"),
    ("POST", "/api/dids", {"phone_number": "+1555123456789012"}, 400, "validation_error", "phone_number"),
    ("POST", "/api/dids", {"phone_number": "+1 555 123 4567"}, 400, "validation_error", "phone_number"),
    (
        "POST",
        "/api/dids",
        {"phone_number": "+15557654321", "capabilities": ["telepathy"]},
        400,
        "validation_error",
        "capabilities",
    ),
    (
        "POST",
        "/api/dids",
        {"phone_number": "+15557654321", "capabilities": []},
        400,
        "validation_error",
        "capabilities",
    ),
    (
        "POST",
        "/api/dids",
        {"phone_number": "+15557654321", "friendly_name": "x" * 201},
        400,
        "validation_error",
        "friendly_name",
    ),
    ("POST", "/api/dids", {"phone_number": "+15551234567"}, 409, "conflict", "phone_number"),
    ("PUT", "/api/dids/{did}", {"phone_number": "abc"}, 400, "validation_error", "phone_number"),
    ("PUT", "/api/dids/{did}", {"phone_number": "+15551230002"}, 409, "conflict", "phone_number"),
    ("PUT", f"/api/dids/{GONE}", {"friendly_name": "x"}, 404, "not_found", ""),
    ("GET", f"/api/dids/{GONE}", None, 404, "not_found", ""),
    ("DELETE", f"/api/dids/{GONE}", None, 404, "not_found", ""),
    ("POST", "/api/dids/sync", None, 503, "service_unavailable", "twilio_account_sid"),
]


def route(**overrides: Any) -> dict[str, Any]:
    return {"name": "New", "did_id": "{did}", "action": "hangup", **overrides}


ROUTE_CASES: list[Case] = [
    ("POST", "/api/routes", {"name": "New", "did_id": "{did}"}, 400, "validation_error", "action"),
    ("POST", "/api/routes", route(action="teleport"), 400, "validation_error", "action"),
    ("POST", "/api/routes", route(did_id=GONE), 400, "validation_error", "did_id"),
    ("POST", "/api/routes", {"name": "New", "action": "hangup"}, 400, "validation_error", "did_id"),
    (
        "POST",
        "/api/routes",
        route(action="forward", action_data={"device_id": GONE}),
        400,
        "validation_error",
        "action_data.device_id",
    ),
    ("POST", "/api/routes", route(action="forward"), 400, "validation_error", "action_data.device_id"),
    (
        "POST",
        "/api/routes",
        route(action="forward", action_data={"device_id": "1"}),
        400,
        "validation_error",
        "action_data.device_id",
    ),
    (
        "POST",
        "/api/routes",
        route(action="ring_group", action_data={"device_ids": []}),
        400,
        "validation_error",
        "action_data.device_ids",
    ),
    (
        "POST",
        "/api/routes",
        route(action="ring_group", action_data={"device_ids": ["{device}", GONE]}),
        400,
        "validation_error",
        "action_data.device_ids.1",
    ),
    (
        "POST",
        "/api/routes",
        route(action="ring_group", action_data={"device_ids": ["{device}", "{device}"]}),
        400,
        "validation_error",
        "action_data.device_ids",
    ),
    (
        "POST",
        "/api/routes",
        route(action="ring_group", action_data={"device_ids": ["{device}"], "strategy": "random"}),
        400,
        "validation_error",
        "action_data.strategy",
    ),
    (
        "POST",
        "/api/routes",
        route(action="ring_group", action_data={"device_ids": ["{device}"], "ring_seconds": 1}),
        400,
        "validation_error",
        "action_data.ring_seconds",
    ),
    (
        "POST",
        "/api/routes",
        route(action="external", action_data={"number": "12345"}),
        400,
        "validation_error",
        "action_data.number",
    ),
    ("POST", "/api/routes", route(action="external"), 400, "validation_error", "action_data.number"),
    (
        "POST",
        "/api/routes",
        route(action="app", action_data={"app": "no-such-app"}),
        400,
        "validation_error",
        "action_data.app",
    ),
    (
        "POST",
        "/api/routes",
        route(action="app", action_data={"app": "hello", "params": {"x": [1]}}),
        400,
        "validation_error",
        "action_data.params.x",
    ),
    (
        "POST",
        "/api/routes",
        route(action="voicemail", action_data={"device_id": GONE}),
        400,
        "validation_error",
        "action_data.device_id",
    ),
    ("POST", "/api/routes", route(action_data={"foo": 1}), 400, "validation_error", "action_data.foo"),
    (
        "POST",
        "/api/routes",
        route(conditions={"time_start": "25:00", "time_end": "17:00"}),
        400,
        "validation_error",
        "conditions.time_start",
    ),
    (
        "POST",
        "/api/routes",
        route(conditions={"time_start": "9:00", "time_end": "17:00"}),
        400,
        "validation_error",
        "conditions.time_start",
    ),
    (
        "POST",
        "/api/routes",
        route(conditions={"time_start": "09:00", "time_end": "17:60"}),
        400,
        "validation_error",
        "conditions.time_end",
    ),
    ("POST", "/api/routes", route(conditions={"time_start": "09:00"}), 400, "validation_error", "conditions.time_end"),
    (
        "POST",
        "/api/routes",
        route(conditions={"time_start": "09:00", "time_end": "09:00"}),
        400,
        "validation_error",
        "conditions.time_end",
    ),
    ("POST", "/api/routes", route(conditions={"days": ["funday"]}), 400, "validation_error", "conditions.days"),
    ("POST", "/api/routes", route(conditions={"days": []}), 400, "validation_error", "conditions.days"),
    (
        "POST",
        "/api/routes",
        route(conditions={"caller_patterns": ["555*"]}),
        400,
        "validation_error",
        "conditions.caller_patterns.0",
    ),
    (
        "POST",
        "/api/routes",
        route(conditions={"caller_patterns": ["+1555*", "+1-555"]}),
        400,
        "validation_error",
        "conditions.caller_patterns.1",
    ),
    ("POST", "/api/routes", route(conditions={"holiday": True}), 400, "validation_error", "conditions.holiday"),
    ("POST", "/api/routes", route(priority=-1), 400, "validation_error", "priority"),
    ("POST", "/api/routes", route(name="First"), 409, "conflict", "name"),
    ("PUT", "/api/routes/{route}", {"conditions": {"days": ["xyz"]}}, 400, "validation_error", "conditions.days"),
    ("PUT", "/api/routes/{route}", {"action": "forward"}, 400, "validation_error", "action_data.device_id"),
    ("PUT", "/api/routes/{route}", {"name": "Second"}, 409, "conflict", "name"),
    ("PUT", "/api/routes/{route}", {"did_id": GONE}, 400, "validation_error", "did_id"),
    ("PUT", f"/api/routes/{GONE}", {"name": "x"}, 404, "not_found", ""),
    ("GET", f"/api/routes/{GONE}", None, 404, "not_found", ""),
    ("DELETE", f"/api/routes/{GONE}", None, 404, "not_found", ""),
    ("GET", "/api/routes?did_id=0", None, 400, "validation_error", "did_id"),
    ("PUT", "/api/routes/reorder", {"order": []}, 400, "validation_error", "order"),
    ("PUT", "/api/routes/reorder", {"order": [GONE]}, 400, "validation_error", "order.0"),
    ("PUT", "/api/routes/reorder", {"order": ["{route}", "{route}"]}, 400, "validation_error", "order"),
    ("PUT", "/api/routes/reorder", {"order": ["{route}"]}, 400, "validation_error", "order"),  # not all of the DID's
    (
        "PUT",
        "/api/routes/reorder",
        {"order": ["{route}", "{route2}", "{other_route}"]},
        400,
        "validation_error",
        "order",
    ),
    ("PUT", "/api/routes/reorder", {"order": "1,2"}, 400, "validation_error", "order"),
]
OTHER_CASES: list[Case] = [
    ("GET", "/api/cdrs?from_date=yesterday", None, 400, "validation_error", "from_date"),
    ("GET", "/api/cdrs?from_date=2024-02-30", None, 400, "validation_error", "from_date"),
    ("GET", "/api/cdrs?from_date=2024-02-01&to_date=2024-01-01", None, 400, "validation_error", "to_date"),
    ("GET", "/api/cdrs?to_date=0001-01-01", None, 400, "validation_error", "to_date"),
    ("GET", "/api/cdrs/stats?period=year", None, 400, "validation_error", "period"),
    ("GET", "/api/cdrs/stats?from_date=31/01/2024", None, 400, "validation_error", "from_date"),
    ("GET", "/api/cdrs/no-such-call", None, 404, "not_found", ""),
    ("POST", "/api/blocklist", {"phone_number": "spam"}, 400, "validation_error", "phone_number"),
    ("POST", "/api/blocklist", {"phone_number": "+1900**"}, 400, "validation_error", "phone_number"),
    ("POST", "/api/blocklist", {"phone_number": "*"}, 400, "validation_error", "phone_number"),
    (
        "POST",
        "/api/blocklist",
        {"phone_number": "+15550001111", "reason": "x" * 201},
        400,
        "validation_error",
        "reason",
    ),
    ("POST", "/api/blocklist", {"phone_number": "+1900*"}, 409, "conflict", "phone_number"),
    ("DELETE", f"/api/blocklist/{GONE}", None, 404, "not_found", ""),
    ("PUT", "/api/system/config", {"twilio_account_sid": "XX123"}, 400, "validation_error", "twilio_account_sid"),
    ("PUT", "/api/system/config", {"twilio_auth_token": "short"}, 400, "validation_error", "twilio_auth_token"),
    ("PUT", "/api/system/config", {"voicemail_email": "nope"}, 400, "validation_error", "voicemail_email"),
    ("PUT", "/api/system/config", {"twilio_region": "us1"}, 400, "validation_error", "twilio_region"),
]


async def world(pbx: Pbx) -> dict[str, int]:
    """Something of every kind to collide with or refer to."""
    device = await pbx.post("/api/devices", {"name": "Desk", "username": "1001", "password": "secret-1001"})
    await pbx.post("/api/devices", {"name": "Cell", "username": "1002", "password": "secret-1002"})
    did = await pbx.post("/api/dids", {"phone_number": "+15551234567"})
    other = await pbx.post("/api/dids", {"phone_number": "+15551230002"})
    first = await pbx.post("/api/routes", {"name": "First", "did_id": did["id"], "action": "hangup"})
    second = await pbx.post("/api/routes", {"name": "Second", "did_id": did["id"], "action": "hangup"})
    other_route = await pbx.post("/api/routes", {"name": "Other", "did_id": other["id"], "action": "hangup"})
    await pbx.post("/api/blocklist", {"phone_number": "+1900*", "reason": "premium"})
    return {
        "device": device["id"],
        "did": did["id"],
        "route": first["id"],
        "route2": second["id"],
        "other_route": other_route["id"],
    }


def fill(value: Any, ids: dict[str, int]) -> Any:
    """Put the made ids where a case names them ("{device}" becomes the device's integer id)."""
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in ids:
        return ids[value[1:-1]]
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    return value


@pytest.mark.parametrize(
    "cases",
    [DEVICE_CASES, DID_CASES, ROUTE_CASES, OTHER_CASES],
    ids=["devices", "dids", "routes", "cdrs-blocklist-system"],
)
async def test_bad_input_is_refused_in_the_documents_shape_and_changes_nothing(pbx: Pbx, cases: list[Case]) -> None:
    ids = await world(pbx)
    failures = []
    for method, path, body, status, code, field in cases:
        before = await pbx.snapshot()
        r = await pbx.client.request(method, path.format(**ids), json=fill(body, ids), headers=pbx.admin)
        label = f"{method} {path} {body!r}"
        try:
            named = pbx_error(r, status, code)
            assert not field or field in named, f"{field!r} not named in {named}"
            assert await pbx.snapshot() == before, "a refused request changed the store"
        except AssertionError as exc:
            failures.append(f"{label}: {str(exc)[:400]}")
    assert not failures, "\n".join(failures)


async def test_a_body_that_is_not_json_is_a_bad_request(pbx: Pbx) -> None:
    before = await pbx.snapshot()
    r = await pbx.client.post(
        "/api/devices", content=b"{not json", headers={**pbx.admin, "Content-Type": "application/json"}
    )
    assert pbx_error(r, 400, "bad_request") == {"body"}
    assert await pbx.snapshot() == before
