"""`POST /api/v1/auth` against a local server speaking Nextcloud's OAuth2 + OCS protocol (and OIDC)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import bearer, open_client
from tests.support.http_server import serve_in_thread
from tests.support.nextcloud_oauth import CLIENT_ID, CLIENT_SECRET, Account, NextcloudOAuth

REDIRECT = "https://cloud.example.com/apps/sipcall"


@pytest.fixture
def nextcloud() -> Iterator[NextcloudOAuth]:
    provider = NextcloudOAuth(accounts={"john.doe": Account("john.doe", "john.doe@example.com", "John Doe")})
    with serve_in_thread(provider.app()) as url:
        provider.base_url = url
        yield provider


def oauth_settings(make_settings: Callable[..., Any], provider: NextcloudOAuth, **extra: Any) -> Any:
    return make_settings(
        oauth_token_url=f"{provider.base_url}/index.php/apps/oauth2/api/v1/token",
        oauth_userinfo_url=f"{provider.base_url}/ocs/v2.php/cloud/user?format=json",
        oauth_client_id=CLIENT_ID,
        oauth_client_secret=CLIENT_SECRET,
        **extra,
    )


async def test_code_exchange_creates_user_and_token_works_everywhere(make_settings, nextcloud) -> None:  # type: ignore[no-untyped-def]
    from voxswitch.api.app import create_app

    app = create_app(oauth_settings(make_settings, nextcloud, oauth_redirect_uris=[REDIRECT]))
    async for c in open_client(app):
        code = nextcloud.grant("john.doe", REDIRECT)
        r = await c.post("/api/v1/auth", json={"code": code, "redirect_uri": REDIRECT})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["token_type"] == "bearer" and body["expires_in"] == 900 and body["refresh_token"]
        profile = (await c.get("/api/v1/user/profile", headers=bearer(body["access_token"]))).json()
        assert profile["nextcloud_user_id"] == "john.doe"
        assert profile["email"] == "john.doe@example.com" and profile["display_name"] == "John Doe"
        assert (await c.get("/auth/me", headers=bearer(body["access_token"]))).status_code == 200

        # the same Nextcloud account logs in again as the same local user
        again = await c.post(
            "/api/v1/auth", json={"code": nextcloud.grant("john.doe", REDIRECT), "redirect_uri": REDIRECT}
        )
        profile2 = (await c.get("/api/v1/user/profile", headers=bearer(again.json()["access_token"]))).json()
        assert profile2["user_id"] == profile["user_id"]

        # a spent code is an invalid authorization code: 400, naming the field
        reused = await c.post("/api/v1/auth", json={"code": code, "redirect_uri": REDIRECT})
        assert reused.status_code == 400
        assert reused.json()["error"]["code"] == "INVALID_AUTHORIZATION_CODE"
        assert reused.json()["error"]["details"]["field"] == "code"

        # a redirect URI we never registered is refused before the provider is asked
        other = await c.post("/api/v1/auth", json={"code": "x", "redirect_uri": "https://evil.example.com/"})
        assert other.status_code == 400 and other.json()["error"]["details"]["field"] == "redirect_uri"

        missing = await c.post("/api/v1/auth", json={"code": "abc"})
        assert missing.status_code == 400
        assert missing.json()["error"]["details"]["field"] == "redirect_uri"


async def test_wrong_client_secret_is_an_operator_problem_not_the_users(make_settings, nextcloud) -> None:  # type: ignore[no-untyped-def]
    from voxswitch.api.app import create_app

    settings = oauth_settings(make_settings, nextcloud)
    settings.oauth_client_secret = None
    app = create_app(settings)
    async for c in open_client(app):
        r = await c.post("/api/v1/auth", json={"code": nextcloud.grant("john.doe", REDIRECT), "redirect_uri": REDIRECT})
        assert r.status_code == 503 and r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"


async def test_oidc_discovery_and_userinfo(make_settings, nextcloud) -> None:  # type: ignore[no-untyped-def]
    from voxswitch.api.app import create_app

    app = create_app(
        make_settings(oauth_issuer=nextcloud.base_url, oauth_client_id=CLIENT_ID, oauth_client_secret=CLIENT_SECRET)
    )
    async for c in open_client(app):
        r = await c.post("/api/v1/auth", json={"code": nextcloud.grant("john.doe", REDIRECT), "redirect_uri": REDIRECT})
        assert r.status_code == 200, r.text
        me = (await c.get("/api/me", headers=bearer(r.json()["access_token"]))).json()
        assert me["email"] == "john.doe@example.com"


async def test_unconfigured_provider_is_503(make_settings) -> None:  # type: ignore[no-untyped-def]
    from voxswitch.api.app import create_app

    async for c in open_client(create_app(make_settings())):
        r = await c.post("/api/v1/auth", json={"code": "abc", "redirect_uri": REDIRECT})
        assert r.status_code == 503 and r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
