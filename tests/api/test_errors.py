"""Request ids on every response; each surface's own error shape; no stack trace ever reaches a client."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from tests.conftest import open_client


async def test_every_response_carries_a_request_id_and_echoes_a_sane_one(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.headers["x-request-id"].startswith("req_")
    assert (await client.get("/health", headers={"X-Request-ID": "abc-123"})).headers["x-request-id"] == "abc-123"
    hostile = await client.get("/health", headers={"X-Request-ID": "x" * 500})
    assert hostile.headers["x-request-id"].startswith("req_")
    err = await client.get("/api/v1/user/profile", headers={"X-Request-ID": "trace-7"})
    assert err.status_code == 401 and err.json()["request_id"] == "trace-7" == err.headers["x-request-id"]


@pytest.mark.parametrize(
    ("path", "check"),
    [
        ("/voice/nothing", lambda b: b == {"error": "Not found", "details": "Not found"}),
        ("/api/v1/nothing", lambda b: b["error"]["code"] == "NOT_FOUND" and b["request_id"]),
        ("/api/callbot/nothing", lambda b: b["error"]["code"] == "NOT_FOUND" and "timestamp" in b),
        ("/agents/nothing", lambda b: b["success"] is False and b["data"] is None and b["error"]["code"]),
        ("/api/nothing", lambda b: b == {"error": {"code": "not_found", "message": "Not found", "details": []}}),
    ],
)
async def test_unknown_paths_answer_404_in_the_surface_shape(client: httpx.AsyncClient, path: str, check) -> None:  # type: ignore[no-untyped-def]
    r = await client.get(path)
    assert r.status_code == 404
    assert check(r.json()), r.json()


async def test_validation_names_every_field_in_each_shape(client: httpx.AsyncClient) -> None:
    agents = await client.post("/auth/login", json={"email": 5})
    assert agents.status_code == 400
    assert {f["field"] for f in agents.json()["error"]["fields"]} == {"email", "password"}
    pbx = await client.post("/api/auth/login", json={})
    assert pbx.status_code == 400 and pbx.json()["error"]["code"] == "validation_error"
    assert {d["field"] for d in pbx.json()["error"]["details"]} == {"email", "password"}
    soft = await client.post("/api/v1/auth/refresh", json={"refresh_token": 12})
    assert soft.status_code == 400
    assert soft.json()["error"]["details"] == {"field": "refresh_token", "provided_value": 12}
    broken = await client.post("/api/auth/login", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "bad_request"
    paging = await client.get("/api/users?limit=0", headers={"Authorization": "Bearer x"})
    assert paging.status_code in (400, 401)


async def test_unhandled_exception_is_a_shaped_500_logged_with_request_id(make_settings, caplog) -> None:  # type: ignore[no-untyped-def]
    from voxswitch.api.app import create_app

    app = create_app(make_settings())

    async def explode() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    app.add_api_route("/api/v1/explode", explode)
    app.add_api_route("/voice/explode", explode)
    async for c in open_client(app):
        with caplog.at_level(logging.ERROR):
            r = await c.get("/api/v1/explode", headers={"X-Request-ID": "boom-1"})
        assert r.status_code == 500
        body = r.json()
        assert body["error"]["code"] == "INTERNAL_ERROR" and body["request_id"] == "boom-1"
        assert "hunter2" not in r.text and "Traceback" not in r.text and "RuntimeError" not in r.text
        voice = await c.get("/voice/explode")
        assert voice.status_code == 500 and voice.json()["error"] == "Internal server error"
    records = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert records, "the 500 must be logged with its traceback"
    from voxswitch.logs import JsonFormatter

    line = json.loads(JsonFormatter().format(records[0]))
    assert line["request_id"] == "boom-1"
    assert "hunter2" not in json.dumps(line)


async def test_method_not_allowed_keeps_its_status(client: httpx.AsyncClient) -> None:
    r = await client.delete("/health")
    assert r.status_code == 405
