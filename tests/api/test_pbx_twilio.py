"""Twilio, through the official `twilio` library, against a local server speaking Twilio's REST API:
`POST /api/dids/sync` (every page of IncomingPhoneNumbers, upsert by sid, manual DIDs kept), the
credentials from `PUT /api/system/config` (token stored as a secret, shown masked) or the
environment, a clear error without them, and Twilio's reachability in `/api/system/status`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from tests.api.pbx import Pbx, pbx_error, pbx_settings, running_pbx
from tests.support.http_server import serve_in_thread
from tests.support.throwaway import free_port
from tests.support.twilio_rest import TwilioNumber, TwilioRest, account_sid
from voxswitch.store.models import SystemSetting

TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def twilio() -> Iterator[TwilioRest]:
    server = TwilioRest(
        account_sid(),
        TOKEN,
        numbers=[
            TwilioNumber("+15551230001", "(555) 123-0001"),
            TwilioNumber("+15551230002", "(555) 123-0002", sms=False),
            TwilioNumber("+15551230003", "(555) 123-0003", mms=True, fax=True),
            TwilioNumber("+15551234567", "Twilio's name for it"),  # typed in by hand below as well
            TwilioNumber("+15551230005", "(555) 123-0005", voice=False),
        ],
    )
    with serve_in_thread(server.app()) as url:
        server.base_url = url
        yield server


@pytest.fixture
async def pbx_twilio(
    make_settings: Callable[..., Any], database_url: str | None, twilio: TwilioRest
) -> AsyncIterator[Pbx]:
    async for p in running_pbx(pbx_settings(make_settings, database_url, twilio_api_base_url=twilio.base_url)):
        yield p


async def configure(pbx: Pbx, twilio: TwilioRest, token: str = TOKEN) -> dict[str, Any]:
    r = await pbx.client.put(
        "/api/system/config",
        json={"twilio_account_sid": twilio.account_sid, "twilio_auth_token": token},
        headers=pbx.admin,
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_did_sync_pulls_every_page_against_a_local_twilio_rest_server(
    pbx_twilio: Pbx, twilio: TwilioRest
) -> None:
    pbx = pbx_twilio
    manual = await pbx.post("/api/dids", {"phone_number": "+15551234567", "friendly_name": "Main Line"})
    keep = await pbx.post("/api/dids", {"phone_number": "+442071234567", "friendly_name": "London"})
    config = await configure(pbx, twilio)
    assert config["twilio_auth_token"] == "********" and TOKEN not in str(config)
    assert config["twilio_configured"] is True and config["twilio_source"] == "config"

    r = await pbx.client.post("/api/dids/sync", headers=pbx.admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["created"], body["updated"], body["unchanged"], body["skipped"]) == (4, 1, 0, [])
    by_number = {d["phone_number"]: d for d in body["data"]}
    assert set(by_number) == {n.phone_number for n in twilio.numbers}
    assert by_number["+15551230002"]["capabilities"] == ["voice"]
    assert by_number["+15551230003"]["capabilities"] == ["voice", "sms", "mms", "fax"]
    assert by_number["+15551230005"]["capabilities"] == ["sms"]
    assert by_number["+15551230001"]["source"] == "twilio"
    assert by_number["+15551230001"]["provider_sid"] == twilio.numbers[0].sid
    assert by_number["+15551230001"]["friendly_name"] == "(555) 123-0001"
    # the number typed in by hand is the same DID, now linked to its sid, its name kept
    linked = by_number["+15551234567"]
    assert linked["id"] == manual["id"] and linked["source"] == "manual" and linked["friendly_name"] == "Main Line"
    assert linked["provider_sid"] == twilio.numbers[3].sid
    everything = await pbx.get("/api/dids?limit=100")
    assert everything["pagination"]["total"] == 6 and keep in everything["data"]  # manual DIDs stay

    # the library walked Twilio's pages (2 numbers a page here), authenticated as the account
    lists = [q for method, path, q, user in twilio.requests if path.endswith("/IncomingPhoneNumbers.json")]
    assert [q.get("Page", "0") for q in lists] == ["0", "1", "2"] and "PageToken" in lists[1]
    assert {user for *_, user in twilio.requests} == {twilio.account_sid}

    # again: nothing new; a renamed and a renumbered number are updated, by sid
    twilio.numbers[0].friendly_name = "Sales"
    twilio.numbers[1].phone_number = "+15551239999"
    renumbered_id = by_number["+15551230002"]["id"]
    twilio.numbers.pop()  # +15551230005 left the account
    again = (await pbx.client.post("/api/dids/sync", headers=pbx.admin)).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 2, 2)
    assert again["not_in_account"] == ["+15551230005"]
    assert (await pbx.get(f"/api/dids/{renumbered_id}"))["phone_number"] == "+15551239999"
    assert (await pbx.get("/api/dids?limit=100"))["pagination"]["total"] == 6  # nothing deleted


async def test_wrong_credentials_change_nothing_against_a_local_twilio_rest_server(
    pbx_twilio: Pbx, twilio: TwilioRest
) -> None:
    pbx = pbx_twilio
    await configure(pbx, twilio, token="f" * 32)
    before = await pbx.snapshot()
    r = await pbx.client.post("/api/dids/sync", headers=pbx.admin)
    assert pbx_error(r, 503, "service_unavailable") == {"twilio_auth_token"}
    assert "401" in r.json()["error"]["message"]
    assert await pbx.snapshot() == before
    status = (await pbx.get("/api/system/status"))["twilio"]
    assert status["configured"] is True and status["status"] == "unauthorized"
    assert status["reachable"] is True and status["http_status"] == 401


async def test_status_probes_twilio_for_real_against_a_local_twilio_rest_server(
    pbx_twilio: Pbx, twilio: TwilioRest
) -> None:
    pbx = pbx_twilio
    assert (await pbx.get("/api/system/status"))["twilio"]["status"] == "not_configured"
    await configure(pbx, twilio)
    seen = len(twilio.requests)
    status = (await pbx.get("/api/system/status"))["twilio"]
    assert status["status"] == "ok" and status["reachable"] is True and status["http_status"] == 200
    assert status["latency_ms"] >= 0 and status["source"] == "config"
    assert twilio.requests[seen][1] == f"/2010-04-01/Accounts/{twilio.account_sid}.json"  # a real request
    await pbx.get("/api/system/status")
    assert len(twilio.requests) == seen + 1  # polled again at once: the recent answer is reused


async def test_an_unreachable_twilio_is_reported_not_raised(make_settings: Callable[..., Any]) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    settings = pbx_settings(
        make_settings,
        None,
        twilio_api_base_url=closed,
        twilio_account_sid=account_sid(),
        twilio_auth_token=TOKEN,
        twilio_timeout_seconds=2,
    )
    async for pbx in running_pbx(settings):
        config = await pbx.get("/api/system/config")
        assert config["twilio_source"] == "environment" and config["twilio_auth_token"] == "********"
        status = (await pbx.get("/api/system/status"))["twilio"]
        assert status["status"] == "unreachable" and status["reachable"] is False and status["error"]
        r = await pbx.client.post("/api/dids/sync", headers=pbx.admin)
        assert pbx_error(r, 503, "service_unavailable") == set() and "unreachable" in r.json()["error"]["message"]


async def test_environment_credentials_sync_against_a_local_twilio_rest_server(
    make_settings: Callable[..., Any], twilio: TwilioRest
) -> None:
    settings = pbx_settings(
        make_settings,
        None,
        twilio_api_base_url=twilio.base_url,
        twilio_account_sid=twilio.account_sid,
        twilio_auth_token=TOKEN,
    )
    async for pbx in running_pbx(settings):
        r = await pbx.client.post("/api/dids/sync", headers=pbx.admin)
        assert r.status_code == 200 and r.json()["created"] == 5


async def test_without_credentials_sync_says_what_to_configure(pbx: Pbx) -> None:
    before = await pbx.snapshot()
    r = await pbx.client.post("/api/dids/sync", headers=pbx.admin)
    assert pbx_error(r, 503, "service_unavailable") == {"twilio_account_sid", "twilio_auth_token"}
    assert "PUT /api/system/config" in r.json()["error"]["message"]
    assert "TWILIO_ACCOUNT_SID" in r.json()["error"]["message"]
    assert await pbx.snapshot() == before


async def test_config_keeps_the_token_secret_and_clears_fields(pbx: Pbx) -> None:
    sid = account_sid()
    r = await pbx.client.put(
        "/api/system/config",
        json={"twilio_account_sid": sid, "twilio_auth_token": TOKEN, "voicemail_email": "Office@Example.com"},
        headers=pbx.admin,
    )
    assert r.status_code == 200 and TOKEN not in r.text
    assert r.json() == {
        "twilio_account_sid": sid,
        "twilio_auth_token": "********",
        "twilio_configured": True,
        "twilio_source": "config",
        "voicemail_email": "office@example.com",
        "timezone": "UTC",
    }
    async with pbx.state.db.session() as s:
        rows = {r.key: r for r in (await s.execute(select(SystemSetting))).scalars()}
    assert rows["twilio.auth_token"].secret is True and rows["twilio.account_sid"].secret is False
    assert TOKEN not in (await pbx.client.get("/api/system/config", headers=pbx.admin)).text
    user, _ = await pbx.user("ann@example.com")
    pbx_error(await pbx.client.get("/api/system/config", headers=user), 403, "authorization_error")
    pbx_error(await pbx.client.get("/api/system/status", headers=user), 403, "authorization_error")
    cleared = await pbx.client.put("/api/system/config", json={"twilio_auth_token": None}, headers=pbx.admin)
    assert cleared.json()["twilio_auth_token"] is None and cleared.json()["twilio_configured"] is False
    assert cleared.json()["twilio_account_sid"] == sid  # untouched fields stay
