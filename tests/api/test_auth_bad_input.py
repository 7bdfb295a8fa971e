"""Every auth endpoint answers bad input in its document's error shape, names the field, changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import bearer, login

# (method, path, body, needs_admin_token, offending field, surface)
CASES: list[tuple[str, str, Any, bool, str, str]] = [
    ("POST", "/auth/register", {"email": "not-an-email", "password": "Passw0rd-ok"}, False, "email", "agents"),
    ("POST", "/auth/register", {"email": "new@example.com", "password": "short"}, False, "password", "agents"),
    ("POST", "/auth/register", {"email": "new@example.com"}, False, "password", "agents"),
    ("POST", "/auth/login", {"email": "admin@example.com"}, False, "password", "agents"),
    ("POST", "/auth/login", {"email": ["x"], "password": "x"}, False, "email", "agents"),
    ("POST", "/api/auth/login", {"password": "x"}, False, "email", "pbx"),
    ("PUT", "/api/me/password", {"current_password": "Adm1n-Passw0rd!"}, True, "new_password", "pbx"),
    (
        "PUT",
        "/api/me/password",
        {"current_password": "Adm1n-Passw0rd!", "new_password": "short"},
        True,
        "new_password",
        "pbx",
    ),
    ("POST", "/api/users", {"email": "u@example.com", "password": "Passw0rd-ok", "role": "root"}, True, "role", "pbx"),
    ("POST", "/api/users", {"email": "bad", "password": "Passw0rd-ok"}, True, "email", "pbx"),
    (
        "POST",
        "/api/users",
        {"email": "u@example.com", "password": "Passw0rd-ok", "call_limit_per_day": -1},
        True,
        "call_limit_per_day",
        "pbx",
    ),
    ("PUT", "/api/users/{admin_id}", {"role": "superuser"}, True, "role", "pbx"),
    ("PUT", "/api/users/{admin_id}", {"email": "nope"}, True, "email", "pbx"),
    ("GET", "/api/users?limit=1000", None, True, "limit", "pbx"),
    ("GET", "/api/users?offset=-1", None, True, "offset", "pbx"),
    ("POST", "/api/setup/complete", {"admin_email": "root@example.com"}, False, "admin_password", "pbx"),
    ("POST", "/api/v1/auth", {"redirect_uri": "https://x.example.com/"}, False, "code", "softphone"),
    ("POST", "/api/v1/auth/refresh", {}, False, "refresh_token", "softphone"),
    ("PUT", "/api/v1/user/profile", {"privacy_consent": "maybe"}, True, "privacy_consent", "softphone"),
    ("GET", "/api/v1/admin/users?limit=0", None, True, "limit", "softphone"),
    (
        "PUT",
        "/api/v1/admin/users/{admin_id}/permissions",
        {"call_limit_per_day": "lots"},
        True,
        "call_limit_per_day",
        "softphone",
    ),
]


def field_named(surface: str, body: dict[str, Any]) -> set[str]:
    if surface == "agents":
        assert body["success"] is False and body["data"] is None and body["timestamp"]
        assert body["error"]["code"] == "VALIDATION_001"
        return {f["field"] for f in body["error"]["fields"]}
    if surface == "pbx":
        assert body["error"]["code"] == "validation_error"
        return {d["field"] for d in body["error"]["details"]}
    assert body["error"]["code"] == "VALIDATION_ERROR" and body["request_id"] and body["timestamp"]
    details = body["error"]["details"]
    return {details["field"], *(e["field"] for e in details.get("errors", []))}


@pytest.mark.parametrize(("method", "path", "payload", "admin", "field", "surface"), CASES)
async def test_bad_input_is_refused_in_shape(  # type: ignore[no-untyped-def]
    client: httpx.AsyncClient, method, path, payload, admin, field, surface
) -> None:
    token = await login(client)
    headers = bearer(token) if admin else {}
    me_before = (await client.get("/api/me", headers=bearer(token))).json()
    users_before = (await client.get("/api/users?limit=100", headers=bearer(token))).json()["pagination"]["total"]
    r = await client.request(method, path.format(admin_id=me_before["id"]), json=payload, headers=headers)
    assert r.status_code == 400, r.text
    assert field in field_named(surface, r.json()), r.json()
    # nothing changed: same user record, same number of users, the old password still works
    assert (await client.get("/api/me", headers=bearer(token))).json() == me_before
    assert (await client.get("/api/users?limit=100", headers=bearer(token))).json()["pagination"][
        "total"
    ] == users_before
    await login(client)
