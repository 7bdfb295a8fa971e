"""One identity across surfaces: register, log in on one surface, use the token on the others."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, bearer, login


async def register(client: httpx.AsyncClient, email: str, password: str = "Us3r-Passw0rd!") -> dict:
    r = await client.post(
        "/auth/register", json={"email": email, "password": password, "first_name": "Ann", "last_name": "Lee"}
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_register_login_and_use_token_on_every_surface(client: httpx.AsyncClient) -> None:
    created = await register(client, "Ann.Lee@Example.com")
    assert created["email"] == "ann.lee@example.com"
    assert set(created) == {"id", "email", "first_name", "last_name", "created_at"}

    r = await client.post("/auth/login", json={"email": "ann.lee@example.com", "password": "Us3r-Passw0rd!"})
    assert r.status_code == 200
    body = r.json()
    assert body["expires_in"] == 900 and body["user"] == {
        "id": created["id"],
        "email": created["email"],
        "role": "user",
    }
    token = body["token"]

    me = (await client.get("/auth/me", headers=bearer(token))).json()  # agents surface
    assert me["first_name"] == "Ann" and me["role"] == "user"
    pbx_me = await client.get("/api/me", headers=bearer(token))  # PBX surface
    assert pbx_me.status_code == 200 and pbx_me.json()["id"] == created["id"]
    profile = await client.get("/api/v1/user/profile", headers=bearer(token))  # softphone surface
    assert profile.status_code == 200
    assert profile.json()["permissions"] == {"can_call": False, "is_admin": False}
    assert profile.json()["display_name"] == "Ann Lee"


async def test_pbx_login_sets_cookie_that_authenticates_and_logout_ends_everything(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert r.status_code == 200
    cookie = r.cookies.get("voxswitch_session")
    assert cookie and "httponly" in r.headers["set-cookie"].lower()
    token = r.json()["access_token"]
    assert r.json()["user"]["role"] == "admin"
    client.cookies.clear()  # send the cookie explicitly below, as a browser would
    jar = {"Cookie": f"voxswitch_session={cookie}"}

    assert (await client.get("/api/me", headers=jar)).status_code == 200
    assert (await client.get("/auth/me", headers=bearer(token))).status_code == 200

    out = await client.post("/api/auth/logout", headers=jar)
    assert out.status_code == 200
    assert (await client.get("/api/me", headers=jar)).status_code == 401
    # the Bearer token from the same login died with the session
    dead = await client.get("/auth/me", headers=bearer(token))
    assert dead.status_code == 401 and dead.json()["error"]["code"] == "AUTH_003"


async def test_refresh_rotation_refuses_old_token_and_revokes_session_on_reuse(client: httpx.AsyncClient) -> None:
    first = (await client.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})).json()
    r1 = await client.post("/auth/refresh-token", headers=bearer(first["refresh_token"]))
    assert r1.status_code == 200, r1.text
    second = r1.json()
    assert second["refresh_token"] != first["refresh_token"] and second["expires_in"] == 900
    assert (await client.get("/auth/me", headers=bearer(second["token"]))).status_code == 200

    # the spent refresh token is refused, on either surface ...
    again = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert again.status_code == 401
    assert (
        again.json()["error"]["code"] == "INVALID_TOKEN" and again.json()["request_id"] == again.headers["x-request-id"]
    )
    # ... and its reuse revoked the whole session: the newer tokens are dead too.
    assert (await client.get("/auth/me", headers=bearer(second["token"]))).status_code == 401
    refused = await client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert refused.status_code == 401


async def test_softphone_refresh_rotates(client: httpx.AsyncClient) -> None:
    first = (await client.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})).json()
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    assert (await client.get("/api/v1/user/profile", headers=bearer(body["access_token"]))).status_code == 200
    r2 = await client.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert r2.status_code == 200


async def test_non_admin_is_refused_on_admin_endpoints_in_each_documented_shape(client: httpx.AsyncClient) -> None:
    await register(client, "user@example.com")
    token = await login(client, "user@example.com", "Us3r-Passw0rd!")
    pbx = await client.get("/api/users", headers=bearer(token))
    assert pbx.status_code == 403
    assert pbx.json() == {"error": {"code": "authorization_error", "message": "Permission denied", "details": []}}
    soft = await client.get("/api/v1/admin/users", headers=bearer(token))
    assert soft.status_code == 403
    assert soft.json()["error"]["code"] == "FORBIDDEN" and soft.json()["request_id"] == soft.headers["x-request-id"]
    perm = await client.put("/api/v1/admin/users/x/permissions", headers=bearer(token), json={"can_call": True})
    assert perm.status_code == 403
    logs = await client.get("/api/logs/latest", headers=bearer(token))
    assert logs.status_code == 403 and logs.json()["error"]["code"] == "FORBIDDEN"


async def test_admin_manages_users_and_permissions(client: httpx.AsyncClient) -> None:
    admin = bearer(await login(client))
    r = await client.post(
        "/api/users", headers=admin, json={"email": "ops@example.com", "password": "0ps-Passw0rd", "role": "user"}
    )
    assert r.status_code == 201
    uid = r.json()["id"]
    listed = (await client.get("/api/users?limit=1&offset=1", headers=admin)).json()
    assert listed["pagination"] == {"total": 2, "limit": 1, "offset": 1} and len(listed["data"]) == 1
    assert "password" not in str(listed) and "hash" not in str(listed)

    perm = await client.put(
        f"/api/v1/admin/users/{uid}/permissions",
        headers=admin,
        json={"can_call": True, "is_admin": False, "call_limit_per_day": 50},
    )
    assert perm.status_code == 200
    assert perm.json()["permissions"] == {"can_call": True, "is_admin": False}
    assert perm.json()["call_limit_per_day"] == 50
    users = (await client.get("/api/v1/admin/users?search=ops", headers=admin)).json()
    assert users["total_count"] == 1 and users["users"][0]["total_calls"] == 0

    upd = await client.put(f"/api/users/{uid}", headers=admin, json={"display_name": "Ops Desk", "role": "admin"})
    assert upd.status_code == 200 and upd.json()["role"] == "admin"
    assert (await client.delete(f"/api/users/{uid}", headers=admin)).status_code == 204
    assert (await client.get(f"/api/users/{uid}", headers=admin)).status_code == 404


async def test_last_admin_cannot_be_demoted(client: httpx.AsyncClient) -> None:
    admin = bearer(await login(client))
    me = (await client.get("/api/me", headers=admin)).json()
    r = await client.put(f"/api/v1/admin/users/{me['id']}/permissions", headers=admin, json={"is_admin": False})
    assert r.status_code == 409 and r.json()["error"]["code"] == "CONFLICT"
    assert (await client.get("/api/me", headers=admin)).json()["role"] == "admin"


async def test_password_change_revokes_other_sessions(client: httpx.AsyncClient) -> None:
    await register(client, "pw@example.com", "Old-Passw0rd")
    keep = await login(client, "pw@example.com", "Old-Passw0rd")
    other = await login(client, "pw@example.com", "Old-Passw0rd")
    wrong = await client.put(
        "/api/me/password", headers=bearer(keep), json={"current_password": "nope-nope", "new_password": "New-Passw0rd"}
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"]["details"] == [{"field": "current_password", "message": "is incorrect"}]
    ok = await client.put(
        "/api/me/password",
        headers=bearer(keep),
        json={"current_password": "Old-Passw0rd", "new_password": "New-Passw0rd"},
    )
    assert ok.status_code == 200
    assert (await client.get("/api/me", headers=bearer(keep))).status_code == 200
    assert (await client.get("/api/me", headers=bearer(other))).status_code == 401
    await login(client, "pw@example.com", "New-Passw0rd")


async def test_profile_update(client: httpx.AsyncClient) -> None:
    token = bearer(await login(client))
    r = await client.put(
        "/api/v1/user/profile", headers=token, json={"display_name": "John Smith", "privacy_consent": True}
    )
    assert r.status_code == 200
    assert r.json()["display_name"] == "John Smith" and r.json()["privacy_consent"] is True
    bad = await client.put("/api/v1/user/profile", headers=token, json={"display_name": ""})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "display_name"
    assert (await client.get("/api/v1/user/profile", headers=token)).json()["display_name"] == "John Smith"


async def test_unknown_user_and_wrong_password_answer_alike(client: httpx.AsyncClient) -> None:
    a = await client.post("/auth/login", json={"email": "nobody@example.com", "password": "whatever-1"})
    b = await client.post("/auth/login", json={"email": ADMIN_EMAIL, "password": "whatever-1"})
    assert a.status_code == b.status_code == 401
    strip = lambda r: {**r.json(), "timestamp": None}  # noqa: E731
    assert strip(a) == strip(b)
    assert a.json()["error"]["code"] == "AUTH_001"


async def test_expired_token_is_auth_002(client: httpx.AsyncClient, tmp_path: Path) -> None:
    from voxswitch.services.credentials import AccessTokens

    secret = (tmp_path / "data" / "secret.key").read_bytes().strip()
    me = (await client.get("/api/me", headers=bearer(await login(client)))).json()
    old = AccessTokens(secret, 60).issue(me["id"], "sid", "admin", now=1_000_000)
    r = await client.get("/auth/me", headers=bearer(old))
    assert r.status_code == 401 and r.json()["error"]["code"] == "AUTH_002"


async def test_setup_runs_once(make_settings, database_url) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import open_client
    from voxswitch.api.app import create_app

    app = create_app(make_settings(database_url=database_url))
    async for c in open_client(app):
        assert (await c.get("/api/setup/status")).json() == {"setup_required": True}
        bad = await c.post("/api/setup/complete", json={"admin_email": "root@example.com", "admin_password": "short"})
        assert bad.status_code == 400 and bad.json()["error"]["details"][0]["field"] == "password"
        assert (await c.get("/api/setup/status")).status_code == 200  # nothing changed
        bad_sid = await c.post(
            "/api/setup/complete",
            json={"admin_email": "root@example.com", "admin_password": "R00t-Passw0rd", "twilio_account_sid": "nope"},
        )
        assert bad_sid.status_code == 400 and bad_sid.json()["error"]["details"][0]["field"] == "twilio_account_sid"
        ok = await c.post(
            "/api/setup/complete",
            json={
                "admin_email": "root@example.com",
                "admin_password": "R00t-Passw0rd",
                "twilio_account_sid": "AC" + "0" * 32,
                "twilio_auth_token": "tok",
            },
        )
        assert ok.status_code == 201 and ok.json()["user"]["role"] == "admin"
        again = await c.post(
            "/api/setup/complete", json={"admin_email": "x@example.com", "admin_password": "R00t-Passw0rd"}
        )
        assert again.status_code == 403 and again.json()["error"]["code"] == "authorization_error"
        assert (await c.get("/api/setup/status")).status_code == 403
        await login(c, "root@example.com", "R00t-Passw0rd")
