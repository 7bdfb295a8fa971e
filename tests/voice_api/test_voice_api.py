"""The voice-call API in-process on SQLite and PostgreSQL: its shapes, validation, auth, bulk as a
whole, metrics and estimates from the store. No SIP here (tests/e2e places real calls)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, bearer, login, open_client

CALL = {"ToNumber": "+15551234567", "FromNumber": "12156", "Text": "Hello from Voxswitch!"}


@pytest.fixture
async def voice(make_settings: Callable[..., Any], database_url: str | None) -> AsyncIterator[httpx.AsyncClient]:
    """The app without SIP (so nothing is dialled) and an admin's token on every request."""
    from voxswitch.api.app import create_app

    settings = make_settings(database_url=database_url, admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD)
    async for c in open_client(create_app(settings)):
        c.headers.update(bearer(await login(c)))
        yield c


async def test_a_call_is_accepted_in_the_documents_shape_and_reads_back_queued(voice: httpx.AsyncClient) -> None:
    r = await voice.post("/voice/call", json=CALL)
    assert r.status_code == 202, r.text
    body = r.json()
    assert set(body) == {
        "success", "call_id", "task_id", "status", "to_number", "from_number", "timestamp", "estimated_processing_time"
    }  # fmt: skip
    assert body["success"] is True and body["status"] == "queued"
    assert (body["to_number"], body["from_number"]) == ("+15551234567", "12156")
    assert body["estimated_processing_time"].endswith(" seconds")
    status = (await voice.get(f"/voice/status/{body['call_id']}")).json()
    assert status["id"] == body["call_id"] and status["task_id"] == body["task_id"]
    assert status["text"] == "Hello from Voxswitch!"
    assert (status["status"], status["task_status"], status["attempts"]) == ("queued", "PENDING", 0)
    assert status["started_at"] is None and status["completed_at"] is None and status["duration"] is None
    assert status["error_message"] is None


async def test_an_unknown_call_is_a_404_in_the_voice_shape(voice: httpx.AsyncClient) -> None:
    r = await voice.get("/voice/status/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 404
    assert r.json()["error"] == "Call not found"


async def test_missing_fields_answer_the_documents_400(voice: httpx.AsyncClient) -> None:
    r = await voice.post("/voice/call", json={"FromNumber": "12156", "Text": None})
    assert r.status_code == 400
    assert r.json() == {
        "error": "Missing required fields",
        "missing": ["ToNumber", "Text"],
        "required": ["ToNumber", "FromNumber", "Text"],
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ToNumber": "555-CALL-NOW"}, "ToNumber"),
        ({"ToNumber": "+0123"}, "ToNumber"),
        ({"ToNumber": 15551234567}, "ToNumber"),
        ({"FromNumber": "abc"}, "FromNumber"),
        ({"Text": "   "}, "Text"),
        ({"Text": "x" * 2001}, "Text"),
        ({"Repeat": 0}, "Repeat"),
        ({"Repeat": True}, "Repeat"),
        ({"Record": "yes"}, "Record"),
        ({"StatusCallback": "ftp://example.com/hook"}, "StatusCallback"),
        ({"Voice": ""}, "Voice"),
    ],
)
async def test_an_invalid_field_is_named(voice: httpx.AsyncClient, change: dict[str, Any], field: str) -> None:
    r = await voice.post("/voice/call", json={**CALL, **change})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["field"] == field and field in body["details"]
    assert (await voice.get("/api/metrics")).json()["calls"]["total"] == 0, "nothing was queued"


async def test_a_body_that_is_not_json_is_a_400(voice: httpx.AsyncClient) -> None:
    r = await voice.post("/voice/call", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == "Request body is not valid JSON"


async def test_the_api_needs_a_token_unless_the_operator_opens_it(
    make_settings: Callable[..., Any], database_url: str | None
) -> None:
    from voxswitch.api.app import create_app

    async for c in open_client(create_app(make_settings(database_url=database_url))):
        r = await c.post("/voice/call", json=CALL)
        assert r.status_code == 401 and "error" in r.json()
        assert (await c.get("/api/metrics")).status_code == 401
        assert (await c.get("/voice/status/x")).status_code == 401
    async for c in open_client(create_app(make_settings(database_url=database_url, voice_api_auth=False))):
        r = await c.post("/voice/call", json=CALL)
        assert r.status_code == 202, r.text
        assert (await c.get(f"/voice/status/{r.json()['call_id']}")).status_code == 200


async def test_a_user_who_may_not_call_is_refused(voice: httpx.AsyncClient) -> None:
    r = await voice.post(
        "/auth/register", json={"email": "nocall@example.com", "password": "Str0ng-Passw0rd!", "name": "No Call"}
    )
    assert r.status_code in (200, 201), r.text
    token = await login(voice, "nocall@example.com", "Str0ng-Passw0rd!")
    r = await voice.post("/voice/call", json=CALL, headers=bearer(token))
    assert r.status_code == 403


async def test_bulk_is_validated_as_a_whole_and_queues_nothing_when_an_entry_is_bad(voice: httpx.AsyncClient) -> None:
    calls = [dict(CALL) for _ in range(5)]
    calls[1]["ToNumber"] = "nope"
    del calls[3]["Text"]
    calls[4]["Text"] = ""
    r = await voice.post("/voice/bulk", json={"calls": calls})
    assert r.status_code == 400, r.text
    named = {e["field"] for e in r.json()["errors"]}
    assert named == {"calls.1.ToNumber", "calls.3.Text", "calls.4.Text"}
    assert (await voice.get("/api/metrics")).json()["calls"]["total"] == 0

    r = await voice.post("/voice/bulk", json={"calls": [CALL, {"FromNumber": "12156"}]})
    assert r.status_code == 400
    assert r.json()["missing"] == ["calls.1.ToNumber", "calls.1.Text"]
    assert (await voice.post("/voice/bulk", json={"calls": []})).json()["field"] == "calls"
    assert (await voice.post("/voice/bulk", json={})).json()["missing"] == ["calls"]


async def test_bulk_queues_every_call_and_metrics_count_them(voice: httpx.AsyncClient) -> None:
    calls = [{**CALL, "ToNumber": f"+1555000{i:04d}"} for i in range(50)]
    r = await voice.post("/voice/bulk", json={"calls": calls})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["success"] is True and body["queued_calls"] == 50 and len(set(body["call_ids"])) == 50
    first = (await voice.get(f"/voice/status/{body['call_ids'][0]}")).json()
    assert first["to_number"] == "+15550000000"
    metrics = (await voice.get("/api/metrics")).json()
    assert set(metrics) == {"timestamp", "calls", "system"}
    calls_part = metrics["calls"]
    assert (calls_part["total"], calls_part["pending"], calls_part["processing"]) == (50, 50, 0)
    assert (calls_part["completed"], calls_part["failed"], calls_part["success_rate"]) == (0, 0, 0.0)
    # workers are configured on but this app has no SIP to place calls with
    assert (metrics["system"]["status"], metrics["system"]["celery_workers"]) == ("degraded", "Inactive")


async def test_bulk_is_capped_by_configuration(make_settings: Callable[..., Any], database_url: str | None) -> None:
    from voxswitch.api.app import create_app

    settings = make_settings(database_url=database_url, voice_api_auth=False, voice_bulk_max=3)
    async for c in open_client(create_app(settings)):
        r = await c.post("/voice/bulk", json={"calls": [CALL] * 4})
        assert r.status_code == 400 and r.json()["field"] == "calls"
        assert (await c.post("/voice/bulk", json={"calls": [CALL] * 3})).status_code == 202


async def test_the_estimate_grows_with_the_queue(voice: httpx.AsyncClient) -> None:
    def upper(text: str) -> int:
        return int(text.split()[0].split("-")[1])

    first = (await voice.post("/voice/call", json=CALL)).json()["estimated_processing_time"]
    await voice.post("/voice/bulk", json={"calls": [CALL] * 200})
    later = (await voice.post("/voice/call", json=CALL)).json()["estimated_processing_time"]
    assert upper(later) > upper(first) * 3, (first, later)


async def test_info_lists_the_voice_endpoints(voice: httpx.AsyncClient) -> None:
    info = (await voice.get("/api/info")).json()
    for endpoint in ("POST /voice/call", "GET /voice/status/{call_id}", "POST /voice/bulk", "GET /api/metrics"):
        assert endpoint in info["endpoints"]
