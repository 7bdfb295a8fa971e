"""Documented rate limits with X-RateLimit-* headers and 429s in each surface's shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, bearer, open_client


def limited(make_settings: Callable[..., Any], **extra: Any) -> Any:
    return make_settings(rate_limits_enabled=True, admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD, **extra)


async def test_agents_auth_group_is_ten_per_minute_by_ip(make_settings) -> None:  # type: ignore[no-untyped-def]
    from voxswitch.api.app import create_app

    async for c in open_client(create_app(limited(make_settings))):
        seen = []
        for _ in range(11):
            r = await c.post("/auth/login", json={"email": "x@example.com", "password": "wrong-pass"})
            seen.append(r.status_code)
        assert seen[:10] == [401] * 10 and seen[10] == 429
        assert r.headers["x-ratelimit-limit"] == "10" and r.headers["x-ratelimit-remaining"] == "0"
        assert int(r.headers["x-ratelimit-reset"]) > 1_600_000_000 and int(r.headers["retry-after"]) >= 1
        body = r.json()
        assert body["success"] is False and body["error"]["code"] == "RATE_LIMIT_001"
        # other groups are counted apart: health is never limited, PBX login has its own budget
        assert (await c.get("/health")).status_code == 200
        pbx = await c.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        assert pbx.status_code == 200 and pbx.headers["x-ratelimit-limit"] == "10"


async def test_softphone_limits_count_per_user_and_shape_429(make_settings) -> None:  # type: ignore[no-untyped-def]
    from voxswitch.api.app import create_app

    settings = limited(make_settings, rate_limits={"softphone.general": "3/minute"})
    async for c in open_client(create_app(settings)):
        token = (await c.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})).json()
        c.cookies.clear()
        codes = [
            (await c.get("/api/v1/user/profile", headers=bearer(token["access_token"]))).status_code for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        r = await c.get("/api/v1/user/profile", headers=bearer(token["access_token"]))
        assert r.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED" and r.json()["request_id"]
        # an anonymous caller from the same IP has its own budget
        assert (await c.get("/api/v1/user/profile")).status_code == 401


async def test_limits_are_shared_through_redis(make_settings, redis_port) -> None:  # type: ignore[no-untyped-def]
    from voxswitch.api.app import create_app

    settings = limited(
        make_settings, redis_url=f"redis://127.0.0.1:{redis_port}/0", rate_limits={"pbx.general": "2/minute"}
    )
    # two app instances (two "nodes") share one Redis: the third request across both is refused
    app1, app2 = create_app(settings), create_app(settings)
    await app1.state.vox.limiter.reset()
    async for c1 in open_client(app1):
        async for c2 in open_client(app2):
            assert (await c1.get("/api/me")).status_code == 401
            assert (await c2.get("/api/me")).status_code == 401
            r = await c1.get("/api/me")
            assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
            assert (await c1.get("/readiness")).json()["cache"] == "ok"


async def test_did_sync_has_its_own_small_budget_in_the_pbx_shape(make_settings) -> None:  # type: ignore[no-untyped-def]
    """Each sync is a round of requests to Twilio: ten a minute, counted apart from the rest of /api."""
    from voxswitch.api.app import create_app

    async for c in open_client(create_app(limited(make_settings))):
        token = (await c.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})).json()
        headers = bearer(token["access_token"])
        codes = [(await c.post("/api/dids/sync", headers=headers)).status_code for _ in range(11)]
        assert codes == [503] * 10 + [429]  # not configured, until the budget is spent
        r = await c.post("/api/dids/sync", headers=headers)
        assert r.headers["x-ratelimit-limit"] == "10" and r.json()["error"]["code"] == "rate_limited"
        listed = await c.get("/api/dids", headers=headers)
        assert listed.status_code == 200 and listed.headers["x-ratelimit-limit"] == "600"
